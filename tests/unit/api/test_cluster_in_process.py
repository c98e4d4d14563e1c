"""An active and two standby API apps in one process over the in-memory HA backend.

Three `Core`s share one `InmemHABackend` store (each through its own handle, as three servers
share one Redis) and each runs its real HA controller. Each node's API app is built as
`transit.server` builds it for HA storage, the forwarding gate (transit/api/forwarding.py) in
front of `VaultApp`, and is driven through httpx's ASGI transport; the active node's cluster
listener (real mutual TLS) runs on 127.0.0.1, so a standby forwards over a real socket. The
cluster starts as users start one: `sys/init` on one node, then every node unsealed at once.

Proved here: standbys answer `sys/health` and `sys/leader` as Vault's do; a write sent to a
plain standby is forwarded to the active node (a 307 to its `api_addr` with
`X-Vault-No-Request-Forwarding`); a stale leader is recognised by the typed
`X-Transit-Not-Active` header alone, never by the body text; after the active node steps down,
a standby takes over. Waits are bounded polls on state, never sleeps as assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.helpers import free_port
from transit.api.app import VaultApp
from transit.api.forwarding import ForwardingGate
from transit.api.protocol import VaultHttpToolsProtocol
from transit.cluster.forward import NOT_ACTIVE_HEADER
from transit.cluster.listener import ClusterListener
from transit.cluster.roles import HaOptions
from transit.core import Core
from transit.storage.inmem_ha import InmemHABackend

NAMES = ("node-a", "node-b", "node-c")
RETRY = 0.05  # how often a standby tries the lock (the server's default is 1 s)


class Node:
    """One node: its handle on the shared store, its core, its gated API app, a client."""

    def __init__(self, name: str, backend: InmemHABackend) -> None:
        self.name = name
        self.backend = backend
        self.api_addr = f"http://{name}.test:8200"
        port = free_port()
        self.core = Core(backend, storage_type="inmem")
        self.app = ForwardingGate(VaultApp(self.core), self.core)
        self.core.enable_ha(backend, HaOptions(
            node_id=name, api_addr=self.api_addr,
            cluster_addr=f"https://127.0.0.1:{port}", cluster_listen=f"127.0.0.1:{port}",
            lock_ttl=backend.lock_ttl, http=VaultHttpToolsProtocol, app=self.app,
            perf_standby=False,
        ))
        assert self.core.ha is not None
        self.ha = self.core.ha
        self.ha.retry = RETRY
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                      base_url=self.api_addr)
        self.token = ""

    async def call(self, method: str, path: str, json: Any = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        sent = {"X-Vault-Token": self.token, **(headers or {})} if self.token else headers
        return await self.http.request(method, f"/v1/{path}", json=json, headers=sent)

    async def close(self) -> None:
        await self.ha.stop()
        if self.core.forwarder is not None:
            await self.core.forwarder.close()
        await self.http.aclose()
        await self.backend.close()


async def until(check: Callable[[], Awaitable[bool] | bool], what: str,
                timeout: float = 10.0) -> None:
    """Poll `check` (bounded) until it holds; fail naming `what` at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = check()
        if isinstance(got, Awaitable):
            got = await got
        if got:
            return
        assert loop.time() < deadline, f"not reached within {timeout} s: {what}"
        await asyncio.sleep(0.01)


def active_of(nodes: list[Node]) -> list[Node]:
    return [n for n in nodes if n.ha.is_active]


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[list[Node]]:
    """Three nodes, initialised through one and unsealed at once; yields once one node is
    active and both standbys see its advertisement. Every node has the root token."""
    store = InmemHABackend(owner=NAMES[0])
    nodes = [Node(NAMES[0], store), *(Node(n, store.connect(n)) for n in NAMES[1:])]
    try:
        for n in nodes:
            await n.core.start()
        r = await nodes[0].call("POST", "sys/init",
                                json={"secret_shares": 1, "secret_threshold": 1})
        assert r.status_code == 200, r.text
        init = r.json()
        unsealed = await asyncio.gather(*(
            n.call("PUT", "sys/unseal", json={"key": init["keys_base64"][0]}) for n in nodes))
        assert [u.json()["sealed"] for u in unsealed] == [False] * 3, [u.text for u in unsealed]
        for n in nodes:
            n.token = init["root_token"]
        await until(lambda: len(active_of(nodes)) == 1, "one active node")
        await until(lambda: all_see_leader(nodes), "standbys see the advertisement")
        yield nodes
    finally:
        for n in nodes:
            await n.close()


async def all_see_leader(nodes: list[Node]) -> bool:
    active = active_of(nodes)
    if len(active) != 1:
        return False
    for n in nodes:
        r = await n.call("GET", "sys/leader")
        if r.json()["leader_address"] != active[0].api_addr:
            return False
    return True


def roles(nodes: list[Node]) -> tuple[Node, list[Node]]:
    (active,) = active_of(nodes)
    return active, [n for n in nodes if n is not active]


def test_standbys_answer_health_and_leader_as_vault_does() -> None:
    async def go() -> None:
        async with cluster() as nodes:
            active, standbys = roles(nodes)
            r = await active.call("GET", "sys/health")
            assert r.status_code == 200 and r.json()["standby"] is False
            leader = (await active.call("GET", "sys/leader")).json()
            assert leader["ha_enabled"] is True and leader["is_self"] is True
            assert leader["active_time"] != "0001-01-01T00:00:00Z"
            for s in standbys:
                health = await s.call("GET", "sys/health")
                assert health.status_code == 429  # Vault's standbycode
                body = health.json()
                assert body["standby"] is True and body["performance_standby"] is False
                assert body["initialized"] is True and body["sealed"] is False
                assert (await s.call("GET", "sys/health?standbyok=true")).status_code == 200
                assert (await s.call("GET", "sys/health?standbycode=299")).status_code == 299
                head = await s.call("HEAD", "sys/health")
                assert head.status_code == 429 and head.content == b""
                leader = (await s.call("GET", "sys/leader")).json()
                assert leader["ha_enabled"] is True and leader["is_self"] is False
                assert leader["leader_address"] == active.api_addr
                assert leader["leader_cluster_address"] == active.core.cluster_addr
                assert leader["active_time"] == "0001-01-01T00:00:00Z"
                assert leader["performance_standby"] is False
                # answered by the standby itself, not forwarded: sealed status is its own
                seal = (await s.call("GET", "sys/seal-status")).json()
                assert seal["sealed"] is False and seal["storage_type"] == "inmem"

    asyncio.run(go())


def test_a_write_on_a_standby_is_forwarded_to_the_active_node() -> None:
    async def go() -> None:
        async with cluster() as nodes:
            active, (s1, s2) = roles(nodes)
            r = await s1.call("POST", "sys/mounts/tx", json={"type": "transit"})
            assert r.status_code == 204, r.text
            r = await s2.call("POST", "tx/keys/k", json={})
            assert r.status_code in (200, 204), r.text
            assert (await active.call("GET", "tx/keys/k")).json()["data"]["name"] == "k"
            # a read on a plain standby is forwarded too, and answered by the active node
            r = await s1.call("GET", "tx/keys/k")
            assert r.status_code == 200 and r.json()["data"]["latest_version"] == 1
            # the active node's answer comes back verbatim, errors included
            r = await s2.call("POST", "tx/keys/k", json={"type": "no-such-type"})
            assert r.status_code == 400 and r.json()["errors"], r.text
            bad = await s2.http.post("/v1/tx/keys/j", content=b"{not json",
                                     headers={"X-Vault-Token": s2.token})
            assert bad.status_code == 400 and bad.json()["errors"], bad.text
            assert (await active.call("GET", "tx/keys/j")).status_code == 404
            # X-Vault-No-Request-Forwarding: a plain standby redirects instead
            r = await s1.call("POST", "tx/keys/k2?x=1", json={},
                              headers={"X-Vault-No-Request-Forwarding": "true"})
            assert r.status_code == 307
            assert r.headers["location"] == f"{active.api_addr}/v1/tx/keys/k2?x=1"
            assert (await active.call("GET", "tx/keys/k2")).status_code == 404

    asyncio.run(go())


def test_after_step_down_a_standby_takes_over() -> None:
    async def go() -> None:
        async with cluster() as nodes:
            old, standbys = roles(nodes)
            assert (await old.call("POST", "sys/mounts/tx", json={"type": "transit"})
                    ).status_code == 204
            assert (await old.call("PUT", "sys/step-down")).status_code == 204
            await until(lambda: not old.ha.is_active and len(active_of(standbys)) == 1,
                        "a standby took over")
            await until(lambda: all_see_leader(nodes), "every node sees the new leader")
            new, _ = roles(nodes)
            assert new is not old
            assert (await old.call("GET", "sys/health")).status_code == 429
            assert (await new.call("GET", "sys/health")).status_code == 200
            # the old active node forwards to the new one now; the mount survived
            r = await old.call("POST", "tx/keys/after", json={})
            assert r.status_code in (200, 204), r.text
            assert (await new.call("GET", "tx/keys/after")).status_code == 200

    asyncio.run(go())


async def bound(listener: ClusterListener) -> bool:
    """Start `listener`; False while its address is still taken."""
    try:
        await listener.start()
    except OSError:
        return False
    return True


class Answers:
    """ASGI middleware on the stale leader's cluster port: records each answer's status and
    headers; with `strip`, drops the typed not-active header (a body text is all that's left)."""

    def __init__(self, app: Any, strip: bool) -> None:
        self.app, self.strip = app, strip
        self.seen: list[tuple[int, list[tuple[bytes, bytes]]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def relay(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                self.seen.append((message["status"], headers))
                if self.strip:
                    message = {**message, "headers": [
                        (k, v) for k, v in headers if k.lower() != NOT_ACTIVE_HEADER]}
            await send(message)

        await self.app(scope, receive, relay)


@pytest.mark.parametrize("marked", [True, False], ids=["typed-header", "body-text-only"])
def test_a_stale_leader_is_recognised_by_the_typed_header_alone(marked: bool) -> None:
    """A standby whose view of the leader is stale forwards to the old active node, whose
    cluster port still answers. That node, a standby now, refuses with 503 "node is not
    active" and the typed header: the forwarding standby looks the leader up again and sends
    the write to the new active node. The same 503 without the header is an answer like any
    other (relayed verbatim, never re-sent): the body text alone means nothing."""

    async def go() -> None:
        async with cluster() as nodes:
            old, (s1, s2) = roles(nodes)
            assert (await s2.call("POST", "sys/mounts/tx", json={"type": "transit"})
                    ).status_code == 204
            stale_view = await s2.ha.leader()
            assert stale_view is not None and stale_view.node_id == old.name
            # s2 stops competing and keeps its view of the leader: a standby whose view
            # is behind (its election loop has not looked at the lock since the failover)
            await s2.ha.stop()
            s2.ha.leader_refresh = 3600.0
            assert (await old.call("PUT", "sys/step-down")).status_code == 204
            await until(lambda: s1.ha.is_active and not old.ha.is_active, "s1 took over")
            # the old leader's cluster port still answers (e.g. a listener slow to close):
            # served again on its address once the old listener has let go of it
            answers = Answers(old.app, strip=not marked)
            listener = ClusterListener(answers, old.core.roles.cluster_listen, stale_view,
                                       http=VaultHttpToolsProtocol)
            await until(lambda: bound(listener), "the old cluster port is free again")
            try:
                assert await s2.ha.leader() == stale_view
                r = await s2.call("POST", "tx/keys/k", json={})
            finally:
                await listener.stop()
            assert [status for status, _ in answers.seen] == [503]
            assert (NOT_ACTIVE_HEADER, b"1") in answers.seen[0][1]
            created = await s1.call("GET", "tx/keys/k")
            if marked:
                assert r.status_code in (200, 204), r.text
                assert created.status_code == 200
                assert (await s2.ha.leader()) is not None
                assert (await s2.ha.leader()).node_id == s1.name  # type: ignore[union-attr]
            else:
                assert r.status_code == 503 and r.json() == {"errors": ["node is not active"]}
                assert NOT_ACTIVE_HEADER.decode() not in r.headers
                assert created.status_code == 404  # not re-sent to the new leader

    asyncio.run(go())
