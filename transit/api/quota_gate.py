"""Rate-limit quotas at the edge: a pure ASGI middleware in front of everything else.

As in Vault, the quota is checked before authentication and keyed by the client's address,
on the node that received the connection; a request forwarded to the active node by a
standby was counted there and is not counted again. A request over its rule's limit gets 429
`request path "<path>": rate limit quota exceeded` (and `Retry-After` plus the
`X-Ratelimit-*` headers when `enable_rate_limit_response_headers` is set). With no rules,
the cost is the request's one header parse (transit/api/edge.py, which the API app needs anyway),
one attribute read and a dict's truth value.
"""

from __future__ import annotations

from typing import Any

from transit.api.app import METHOD_OPS
from transit.api.edge import incoming
from transit.api.ports import QuotaNode
from transit.api.wire import JSON_HEADERS, error_body, sized
from transit.errors import NoHandler
from transit.logical import READ, UPDATE, Request
from transit.ratelimit import Buckets

PREFIX = "/v1/"


class QuotaGate:
    def __init__(self, app: Any, core: QuotaNode, buckets: Buckets) -> None:
        self.app = app
        self.core = core
        self.buckets = buckets

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # the outermost API layer: the request's one parse (transit/api/edge.py) starts here
        inc = incoming(scope)
        core = self.core
        table = core.quotas.table
        if (not table.rules or inc.forwarded or core.sealed
                or not inc.path.startswith(PREFIX)):
            await self.app(scope, receive, send)
            return
        path = inc.path[len(PREFIX):]
        if table.exempt(path) or not path.isprintable():
            await self.app(scope, receive, send)
            return
        try:
            _, inner, _, mount_path, _, _ = core.route(path)
        except NoHandler:
            mount_path, inner = "", path
        rule = table.match(mount_path, inner)
        if rule is None:
            await self.app(scope, receive, send)
            return
        client = inc.client[0]
        identity = f"{rule.name}\0{rule.rate}\0{rule.interval}\0{rule.block_interval}"
        verdict = self.buckets.take(Buckets.key(identity, client), rule.tokens,
                                    float(rule.interval), float(rule.block_interval))
        headers: list[tuple[bytes, bytes]] = []
        if table.config.enable_rate_limit_response_headers:
            headers = [(b"x-ratelimit-limit", str(verdict.limit).encode()),
                       (b"x-ratelimit-remaining", str(verdict.remaining).encode()),
                       (b"x-ratelimit-reset", str(verdict.reset_seconds).encode())]
        if verdict.allowed:
            if not headers:
                await self.app(scope, receive, send)
                return

            async def send_with_headers(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), *headers]}
                await send(message)

            await self.app(scope, receive, send_with_headers)
            return
        message = f'request path "{path}": rate limit quota exceeded'
        if table.config.enable_rate_limit_audit_logging:
            method = inc.method
            await core.audit_refused(Request(
                METHOD_OPS.get(method) or (READ if method == "HEAD" else UPDATE),
                path, {}, None,
                id=inc.request_id, remote_addr=inc.client[0], remote_port=inc.client[1]),
                message)
        if headers:
            headers.append((b"retry-after", str(verdict.reset_seconds).encode()))
        body = error_body([message])
        await send({"type": "http.response.start", "status": 429,
                    "headers": sized([*JSON_HEADERS, *headers], body)})
        await send({"type": "http.response.body", "body": body})
