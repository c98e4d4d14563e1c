"""The forwarding gate: pure ASGI middleware in front of the API on every node.

On the active node (or a node without HA) requests pass straight through. On a standby every
request except the never-forwarded status endpoints goes to the active node over the mutual-
TLS cluster port and its status, headers and body come back verbatim (spec ha-and-sys §2.1):
`X-Vault-No-Request-Forwarding` asks for a 307 to the active's `api_addr` instead, a forward
that could not connect falls back to that 307, a write whose forwarded answer was lost is a 503
"outcome unknown" (never a 307: the client would send it again), and no active node at all is
a 503. A request that arrived
forwarded is never forwarded again. Standbys also report themselves to the active node with
an echo every few seconds (`sys/ha-status` lists them).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import ssl
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson

from transit import metrics
from transit.api.app import DEFAULT_MAX_REQUEST_SIZE, LOCAL_ATTEMPT
from transit.api.wire import JSON_HEADERS, error_body
from transit.cluster.forward import NOT_ACTIVE_HEADERS, ForwardingError, LeaderNotActive
from transit.cluster.listener import FORWARDED_SCOPE
from transit.core import ECHO_PATH as CORE_ECHO_PATH
from transit.errors import ForwardToActive, TransitError, UserError

if TYPE_CHECKING:
    from transit.core import Core

log = logging.getLogger("transit.forwarding")

# Answered by the receiving node itself (spec ha-and-sys §2.1).
NEVER_FORWARDED = frozenset({
    "/v1/sys/init", "/v1/sys/seal-status", "/v1/sys/seal", "/v1/sys/unseal", "/v1/sys/leader",
    "/v1/sys/health", "/v1/sys/host-info", "/v1/sys/metrics", "/v1/sys/in-flight-req",
    "/v1/sys/monitor",
})
ECHO_PATH = CORE_ECHO_PATH
# Updates that compute without writing (transit crypto, lookups, capabilities, tools).
_LOCAL_UPDATE = re.compile(
    r"^/v1/(?:.+/(?:encrypt|decrypt|rewrap|datakey/[^/]+|hmac|sign|verify)/[^/]+(?:/[^/]+)?"
    r"|.+/(?:random|hash)(?:/.*)?"
    r"|auth/token/lookup(?:-self)?|sys/capabilities(?:-self|-accessor)?|sys/tools/.+"
    r"|sys/wrapping/lookup)\Z"
)
FORWARDED_SCOPE_KEY = FORWARDED_SCOPE
# The client's address, added by the forwarding standby (any copy the client sent is dropped)
# and believed only on the mutual-TLS cluster listener: bound-CIDR checks (token_bound_cidrs,
# secret-ID CIDRs) and audit entries of a forwarded request see the real client, as Vault's
# forwarded RPC carries its RemoteAddr.
CLIENT_ADDR_HEADER = b"x-transit-forwarded-client"
# Likewise the TLS client certificate the standby's client presented (TLS certificate
# logins): base64 DER of the leaf, or "-" for a TLS connection without one; absent when the
# client did not use TLS.
CLIENT_CERT_HEADER = b"x-transit-forwarded-client-cert"
_FORWARD = "vault.ha.rpc.client.forward"  # telemetry (transit/metrics.py)
_FORWARD_ERRORS = ("vault.ha.rpc.client.forward.errors",)


class ForwardingGate:
    def __init__(self, app: Any, core: Core, max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
                 ) -> None:
        self.app = app
        self.core = core
        # Vault: a negative max_request_size means no limit
        self.max_request_size = max_request_size if max_request_size >= 0 else sys.maxsize

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        core = self.core
        if scope["type"] != "http" or core.ha is None or core.sealed:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if core.ha.activating and not core.ha.is_active:
            await core.ha.activated()  # mid-activation: answer as the active node it becomes
        if scope.get(FORWARDED_SCOPE_KEY):
            scope = _with_forwarded_client(scope)
            if path == ECHO_PATH:
                await self._echo(receive, send)
            elif core.ha.is_active:
                await self.app(scope, receive, send)
            else:  # it was sent to us as the active node, and we no longer are
                await _respond(send, 503, error_body(["node is not active"]),
                               NOT_ACTIVE_HEADERS)
            return
        if core.ha.is_active or path.rstrip("/") in NEVER_FORWARDED or not path.isprintable():
            # (a path with a control character is refused here, by the app: never forwarded)
            await self.app(scope, receive, send)
            return
        if core.perf_standby and _may_serve_locally(scope["method"], path):
            verdict = await self._consistency(scope)
            if verdict == "forward":
                await self._forward(scope, receive, send)
                return
            if verdict is not None:
                status, body = verdict
                await _respond(send, status, body)
                return
            body = await self._read_limited(scope, receive)
            if body is None:
                await _respond(send, 413, error_body(["http: request body too large"]))
                return
            try:
                await self.app({**scope, LOCAL_ATTEMPT: True}, _replay(body), send)
                return
            except ForwardToActive as exc:  # nothing was sent yet: the app answers at the end
                log.debug("forwarding after a local attempt: %s", exc)
            await self._forward(scope, _replay(body), send)
            return
        await self._forward(scope, receive, send)

    async def _read_limited(self, scope: dict[str, Any], receive: Any) -> bytes | None:
        """The request body, or None when it is over the listener's max_request_size."""
        limit = self.max_request_size
        for k, v in scope["headers"]:
            if k == b"content-length" and v.isdigit() and int(v) > limit:
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _consistency(self, scope: dict[str, Any]) -> Any:
        """Vault's client-controlled consistency on a performance standby: a request that
        carries X-Vault-Index is served here only once the local replica has that state
        (waiting up to `core.index_wait`); otherwise it is forwarded when the client sent
        `X-Vault-Inconsistent: forward-active-node`, or refused with 412."""
        wanted = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-vault-index"]
        if not wanted:
            return None
        try:
            if await self.core.index_reached(wanted):
                return None
        except UserError as exc:
            return 400, error_body([exc.message])
        except TransitError:  # the index key has not reached this replica yet
            pass
        mode = next((v for k, v in scope["headers"] if k == b"x-vault-inconsistent"), b"")
        if mode.strip().lower() == b"forward-active-node":
            return "forward"
        return 412, error_body(["required index state not present"])

    async def _forward(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        # only an HA node forwards (`__call__`); setup_ha sets both, once
        assert self.core.ha is not None and self.core.forwarder is not None
        leader = await self.core.ha.leader()
        if leader is None:
            # The cached view may predate a new term, or its holder is still activating:
            # look again, waiting (bounded) for the holder's advertisement.
            leader = await self.core.ha.await_leader()
            if self.core.ha.is_active:  # this process took the role meanwhile
                await self.app(scope, receive, send)
                return
        if leader is None:
            await _respond(send, 503, error_body(["no active Vault instance found"]))
            return
        path_qs = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            path_qs += "?" + scope["query_string"].decode("latin-1")
        headers = scope["headers"]
        if not self.core.perf_standby and any(
                k == b"x-vault-no-request-forwarding" and v for k, v in headers):
            await _redirect(send, leader.api_addr, path_qs)
            return
        body = await self._read_limited(scope, receive)
        if body is None:
            await _respond(send, 413, error_body(["http: request body too large"]))
            return
        method = scope["method"]
        client = scope.get("client") or ("", 0)
        headers = [(k, v) for k, v in headers
                   if k != CLIENT_ADDR_HEADER and k != CLIENT_CERT_HEADER]
        if client[0]:
            headers.append((CLIENT_ADDR_HEADER, f"{client[0]}:{client[1]}".encode()))
        cert = _cert_header(scope)
        if cert is not None:
            headers.append((CLIENT_CERT_HEADER, cert))
        try:
            status, out_headers, out_body = await self.core.forwarder.forward(
                leader, method, path_qs, list(headers), body)
            stale = False
        except LeaderNotActive as exc:
            log.info("%s; re-reading the leader", exc)
            stale = True
        except ForwardingError as exc:
            if exc.maybe_sent:
                # it may have reached the old leader: never replay it, let the client decide;
                # forget the cached advertisement (e.g. a previous term's certificate)
                self.core.ha.forget_leader()
                await self._failed(send, method, leader.api_addr, path_qs, exc)
                return
            log.info("cannot reach the leader %s (%s); re-reading it", leader.node_id, exc)
            stale = True
        if stale:  # the leader we knew has just changed: look again, try once more
            fresh = await self.core.ha.refresh_leader()
            if self.core.ha.is_active:  # this process took the role meanwhile (nothing
                await self.app(scope, _replay(body), send)  # was sent): answer it here
                return
            if fresh is None:
                await _respond(send, 503, error_body(["no active Vault instance found"]))
                return
            leader = fresh
            try:
                status, out_headers, out_body = await self.core.forwarder.forward(
                    leader, method, path_qs, list(headers), body)
            except LeaderNotActive:  # changing again: the client retries later
                await _respond(send, 503, error_body(["node is not active"]))
                return
            except ForwardingError as exc:
                await self._failed(send, method, leader.api_addr, path_qs, exc)
                return
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": out_body})
        metrics.observe((_FORWARD, str(status)), (time.perf_counter() - started) * 1000)

    async def _failed(self, send: Any, method: str, api_addr: str, path_qs: str,
                      exc: ForwardingError) -> None:
        """A forward failed. A write that may have reached the active node is answered 503
        "outcome unknown": a 307 would make the client send it again (DESIGN §4, §7). Reads,
        and writes that certainly never left, are redirected to the active node."""
        metrics.incr(_FORWARD_ERRORS)
        if method not in _SAFE_METHODS and exc.maybe_sent:
            log.warning("forwarded %s %s: no answer from the active node (%s); outcome "
                        "unknown, not redirecting", method, path_qs.split("?", 1)[0], exc)
            await _respond(send, 503, error_body([
                "the request was forwarded to the active node but its answer was lost; it "
                "may or may not have been applied: check before retrying"]))
            return
        log.warning("request forwarding failed, redirecting the client: %s", exc)
        await _redirect(send, api_addr, path_qs)

    async def _echo(self, receive: Any, send: Any) -> None:
        try:
            info = orjson.loads(await _read_body(receive))
            self.core.record_echo(info, time.time())
            await _respond(send, 204, b"")
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
            await _respond(send, 400, error_body(["invalid echo"]))


def _with_forwarded_client(scope: dict[str, Any]) -> dict[str, Any]:
    """A forwarded request's scope with the original client's address and TLS client
    certificate (from the standby), never the standby's own cluster certificate."""
    out = {**scope, "extensions": {k: v for k, v in (scope.get("extensions") or {}).items()
                                   if k != "tls"}}
    for k, v in scope["headers"]:
        if k == CLIENT_ADDR_HEADER:
            host, _, port = v.decode("latin-1").rpartition(":")
            if host:
                out["client"] = (host, int(port) if port.isdigit() else 0)
        elif k == CLIENT_CERT_HEADER:
            out["extensions"]["tls"] = {"client_cert_chain": _certs_from_header(v)}
    return out


def _cert_header(scope: dict[str, Any]) -> bytes | None:
    """The CLIENT_CERT_HEADER value for the client's TLS certificate (None: no TLS)."""
    tls = (scope.get("extensions") or {}).get("tls")
    if tls is None:
        return None
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return b"-"
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(chain[0]))


def _certs_from_header(value: bytes) -> list[str]:
    if value == b"-":
        return []
    try:
        return [ssl.DER_cert_to_PEM_cert(base64.b64decode(value, validate=True))]
    except (ValueError, binascii.Error):
        return []


def _may_serve_locally(method: str, path: str) -> bool:
    """Reads, and the writes that only compute (encrypt, decrypt, sign...), are tried on a
    performance standby; a storage write inside them still ends up on the active node."""
    if method in ("GET", "HEAD", "LIST"):
        return True
    if method not in ("POST", "PUT"):
        return False
    return _LOCAL_UPDATE.search(path) is not None


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # a second receive waits for a disconnect that never matters here
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "LIST"})


async def _redirect(send: Any, api_addr: str, path_qs: str) -> None:
    base = api_addr.rstrip("/")
    if "://" not in base:
        base = "https://" + base
    await send({"type": "http.response.start", "status": 307,
                "headers": [*JSON_HEADERS, (b"location", (base + path_qs).encode())]})
    await send({"type": "http.response.body", "body": b""})


async def _respond(send: Any, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]] = JSON_HEADERS) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
