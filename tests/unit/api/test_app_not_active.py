"""The typed "not the active node" signal of the cluster port (errors.NotActive).

The real VaultApp over an in-memory core, called in process with ASGI scopes as the API and
cluster listeners build them. A request refused before any work, when it came in on the cluster
port, carries `NOT_ACTIVE_HEADER` (the forwarding standby then re-sends it to the new leader);
a request whose handler ran before the lock was found lost does not (its write may be durable:
never re-sent); a client on the API port never sees the header.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from transit.api.app import VaultApp
from transit.cluster.forward import NOT_ACTIVE_HEADER
from transit.cluster.listener import FORWARDED_SCOPE
from transit.core import Core
from transit.storage.inmem import InmemBackend


class Ha:
    """What Core.handle reads of the HA controller."""

    def __init__(self) -> None:
        self.state, self.epoch, self.fresh, self.why = "active", 3, True, ""

    @property
    def serving(self) -> bool:
        return self.state == "active" and self.fresh

    def deposed(self, why: str = "fenced") -> None:
        self.fresh, self.why = False, why


def _scope(path: str, forwarded: bool, method: str) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": b"", "headers": [(b"x-vault-token", b"root"),
                                         (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8200),
    }
    if forwarded:
        scope[FORWARDED_SCOPE] = True
    return scope


async def _call(app: VaultApp, path: str, body: bytes, forwarded: bool, method: str = "POST"
                ) -> tuple[int, dict[bytes, bytes], Any]:
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(path, forwarded, method), receive, send)
    start, out = sent[0], sent[1]
    return start["status"], dict(start["headers"]), orjson.loads(out["body"] or b"null")


def test_refused_before_any_work_is_marked_only_on_the_cluster_port() -> None:
    async def go() -> None:
        core = Core(InmemBackend())
        await core.setup_dev("root")
        app = VaultApp(core)
        status, _, _ = await _call(app, "/v1/transit/keys/k", b"{}", False)
        assert status in (200, 204)
        ha = Ha()
        core.ha = ha  # type: ignore[assignment]
        body = b'{"plaintext": "aGk="}'
        status, headers, _ = await _call(app, "/v1/transit/encrypt/k", body, True)
        assert status == 200 and NOT_ACTIVE_HEADER not in headers

        ha.fresh = False  # past ttl - margin: refused before routing
        status, headers, out = await _call(app, "/v1/transit/encrypt/k", body, True)
        assert (status, out) == (503, {"errors": ["node is not active"]})
        assert headers.get(NOT_ACTIVE_HEADER) == b"1"
        status, headers, out = await _call(app, "/v1/transit/encrypt/k", body, False)
        assert (status, out) == (503, {"errors": ["node is not active"]})
        assert NOT_ACTIVE_HEADER not in headers  # a client never sees it

    asyncio.run(go())


def test_refused_after_the_handler_ran_is_not_marked() -> None:
    """The lock turns out lost once the rotation was written: 503, and no header, so the
    standby relays the 503 instead of rotating the key a second time on the new leader."""

    async def go() -> None:
        core = Core(InmemBackend())
        await core.setup_dev("root")
        app = VaultApp(core)
        await _call(app, "/v1/transit/keys/k", b"{}", False)
        ha = Ha()
        core.ha = ha  # type: ignore[assignment]
        route = core.route

        def losing_route(path: str) -> Any:
            routed = route(path)
            if path.endswith("/rotate"):
                engine = routed[0]

                class LosesLockAfter:
                    async def exists(self, req: Any) -> bool:
                        return await engine.exists(req)

                    async def handle(self, req: Any) -> Any:
                        resp = await engine.handle(req)
                        ha.fresh = False  # the lock was lost while it ran
                        return resp

                return (LosesLockAfter(), *routed[1:])
            return routed

        core.route = losing_route  # type: ignore[method-assign]
        status, headers, out = await _call(app, "/v1/transit/keys/k/rotate", b"", True)
        assert (status, out) == (503, {"errors": ["node is not active"]})
        assert NOT_ACTIVE_HEADER not in headers
        ha.fresh = True
        core.route = route  # type: ignore[method-assign]
        status, _, out = await _call(app, "/v1/transit/keys/k", b"", False, "GET")
        assert status == 200 and out["data"]["latest_version"] == 2  # the rotation happened

    asyncio.run(go())
