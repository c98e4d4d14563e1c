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

import logging
import re
import sys
import time
from typing import Any

import orjson

from transit import metrics
from transit.api.app import DEFAULT_MAX_REQUEST_SIZE
from transit.api.edge import (
    CLIENT_ADDR_HEADER,
    CLIENT_CERT_HEADER,
    Incoming,
    cert_header,
    incoming,
)
from transit.api.ports import GateNode
from transit.api.wire import JSON_HEADERS, error_body, sized
from transit.cluster.forward import NOT_ACTIVE_HEADERS, ForwardingError, LeaderNotActive
from transit.cluster.listener import FORWARDED_SCOPE
from transit.core import ECHO_PATH as CORE_ECHO_PATH
from transit.errors import ForwardToActive, RequestTooLarge, TransitError, UserError

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
# CLIENT_ADDR_HEADER and CLIENT_CERT_HEADER (transit/api/edge.py): the client's address and
# TLS client certificate, added by the forwarding standby (any copy the client sent is
# dropped) and believed only on the mutual-TLS cluster listener: bound-CIDR checks, TLS
# certificate logins and audit entries of a forwarded request see the real client, as
# Vault's forwarded RPC carries its RemoteAddr and peer certificates.
_FORWARD = "vault.ha.rpc.client.forward"  # telemetry (transit/metrics.py)
_FORWARD_ERRORS = ("vault.ha.rpc.client.forward.errors",)


class ForwardingGate:
    def __init__(self, app: Any, core: GateNode, max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
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
        inc = incoming(scope)  # the edge's one parse of this request (transit/api/edge.py)
        path = inc.path
        if core.ha.activating and not core.ha.is_active:
            await core.ha.activated()  # mid-activation: answer as the active node it becomes
        if inc.forwarded:  # (its client address is the standby's X-Transit-Forwarded-Client)
            if path == ECHO_PATH:
                await self._echo(inc, receive, send)
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
        if core.perf_standby and _may_serve_locally(inc.method, path):
            verdict = await self._consistency(inc)
            if verdict == "forward":
                await self._forward(scope, inc, receive, send)
                return
            if verdict is not None:
                status, body = verdict
                await _respond(send, status, body)
                return
            if not await self._read_body(inc, receive, send):
                return
            inc.local_attempt = True  # the app re-raises ForwardToActive instead of a 503
            try:
                await self.app(scope, receive, send)  # the body is already in `inc`
                return
            except ForwardToActive as exc:  # nothing was sent yet: the app answers at the end
                log.debug("forwarding after a local attempt: %s", exc)
            finally:
                inc.local_attempt = False
            await self._forward(scope, inc, receive, send)
            return
        await self._forward(scope, inc, receive, send)

    async def _read_body(self, inc: Incoming, receive: Any, send: Any) -> bool:
        """Read the request body into `inc` (once); False when it was over the listener's
        max_request_size (answered 413 here) or the client left before its end."""
        try:
            await inc.read_body(receive, self.max_request_size)
        except RequestTooLarge:
            await _respond(send, 413, error_body(["http: request body too large"]))
            return False
        except UserError:  # disconnected: the answer goes nowhere, nothing is sent on
            return False
        return True

    async def _consistency(self, inc: Incoming) -> Any:
        """Vault's client-controlled consistency on a performance standby: a request that
        carries X-Vault-Index is served here only once the local replica has that state
        (waiting up to `core.index_wait`); otherwise it is forwarded when the client sent
        `X-Vault-Inconsistent: forward-active-node`, or refused with 412."""
        if not inc.index:
            return None
        try:
            if await self.core.index_reached(list(inc.index)):
                return None
        except UserError as exc:
            return 400, error_body([exc.message])
        except TransitError:  # the index key has not reached this replica yet
            pass
        if inc.inconsistent.strip().lower() == b"forward-active-node":
            return "forward"
        return 412, error_body(["required index state not present"])

    async def _forward(self, scope: dict[str, Any], inc: Incoming, receive: Any, send: Any
                       ) -> None:
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
        path_qs = inc.raw_path.decode("latin-1")
        if inc.query:
            path_qs += "?" + inc.query.decode("latin-1")
        if not self.core.perf_standby and inc.no_forwarding:
            await _redirect(send, leader.api_addr, path_qs)
            return
        if not await self._read_body(inc, receive, send):
            return
        body = inc.body
        assert body is not None  # read just above
        method = inc.method
        client = inc.client
        headers = [(k, v) for k, v in scope["headers"]
                   if k != CLIENT_ADDR_HEADER and k != CLIENT_CERT_HEADER]
        if client[0]:
            headers.append((CLIENT_ADDR_HEADER, f"{client[0]}:{client[1]}".encode()))
        cert = cert_header(inc.client_certs)
        if cert is not None:
            headers.append((CLIENT_CERT_HEADER, cert))
        try:
            status, out_headers, out_body = await self.core.forwarder.forward(
                leader, method, path_qs, headers, body)
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
                await self.app(scope, receive, send)  # was sent): answer it here (the
                return  # body is already in `inc`)
                return
            if fresh is None:
                await _respond(send, 503, error_body(["no active Vault instance found"]))
                return
            leader = fresh
            try:
                status, out_headers, out_body = await self.core.forwarder.forward(
                    leader, method, path_qs, headers, body)
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

    async def _echo(self, inc: Incoming, receive: Any, send: Any) -> None:
        try:
            info = orjson.loads(await inc.read_body(receive, sys.maxsize))
            self.core.record_echo(info, time.time())
            await _respond(send, 204, b"")
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError, UserError):
            await _respond(send, 400, error_body(["invalid echo"]))


def _may_serve_locally(method: str, path: str) -> bool:
    """Reads, and the writes that only compute (encrypt, decrypt, sign...), are tried on a
    performance standby; a storage write inside them still ends up on the active node."""
    if method in ("GET", "HEAD", "LIST"):
        return True
    if method not in ("POST", "PUT"):
        return False
    return _LOCAL_UPDATE.search(path) is not None


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "LIST"})


async def _redirect(send: Any, api_addr: str, path_qs: str) -> None:
    base = api_addr.rstrip("/")
    if "://" not in base:
        base = "https://" + base
    await send({"type": "http.response.start", "status": 307,
                "headers": sized([*JSON_HEADERS, (b"location", (base + path_qs).encode())], b"")})
    await send({"type": "http.response.body", "body": b""})


async def _respond(send: Any, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]] = JSON_HEADERS) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": sized(headers, body) if status != 204 else headers})
    await send({"type": "http.response.body", "body": body})
