"""Rate-limit quotas at the edge: a pure ASGI middleware in front of everything else.

As in Vault, the quota is checked before authentication and keyed by the client's address,
on the node that received the connection; a request forwarded to the active node by a
standby was counted there and is not counted again. A request over its rule's limit gets 429
`request path "<path>": rate limit quota exceeded` (and `Retry-After` plus the
`X-Ratelimit-*` headers when `enable_rate_limit_response_headers` is set). With no rules,
the cost is one attribute read and a dict's truth value.
"""

from __future__ import annotations

import math
from typing import Any

from transit.api.app import METHOD_OPS
from transit.api.forwarding import FORWARDED_SCOPE_KEY
from transit.api.wire import JSON_HEADERS, error_body, request_id
from transit.errors import NoHandler
from transit.logical import READ, UPDATE, Request
from transit.ratelimit import Buckets

PREFIX = "/v1/"


class QuotaGate:
    def __init__(self, app: Any, core: Any, buckets: Buckets) -> None:
        self.app = app
        self.core = core
        self.buckets = buckets

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        core = self.core
        table = core.quotas.table
        if (not table.rules or scope["type"] != "http" or scope.get(FORWARDED_SCOPE_KEY)
                or core.sealed or not scope["path"].startswith(PREFIX)):
            await self.app(scope, receive, send)
            return
        path = scope["path"][len(PREFIX):]
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
        client = (scope.get("client") or ("", 0))[0]
        identity = f"{rule.name}\0{rule.rate}\0{rule.interval}\0{rule.block_interval}"
        verdict = self.buckets.take(Buckets.key(identity, client), rule.tokens,
                                    float(rule.interval), float(rule.block_interval))
        headers: list[tuple[bytes, bytes]] = []
        if table.config.enable_rate_limit_response_headers:
            headers = [(b"x-ratelimit-limit", str(verdict.limit).encode()),
                       (b"x-ratelimit-remaining", str(verdict.remaining).encode()),
                       (b"x-ratelimit-reset", str(math.ceil(verdict.reset)).encode())]
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
            client = scope.get("client") or ("", 0)
            await core.audit_refused(Request(
                METHOD_OPS.get(scope["method"]) or (READ if scope["method"] == "HEAD" else UPDATE),
                path, {}, None,
                id=request_id().decode(), remote_addr=client[0], remote_port=client[1]),
                message)
        if headers:
            headers.append((b"retry-after", str(math.ceil(verdict.reset)).encode()))
        body = error_body([message])
        await send({"type": "http.response.start", "status": 429,
                    "headers": [*JSON_HEADERS, *headers]})
        await send({"type": "http.response.body", "body": body})
