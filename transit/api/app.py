"""The ASGI application: Vault's HTTP API in front of the core.

A pure ASGI callable (no Starlette middleware classes): take the request's one parse
(`transit/api/edge.py`: headers, client, body read within the size limit), decode the body,
authenticate, route by the mount table, call the engine, and render Vault's envelope or
error body. Status endpoints that need no token are answered by `status.py`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl

import orjson

from transit import errors, metrics, monitor
from transit.api.edge import EDGE_KEY, Incoming, incoming
from transit.api.jsonlimits import DEFAULT_LIMITS, JSONLimits
from transit.api.status import APP_ANSWERED, STATUS_HANDLERS, sys_metrics, sys_monitor
from transit.api.wire import JSON_HEADERS, envelope, error_body, error_response, sized
from transit.cluster.forward import NOT_ACTIVE_HEADERS
from transit.core import Core
from transit.fields import parse_bool
from transit.logical import DELETE, LIST, PATCH, READ, UPDATE, Request, Response

log = logging.getLogger("transit.api")

Scope = dict[str, Any]

# HTTP method -> logical operation (HEAD is answered by the status handlers only)
METHOD_OPS = {"GET": READ, "POST": UPDATE, "PUT": UPDATE, "DELETE": DELETE, "LIST": LIST,
               "PATCH": PATCH}

_NO_DATA_OPS = (READ, LIST)


DEFAULT_MAX_REQUEST_SIZE = 32 * 1024 * 1024
DEFAULT_MAX_BATCH_ITEMS = 10_000
# A path with a non-printable character (a control character, percent-encoded or raw, or any
# other rune Go's unicode.IsPrint refuses, e.g. U+0085, U+00A0, U+200B) is refused before
# anything else, as OpenBao does: a bare 400 there (no message), here in Vault's error body.
_BAD_PATH = 400, JSON_HEADERS, error_body([])
# The request the core handled (for telemetry), set in the ASGI scope by `_handle`.
REQUEST_KEY = "transit.request"
_HANDLE_REQUEST = "vault.core.handle_request"
_STATUS_TEXT = {c: str(c) for c in range(100, 600)}
_TEXT_PLAIN = [(b"content-type", b"text/plain; charset=utf-8")]
_PROMETHEUS = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]


class _Stream(bytes):
    """The type of `_STREAM` (a distinct object: `b""` itself is a shared singleton)."""


_STREAM = _Stream()  # `_handle`'s body for sys/monitor: `__call__` streams (identity-compared)
_MONITOR_KEY = "transit.monitor"
_APP_ANSWERED = (sys_metrics, sys_monitor)


class VaultApp:
    def __init__(
        self, core: Core, *, max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS, json_limits: JSONLimits = DEFAULT_LIMITS,
        unauthenticated_metrics_access: bool = False,
    ) -> None:
        self.core = core
        self.unauthenticated_metrics_access = unauthenticated_metrics_access
        self.json_limits = json_limits
        # Vault: a negative max_request_size means no limit
        self.max_request_size = max_request_size if max_request_size >= 0 else sys.maxsize
        self.max_batch_items = max_batch_items

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        started = perf_counter()
        try:
            status_code, headers, body = await self._handle(scope, receive)
            if body is _STREAM and _MONITOR_KEY in scope:
                level, fmt = scope[_MONITOR_KEY]
                await monitor.stream(self.core, level, fmt, receive, send)
                return
        except errors.ForwardToActive:
            if incoming(scope).local_attempt:
                raise  # the forwarding gate sends the whole request to the active node
            # this node stopped being active mid-request: nothing was written
            status_code, body = 503, error_body(["node is not active"])
            headers = NOT_ACTIVE_HEADERS if incoming(scope).forwarded else JSON_HEADERS
        except errors.TransitError as exc:
            status_code, body = error_response(exc)
            headers = (NOT_ACTIVE_HEADERS if isinstance(exc, errors.NotActive)
                       and incoming(scope).forwarded else JSON_HEADERS)
        except Exception:  # never a traceback on the wire
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            status_code, body, headers = 500, error_body(["internal error"]), JSON_HEADERS
        if status_code in (204, 304) or status_code < 200:
            body = b""  # e.g. a sys/health code override of 204: HTTP forbids a body
        else:  # as Go's net/http for a body written at once: a length, not chunks
            headers = sized(headers, body)
        await send({"type": "http.response.start", "status": status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if metrics.enabled:
            _count(scope, status_code, started)

    async def _handle(self, scope: Scope, receive: Any) -> tuple[int, list[Any], bytes]:
        # the edge's one parse of this request (transit/api/edge.py), made by the outer layer
        inc: Incoming | None = scope.get(EDGE_KEY)
        if inc is None:
            inc = incoming(scope)
        path = inc.path  # percent-decoded by the HTTP parser
        if not path.isprintable():  # before routing, token lookup, the ACL and the body
            return _BAD_PATH
        if not path.startswith("/v1/"):
            return 404, JSON_HEADERS, error_body([])
        rel = path[4:]
        method = inc.method
        query = inc.query

        status_handler = None
        if rel.startswith("sys/"):  # where every status endpoint is (tests/unit/api/test_edge.py)
            status_handler = STATUS_HANDLERS.get(rel.rstrip("/"))
            if status_handler is None:
                status_handler = APP_ANSWERED.get(rel)  # sys/metrics, sys/monitor (no "/")
        if status_handler is sys_metrics and (
                self.unauthenticated_metrics_access or method != "GET"):
            if method != "GET":  # a logical read only: other verbs as Vault's raw handler
                return 405, JSON_HEADERS, error_body([])
            return _metrics_answer(inc, _query(query))  # unauthenticated_metrics_access
        if status_handler is not None and status_handler not in _APP_ANSWERED:
            # unauthenticated, raw JSON, never audited
            if method not in ("GET", "HEAD", "PUT", "POST") and not (
                    method == "DELETE" and getattr(status_handler, "accepts_delete", False)):
                raise errors.UnsupportedOperation()
            payload = (self._decode(await inc.read_body(receive, self.max_request_size))
                       if method in ("PUT", "POST") else {})
            code, body = await status_handler(self.core, method, _query(query), payload)
            return code, JSON_HEADERS, (b"" if method == "HEAD" else body)

        op = METHOD_OPS.get(method)
        if op is None:
            return 405, JSON_HEADERS, error_body([f"unsupported method {method}"])

        body = await inc.read_body(receive, self.max_request_size)
        headers = inc.headers
        token = inc.token

        data: dict[str, Any]
        params = _query(query) if query else {}
        if op is READ and "list" in params:
            try:
                if parse_bool(params.pop("list")):
                    op = LIST
            except ValueError:
                # Vault answers a bad ?list= with a bare 400 and no message.
                return 400, JSON_HEADERS, error_body([])
        if op is PATCH:
            ctype = headers.get("content-type", "")
            if ctype.split(";")[0].strip().lower() != "application/merge-patch+json":
                return 415, JSON_HEADERS, error_body([
                    "PATCH requires Content-Type of application/merge-patch+json, "
                    f"provided {ctype}"])
        preauth = None
        if op in _NO_DATA_OPS or op is DELETE:
            data = params
        else:
            # Authentication before the body is decoded: an unauthenticated client never
            # gets its body parsed (None: a path that checks its token itself).
            if body:
                try:
                    preauth = await self.core.authenticate(rel, token)
                except errors.PermissionDenied:
                    client = inc.client
                    await self.core.audit_refused(Request(
                        op, rel, {}, None, client_token=token,
                        id=inc.request_id, remote_addr=client[0],
                        remote_port=client[1], headers=headers))
                    raise
            data = self._decode(body)
            batch = data.get("batch_input")
            if isinstance(batch, list) and len(batch) > self.max_batch_items:
                raise errors.UserError(
                    f"batch_input has {len(batch)} items; the maximum is {self.max_batch_items}"
                )

        client = inc.client
        req = Request(
            op, rel, data, None, client_token=token,
            id=inc.request_id,
            remote_addr=client[0], remote_port=client[1], headers=headers,
            client_certs=inc.client_certs,
        )
        if preauth is not None:
            req.token = preauth
        scope[REQUEST_KEY] = req
        resp = await self.core.handle(req, rel)
        if status_handler is not None:  # passed the token, ACL and audit: answer raw
            if status_handler is sys_metrics:
                return _metrics_answer(inc, params)
            if status_handler is sys_monitor:
                try:
                    scope[_MONITOR_KEY] = monitor.parse_query(params)
                except ValueError as exc:
                    return 400, JSON_HEADERS, error_body([str(exc)])
                return 200, [], _STREAM
        status, out_headers, body = _render(req.operation, resp, req.mount_type, req.id)
        if req.index_header:
            out_headers = [*out_headers, (b"x-vault-index", req.index_header.encode())]
        return status, out_headers, body

    def _decode(self, body: bytes) -> dict[str, Any]:
        """The JSON body, within the listener's JSON limits (transit/api/jsonlimits.py)."""
        return _decode_json(body, self.json_limits.decode)


def _count(scope: Scope, status: int, started: float) -> None:
    """Telemetry of one answered request (plain per-process counters: transit/metrics.py)."""
    req = scope.get(REQUEST_KEY)
    code = _STATUS_TEXT.get(status) or str(status)
    if req is None:  # answered before routing (status endpoints, malformed requests)
        method = scope["method"]
        metrics.observe((_HANDLE_REQUEST, "", METHOD_OPS.get(method) or method.lower(), code),
                        (perf_counter() - started) * 1000)
        return
    metrics.observe((_HANDLE_REQUEST, req.mount_path, req.operation, code),
                    (perf_counter() - started) * 1000)
    if req.mount_type == "transit" and status < 400:
        path = req.path
        op = "encrypt" if path.startswith("encrypt/") else (
            "decrypt" if path.startswith("decrypt/") else None)
        if op is not None:
            batch = req.data.get("batch_input")
            metrics.incr(("vault.transit.items", op),
                         len(batch) if isinstance(batch, list) else 1)


def _metrics_answer(inc: Incoming, params: dict[str, str]) -> tuple[int, list[Any], bytes]:
    """The raw body of sys/metrics (operations-api §4.2-4.3)."""
    fmt = params.get("format", "")
    if not fmt and inc.prometheus:
        fmt = "prometheus"
    if fmt == "prometheus":
        if metrics.settings.prometheus_retention_time <= 0:
            return 400, _TEXT_PLAIN, b"prometheus is not enabled"
        return 200, _PROMETHEUS, metrics.prometheus_text()
    if fmt and fmt != "json":
        return 400, _TEXT_PLAIN, f'metric response format "{fmt}" unknown'.encode()
    return 200, JSON_HEADERS, orjson.dumps(metrics.display_metrics())


def _render(
    op: str, resp: Response | None, mount_type: str, rid: str
) -> tuple[int, list[Any], bytes]:
    if resp is None:
        if op in _NO_DATA_OPS:
            return 404, JSON_HEADERS, error_body([])
        return 204, JSON_HEADERS, b""
    if op is LIST and resp.wrap_info is None:
        keys = resp.data.get("keys") if resp.data else None
        if not keys:
            return 404, JSON_HEADERS, error_body([])
    if resp.data is None and not resp.warnings and resp.auth is None and resp.wrap_info is None:
        # nothing to say: 204, or the status alone (Vault's RespondWithStatusCode(nil, 202))
        return resp.status or 204, JSON_HEADERS, b""
    return resp.status or 200, JSON_HEADERS, envelope(resp, mount_type, rid)


def _decode_json(body: bytes, loads: Callable[[bytes], Any]) -> dict[str, Any]:
    if not body or body.isspace():
        return {}
    try:
        data = loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.UserError(f"failed to parse JSON input: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise errors.UserError(
            f"failed to parse JSON input: expected a JSON object, got {type(data).__name__}"
        )
    return data


def _query(query: bytes) -> dict[str, str]:
    """Query parameters; only the first value of a repeated parameter counts."""
    out: dict[str, str] = {}
    for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        out.setdefault(k, v)
    return out


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
