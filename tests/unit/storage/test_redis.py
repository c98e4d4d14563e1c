"""RedisBackend against real redis-server processes: the Backend and HABackend conformance
suites (unfenced and fenced), layout, fencing, the HA lock, invalidation messages, replica
reads, Sentinel discovery, read-modify-write races across backend objects, durable commits,
and failure behaviour (a lost reply is OutcomeUnknown and never replayed; a stopped Redis is
Unavailable)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from tests.helpers import free_port
from tests.redis_fixtures import REDIS_SERVER, RedisServer, make_tls_files, redis_available
from transit.config import StorageConfig
from transit.errors import (
    ConfigError,
    Fenced,
    OutcomeUnknown,
    ReplicationUnconfirmed,
    StorageError,
    Unavailable,
)
from transit.storage.base import Write
from transit.storage.conformance.backend import BackendConformance
from transit.storage.conformance.ha import HABackendConformance, HAConnect
from transit.storage.factory import create_backend
from transit.storage.redis.backend import RedisBackend
from transit.storage.redis.lock import lock_value, parse_lock_value
from transit.storage.redis.options import TLSOptions
from transit.storage.update import update


def backend(srv: RedisServer, **kw: Any) -> RedisBackend:
    kw.setdefault("prefix", f"t{uuid.uuid4().hex[:8]}")
    return RedisBackend(address=srv.address, **kw)


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


class TestRedisConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, redis_server: RedisServer) -> Callable[[], RedisBackend]:
        return lambda: backend(redis_server, node_id="conformance")


class TestRedisFencedConformance(BackendConformance):
    """Every write of the Backend suite through the fenced script (this node holds the lock)."""

    @pytest.fixture
    def backend_factory(self, redis_server: RedisServer) -> Callable[[], Awaitable[RedisBackend]]:
        async def make() -> RedisBackend:
            b = backend(redis_server, node_id="fenced")
            b.fence = await b.acquire_lock("fenced")
            return b

        return make


class TestRedisHAConformance(HABackendConformance):
    """Each check on its own prefix; each `connect` is a new RedisBackend (one node)."""

    @pytest.fixture
    def ha_factory(self, redis_server: RedisServer) -> Callable[[], HAConnect]:
        def factory() -> HAConnect:
            prefix = f"ha{uuid.uuid4().hex[:8]}"
            return lambda owner, ttl: backend(redis_server, prefix=prefix, node_id=owner,
                                              lock_ttl=ttl)

        return factory


def test_layout_and_folder_index(redis_server: RedisServer) -> None:
    async def go() -> None:
        b = backend(redis_server, prefix="lay")
        await b.put("a/b/c", b"\x00v")
        await b.put("a/d", b"w")
        r = redis_server.client()
        assert r.get("lay/a/b/c") == b"\x00v"
        assert r.zrange("lay:list:", 0, -1) == [b"a/"]
        assert r.zrange("lay:list:a/", 0, -1) == [b"b/", b"d"]
        assert r.zrange("lay:list:a/b/", 0, -1) == [b"c"]
        await b.delete("a/b/c")
        assert not r.exists("lay/a/b/c", "lay:list:a/b/")
        assert r.zrange("lay:list:a/", 0, -1) == [b"d"]
        await b.delete("a/d")
        assert sorted(r.keys("lay*")) == [b"lay/core/index"]
        assert await b.list("") == []
        assert await b.list("a") == []  # a missing "/" is implied
        with pytest.raises(StorageError, match="reserved"):
            await b.put("core/lock", b"x")
        await b.close()

    asyncio.run(go())


def test_listing_matches_model_after_many_ops(redis_server: RedisServer) -> None:
    async def go() -> None:
        b = backend(redis_server)
        rng = random.Random(7)
        names = ["a", "b", "c", "a/x", "a/y", "a/x/1", "a/x/2", "b/q/r/s", "b/q/t", "c/d/e/f/g"]
        model: dict[str, bytes] = {}
        for i in range(800):
            key = rng.choice(names)
            if rng.random() < 0.55:
                model[key] = str(i).encode()
                await b.put(key, model[key])
            else:
                model.pop(key, None)
                await b.delete(key)
        folders = {""} | {k[: i + 1] for k in names for i, ch in enumerate(k) if ch == "/"}
        for folder in folders:
            expected = sorted(
                {
                    k[len(folder) :].split("/")[0] + ("/" if "/" in k[len(folder) :] else "")
                    for k in model
                    if k.startswith(folder)
                }
            )
            assert await b.list(folder) == expected, folder
        for key in names:
            assert await b.get(key) == model.get(key), key
        await b.close()

    asyncio.run(go())


def test_fencing_and_lock_takeover(redis_server: RedisServer) -> None:
    async def go() -> None:
        p = f"f{uuid.uuid4().hex[:6]}"
        a = backend(redis_server, prefix=p, node_id="node-a", lock_ttl=0.3)
        b = backend(redis_server, prefix=p, node_id="node-b", lock_ttl=0.3)
        epoch_a = await a.acquire_lock("node-a")
        assert epoch_a == 1
        assert await b.acquire_lock("node-b") is None  # held
        assert await b.lock_holder() == ("node-a", 1)
        assert redis_server.client().get(f"{p}/core/lock") == b"node-a:1"
        a.fence = epoch_a
        await a.put("k", b"from-a")
        assert await a.renew_lock("node-a", 1)

        # A paused past its TTL: the lock expires in Redis
        async def expired() -> bool:
            return await a.lock_holder() is None

        await wait_for(expired)
        epoch_b = await b.acquire_lock("node-b")
        assert epoch_b == 2
        b.fence = epoch_b
        index = await b.write_index()
        with pytest.raises(Fenced):
            await a.put("k", b"stale")
        with pytest.raises(Fenced):
            await a.put("new/key", b"stale")
        with pytest.raises(Fenced):
            await a.delete("k")
        assert await b.get("k") == b"from-a"
        assert await b.get("new/key") is None
        assert await b.list("") == ["k"]
        assert await b.write_index() == index  # a refused write bumps nothing

        assert not await a.renew_lock("node-a", 1)  # renew fails after takeover
        await a.release_lock("node-a", 1)  # not the owner: no effect
        assert await a.lock_holder() == ("node-b", 2)
        await b.put("k", b"from-b")
        assert await a.get("k") == b"from-b"
        assert await b.renew_lock("node-b", 2)
        await b.release_lock("node-b", 2)
        assert await a.lock_holder() is None
        with pytest.raises(Fenced):  # B's fence is stale once it released
            await b.put("k", b"after-release")
        b.fence = None  # unfenced writes always go through
        await b.put("k", b"unfenced")
        assert await a.acquire_lock("node-a") == 3
        for x in (a, b):
            await x.close()

    asyncio.run(go())


def test_index_and_invalidation_messages(redis_server: RedisServer) -> None:
    async def go() -> None:
        b = backend(redis_server, node_id="pub")
        sub = aredis.Redis(host=redis_server.host, port=redis_server.port)
        ps = sub.pubsub()
        await ps.subscribe(b.channel)
        assert b.channel == f"{b.prefix}/invalidate"
        assert await b.write_index() == 0
        await b.put("x/y", b"1")  # unfenced
        epoch = await b.acquire_lock("pub")
        b.fence = epoch
        await b.put("z", b"2")  # fenced
        await b.delete("x/y")
        assert await b.write_index() == 3 == b.last_index
        got: list[bytes] = []
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if msg is not None:
                got.append(msg["data"])
        assert got == [b"1 x/y", b"2 z", b"3 x/y"]
        await ps.aclose()
        await sub.aclose()
        await b.close()

    asyncio.run(go())


def test_holder_gone_and_connection_names(redis_server: RedisServer) -> None:
    async def go() -> None:
        p = f"h{uuid.uuid4().hex[:6]}"
        a = backend(redis_server, prefix=p, node_id="node-a")
        b = backend(redis_server, prefix=p)
        b.set_node_id("node-b")
        assert await a.acquire_lock("node-a") == 1
        assert not await b.holder_gone("node-a")
        names = {c["name"] for c in redis_server.client().client_list()}
        assert "transit-node-a" in names
        with pytest.raises(RuntimeError):
            a.set_node_id("other")  # too late: connections already named
        await a.close()  # the holder's connections go away, the lock stays
        await wait_for(lambda: b.holder_gone("node-a"))
        assert await b.lock_holder() == ("node-a", 1)
        assert not await b.holder_gone("node-b")
        await b.close()

    asyncio.run(go())


def test_read_from_replica(redis_primary_with_replica: tuple[RedisServer, RedisServer]) -> None:
    primary, replica = redis_primary_with_replica

    async def go() -> None:
        b = RedisBackend(address=primary.address, read_address=replica.address, prefix="rep")
        sub = aredis.Redis(host=replica.host, port=replica.port)
        ps = sub.pubsub()
        await ps.subscribe(b.channel)
        await b.put("k", b"v1")
        await wait_for(lambda: _eq(b, 1))
        msg = None
        while msg is None:  # messages published by the script reach replica subscribers
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=2)
        assert msg["data"] == b"1 k"
        await ps.aclose()

        # Detach the replica and make its data differ, to see which server answers reads.
        rc = replica.client()
        rc.replicaof("NO", "ONE")
        rc.set("rep/k", b"replica-copy")
        rc.zadd("rep:list:", {"only-on-replica": 0})
        assert await b.get("k") == b"v1"  # default: the primary
        assert await b.list("") == ["k"]
        b.read_from_replica = True
        assert await b.get("k") == b"replica-copy"
        assert await b.list("") == ["k", "only-on-replica"]
        await b.put("w", b"writes-go-to-primary")
        assert primary.client().get("rep/w") == b"writes-go-to-primary"
        assert await b.write_index() == 2
        await sub.aclose()
        await b.close()

    asyncio.run(go())


async def _eq(b: RedisBackend, n: int) -> bool:
    return await b.write_index(replica=True) == n


def test_storage_error_when_redis_is_down(redis_server: RedisServer) -> None:
    async def go() -> None:
        b = backend(redis_server, node_id="down", timeout=1.0)
        await b.put("k", b"v")
        redis_server.stop()
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: b.get("k"),
            lambda: b.put("k", b"v"),
            lambda: b.delete("k"),
            lambda: b.list(""),
            lambda: b.acquire_lock("down"),
            lambda: b.renew_lock("down", 1),
            lambda: b.release_lock("down", 1),
            lambda: b.lock_holder(),
            lambda: b.holder_gone("x"),
            lambda: b.write_index(),
        ]
        for call in calls:
            with pytest.raises(StorageError, match="unreachable") as info:
                await call()
            assert not isinstance(info.value, redis.RedisError)
            assert not isinstance(info.value, Fenced)
        await b.close()
        never = RedisBackend(address=f"127.0.0.1:{free_port()}", timeout=1.0)
        with pytest.raises(StorageError):
            await never.get("k")
        await never.close()

    asyncio.run(go())


def test_sentinel_discovery(redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster {redis_server.host} {redis_server.port} 1\n"
    )
    proc = subprocess.Popen(
        [REDIS_SERVER, str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sc = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if sc.sentinel_get_master_addr_by_name("mymaster"):
                    break
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "sentinel did not start"
            time.sleep(0.05)

        async def go() -> None:
            b = RedisBackend(
                sentinel_addresses=[f"127.0.0.1:{port}"],
                sentinel_master="mymaster",
                prefix="sen",
                node_id="s1",
            )
            await b.put("a/b", b"via-sentinel")
            assert await b.get("a/b") == b"via-sentinel"
            assert await b.list("a/") == ["b"]
            assert await b.acquire_lock("s1") == 1
            assert not await b.holder_gone("s1")
            await b.close()

        asyncio.run(go())
        assert redis_server.client().get("sen/a/b") == b"via-sentinel"
    finally:
        proc.terminate()
        proc.wait(5)


def test_tls_with_client_certificate(tmp_path: Path) -> None:
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    files = make_tls_files(tmp_path / "tls")
    with RedisServer(tmp_path, tls=files) as srv:
        verified = TLSOptions(str(files.ca_file), str(files.client_cert), str(files.client_key))
        no_client_cert = TLSOptions(ca_file=str(files.ca_file))
        skip_verify = TLSOptions("", str(files.client_cert), str(files.client_key), True)

        async def go() -> None:
            b = backend(srv, tls=verified, prefix="tls", node_id="t1")
            await b.put("k", b"over-tls")
            assert await b.get("k") == b"over-tls"
            assert await b.acquire_lock("t1") == 1
            await b.close()
            b = backend(srv, tls=skip_verify, prefix="tls")
            assert await b.get("k") == b"over-tls"
            await b.close()
            b = RedisBackend(address=srv.url, prefix="tls", tls=skip_verify)  # rediss:// URL
            assert await b.list("") == ["k"]
            await b.close()
            b = backend(srv, tls=no_client_cert, timeout=2.0)
            with pytest.raises(StorageError):  # the server requires a client certificate
                await b.get("k")
            await b.close()
            b = backend(srv, timeout=2.0)  # plain TCP to a TLS port
            with pytest.raises(StorageError):
                await b.get("k")
            await b.close()

        asyncio.run(go())


def test_factory_builds_redis_backend(redis_server: RedisServer) -> None:
    b = create_backend(
        StorageConfig(
            "redis",
            {
                "address": redis_server.address,
                "prefix": "fac",
                "lock_ttl": "15s",
                "db": "1",
                "timeout": "2s",
                "node_id": "n1",
                "read_from_replica": "false",
            },
        )
    )
    assert isinstance(b, RedisBackend)
    assert (b.prefix, b.lock_ttl, b.node_id, b.read_from_replica) == ("fac", 15.0, "n1", False)

    async def go() -> None:
        await b.put("k", b"v")  # type: ignore[union-attr]
        await b.close()  # type: ignore[union-attr]

    asyncio.run(go())
    assert redis_server.client(db=1).get("fac/k") == b"v"
    for bad in ({}, {"address": "x:1", "db": "one"}, {"sentinel_addresses": "h:1"},
                {"address": "x:1", "lock_ttl": "soon"}):  # fmt: skip
        with pytest.raises(ConfigError):
            create_backend(StorageConfig("redis", bad))
    tls = create_backend(
        StorageConfig("redis", {"address": "h:1", "tls_ca_file": "/ca.pem", "tls_skip_verify": "1"})
    )
    kwargs = tls._primary.connection_pool.connection_kwargs  # type: ignore[attr-defined]
    assert kwargs["ssl_ca_certs"] == "/ca.pem" and kwargs["ssl_cert_reqs"] == "none"
    with pytest.raises(ConfigError, match="scheme"):
        create_backend(StorageConfig("redis", {"address": "http://x:1"}))


def test_lock_value_format() -> None:
    assert parse_lock_value("node-a:12") == ("node-a", 12)
    assert parse_lock_value("host:8200:3") == ("host:8200", 3)
    assert parse_lock_value("garbage") is None
    assert parse_lock_value(":5") is None
    # the owner of a running server: `<node id>@<instance>`
    assert lock_value("node-a@0a1b2c3d4e5f", 7) == "node-a@0a1b2c3d4e5f:7"
    assert parse_lock_value("node-a@0a1b2c3d4e5f:7") == ("node-a@0a1b2c3d4e5f", 7)
    assert parse_lock_value("host:8200@ff:3") == ("host:8200@ff", 3)


def test_two_processes_with_one_node_id_are_two_owners(redis_server: RedisServer) -> None:
    """Owners `n@0001` and `n@0002` (two servers started with node id "n"): the lock, the
    fence, the connection names and holder_gone tell them apart; neither deletes the other's
    live lock (release refuses another owner; break only once its connections are gone)."""
    async def go() -> None:
        p = f"o{uuid.uuid4().hex[:6]}"
        a = backend(redis_server, prefix=p, node_id="n@0001")
        b = backend(redis_server, prefix=p, node_id="n@0002")
        assert (a.owner, a.node_id, b.owner, b.node_id) == ("n@0001", "n", "n@0002", "n")
        epoch = await a.acquire_lock("n@0001")
        assert epoch is not None
        assert redis_server.client().get(f"{p}/core/lock") == f"n@0001:{epoch}".encode()
        assert await b.lock_holder() == ("n@0001", epoch)
        assert await b.acquire_lock("n@0002") is None
        names = {c["name"] for c in redis_server.client().client_list()}
        assert {"transit-n@0001", "transit-n@0002"} <= names
        assert not await b.holder_gone("n@0001")  # b's own connections do not count either way
        assert await b.holder_gone("n")  # nobody is named after the bare node id

        b.fence = epoch  # same node id, same epoch, another process: fenced
        with pytest.raises(Fenced):
            await b.put("k", b"from-b")
        assert await a.get("k") is None
        a.fence = epoch
        await a.put("k", b"from-a")

        with pytest.raises(StorageError, match="cannot release"):
            await b.release_lock("n@0001", epoch)
        await b.release_lock("n@0002", epoch)  # b's own owner: not the value, no effect
        assert not await b.break_lock("n@0001", epoch)  # a is alive
        assert not await a.break_lock("n@0001", epoch)  # never a way to drop one's own
        assert await b.lock_holder() == ("n@0001", epoch)
        assert await a.renew_lock("n@0001", epoch)
        assert not await b.renew_lock("n@0002", epoch)

        await a.close()  # a crashes: its connections go, the lock stays
        await wait_for(lambda: b.holder_gone("n@0001"))
        assert await b.lock_holder() == ("n@0001", epoch)
        assert await b.break_lock("n@0001", epoch)
        assert await b.lock_holder() is None
        assert await b.acquire_lock("n@0002") == epoch + 1
        await b.close()

    asyncio.run(go())


def test_acquire_with_min_epoch_jumps_the_epoch(redis_server: RedisServer) -> None:
    """`min_epoch` (the highest epoch the caller saw) lifts the new epoch above it and
    stores it, so a failover to a replica that missed INCRs never hands an epoch out twice."""
    async def go() -> None:
        b = backend(redis_server, node_id="x")
        raw = redis_server.client()
        assert await b.stored_epoch() == 0
        assert await b.acquire_lock("x", min_epoch=41) == 42
        assert raw.get(f"{b.prefix}/core/epoch") == b"42"
        assert await b.stored_epoch() == 42
        await b.release_lock("x", 42)
        assert await b.acquire_lock("x", min_epoch=10) == 43  # the counter is higher
        await b.release_lock("x", 43)
        raw.set(f"{b.prefix}/core/epoch", 5)  # "the new primary" missed the INCRs
        assert await b.acquire_lock("x", 43) == 44
        assert await b.stored_epoch() == 44
        assert await b.acquire_lock("x", 100) is None  # held: min_epoch changes nothing
        assert await b.stored_epoch() == 44
        await b.close()

    asyncio.run(go())


# -- read-modify-write across backend objects ---------------------------------------------


def test_update_races_across_threads(redis_server: RedisServer) -> None:
    """Two RedisBackend objects, each on its own thread and event loop (as two worker
    processes), race 25 increments each through update(): all 50 land, none twice."""
    prefix = f"race{uuid.uuid4().hex[:6]}"
    attempts = 0
    counted = threading.Lock()
    start = threading.Barrier(2)

    def worker(name: str) -> list[int]:
        async def incr(values: dict[str, bytes | None]) -> tuple[list[Write], int]:
            nonlocal attempts
            with counted:
                attempts += 1
            n = int(values["ctr"] or b"0") + 1
            return [Write("ctr", str(n).encode()), Write(f"seen/{n:02d}", name.encode())], n

        async def go() -> list[int]:
            b = backend(redis_server, prefix=prefix, node_id=name)
            await b.get("warm-up")  # connect before the race starts
            start.wait(5)
            try:
                return list(await asyncio.gather(*(update(b, ["ctr"], incr) for _ in range(25))))
            finally:
                await b.close()

        return asyncio.run(go())

    with ThreadPoolExecutor(2) as pool:
        results = [n for got in pool.map(worker, ["w1", "w2"]) for n in got]
    assert sorted(results) == list(range(1, 51))
    r = redis_server.client()
    assert r.get(f"{prefix}/ctr") == b"50"
    assert len(r.zrange(f"{prefix}:list:seen/", 0, -1)) == 50
    assert int(r.get(f"{prefix}/core/index")) == 100  # two writes per applied update, no more
    assert attempts > 50, "no update ever conflicted: the race was not exercised"


# -- durable commits ------------------------------------------------------------------------


def test_durable_commit_waits_for_the_replica(
    redis_primary_with_replica: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = redis_primary_with_replica

    async def go() -> None:
        b = RedisBackend(address=primary.address, prefix="dur", min_replica_acks=1)
        v = await b.get_versioned("k")
        await b.commit([Write("k", b"key-material"), Write("log/1", b"x")], {"k": v.version},
                       durable=True)
        # WAIT returned: the replica has both writes now, no polling needed.
        assert replica.client().get("dur/k") == b"key-material"
        assert replica.client().get("dur/log/1") == b"x"
        stale = v
        with pytest.raises(StorageError) as info:  # a conflict is not retried by WAIT
            await b.commit([Write("k", b"lost")], {"k": stale.version}, durable=True)
        assert type(info.value).__name__ == "Conflict"
        assert await b.get("k") == b"key-material"
        await b.close()

    asyncio.run(go())


def test_durable_commit_unconfirmed(redis_server: RedisServer) -> None:
    """No replica can confirm: ReplicationUnconfirmed, but the writes are on the primary."""

    async def go() -> None:
        b = backend(redis_server, node_id="dur", min_replica_acks=1, replication_timeout=0.2)
        with pytest.raises(ReplicationUnconfirmed):
            await b.commit([Write("k", b"v")], {"k": ""}, durable=True)
        assert await b.get("k") == b"v"
        assert await b.write_index() == 1 == b.last_index
        await b.commit([Write("k2", b"v")])  # not durable: no WAIT
        await b.close()

    asyncio.run(go())


def test_a_wait_longer_than_the_socket_timeout_is_an_answer_not_a_lost_reply(
        redis_server: RedisServer) -> None:
    """A durable commit's WAIT blocks for `replication_timeout`, here longer than the socket
    `timeout`: its client waits for the reply (ReplicationUnconfirmed, a clear answer), where
    a socket timeout would have made a committed write "outcome unknown" (seen in CI: sys/init
    behind a slow replica). Plain writes keep the short timeout."""

    async def go() -> None:
        b = backend(redis_server, node_id="slowwait", min_replica_acks=1, timeout=0.3,
                    replication_timeout=0.8)
        with pytest.raises(ReplicationUnconfirmed):
            await b.commit([Write("k", b"v")], {"k": ""}, durable=True)
        with pytest.raises(ReplicationUnconfirmed):
            await b.confirm_replicated()
        assert await b.get("k") == b"v"
        assert b._writer.connection_pool.connection_kwargs["socket_timeout"] == 0.3
        await b.close()

    asyncio.run(go())


# -- a lost reply is OutcomeUnknown, applied at most once; a stopped Redis is Unavailable ---


def _index(srv: RedisServer, b: RedisBackend) -> int:
    return int(srv.client().get(b.index_key) or 0)


def test_lost_reply_during_debug_sleep_is_applied_at_most_once(tmp_path: Path) -> None:
    """The server sleeps (DEBUG SLEEP) longer than the backend's timeout: the write was sent
    but no reply came, so OutcomeUnknown; after the sleep the write is applied once or not at
    all, never twice (the writer client does not retry)."""
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    with RedisServer(tmp_path, extra_args=["--enable-debug-command", "yes"]) as srv:

        async def go() -> None:
            b = backend(srv, node_id="slow", timeout=0.3)
            await b.put("k", b"v0")  # the script is loaded and the writer connected
            before = _index(srv, b)
            sleeper = srv.client()  # its 5 s timeout outlasts the sleep
            conn = sleeper.connection_pool.get_connection()
            conn.send_command("DEBUG", "SLEEP", "3")
            time.sleep(0.2)  # ordering only: the server is asleep before the write is sent
            with pytest.raises(OutcomeUnknown, match="may or may not"):
                await b.put("k", b"v1")
            # One attempt, not a retry after the sleep: an ordering proof, not a stopwatch.
            # The sleep's own reply has not come yet, so the write gave up while the server
            # was still asleep.
            assert not conn.can_read(timeout=0), "the write outlasted the server's sleep"
            assert conn.read_response() == b"OK"  # blocks until the sleep is over
            sleeper.connection_pool.release(conn)
            await b.put("after", b"x")  # a later write: anything queued before it has run
            # Observed: +1 (Redis reads the queued script once the sleep ends).
            after = _index(srv, b) - 1
            assert after - before in (0, 1), f"write applied {after - before} times"
            value = srv.client().get(f"{b.prefix}/k")
            assert value == (b"v1" if after - before == 1 else b"v0")
            sleeper.close()
            await b.close()

        asyncio.run(go())


def test_lost_reply_during_client_pause_is_applied_at_most_once(
    redis_server: RedisServer,
) -> None:
    """CLIENT PAUSE WRITE holds the script past the timeout: OutcomeUnknown. Once unpaused the
    write was applied whole or not at all, and once at most (a put moves the index by 1 or 0,
    a commit of two writes by 2 or 0; a replay would move it further)."""

    async def go() -> None:
        b = backend(redis_server, node_id="paused", timeout=0.3)
        b.fence = await b.acquire_lock("paused")
        await b.put("k", b"v0")
        r = redis_server.client()
        cases: list[tuple[Callable[[], Awaitable[None]], int]] = [
            (lambda: b.put("k", b"v1"), 1),
            (lambda: b.commit([Write("k", b"v2"), Write("j", b"x")], {"k": ""}), 0),  # stale
            (lambda: b.commit([Write("k", b"v3"), Write("j/k", b"x")]), 2),
        ]
        for call, writes in cases:
            before = _index(redis_server, b)
            r.client_pause(3000, all=False)  # WRITE mode: scripts wait, reads go on
            try:
                with pytest.raises(OutcomeUnknown):
                    await call()
                assert _index(redis_server, b) == before  # still held by the pause
            finally:
                r.client_unpause()
            await b.put("after", b"x")  # runs after anything the pause held back
            moved = _index(redis_server, b) - 1 - before
            assert moved in {0, writes}, f"index moved by {moved}, expected 0 or {writes}"
        await b.close()

    asyncio.run(go())


def test_write_to_stopped_redis_is_unavailable(redis_server: RedisServer) -> None:
    """Redis stopped: every write is Unavailable ("not sent", 503) and nothing is applied.
    The one exception is a write racing the stop on a pooled connection the server has just
    closed (its EOF not yet seen): "Connection closed by server" after sending cannot be told
    from a crash after applying, so that one is OutcomeUnknown — never a plain error."""

    async def go() -> str:
        b = backend(redis_server, node_id="gone", timeout=1.0)
        await b.put("k", b"v")
        redis_server.stop()
        with pytest.raises((Unavailable, OutcomeUnknown)):
            await b.put("k", b"racing-the-stop")
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: b.put("k", b"v2"),
            lambda: b.delete("k"),
            lambda: b.commit([Write("k", b"v3"), Write("j", None)], {"k": ""}),
        ]
        for call in calls:
            with pytest.raises(Unavailable, match="not sent"):
                await call()
        with pytest.raises(StorageError):  # update() reads first: that read fails
            await update(b, ["k"], lambda values: ([Write("k", b"v4")], None))
        await b.close()
        never = RedisBackend(address=f"127.0.0.1:{free_port()}", timeout=1.0)
        with pytest.raises(Unavailable):
            await never.put("k", b"v")
        await never.close()
        return b.prefix

    prefix = asyncio.run(go())
    redis_server.start()  # same folder, AOF: the acknowledged write is there, nothing else
    r = redis_server.client()
    assert r.get(f"{prefix}/k") == b"v"
    assert r.get(f"{prefix}/core/index") == b"1"
    assert r.get(f"{prefix}/j") is None


def test_durable_write_to_stopped_redis_is_unavailable(redis_server: RedisServer) -> None:
    async def go() -> None:
        b = backend(redis_server, node_id="gone", timeout=1.0)
        await b.put("k", b"v")
        redis_server.stop()
        await asyncio.sleep(0.1)  # let the pooled connections see the close
        with pytest.raises(Unavailable):
            await b.commit([Write("k", b"key-material")], durable=True)
        await b.close()

    asyncio.run(go())


def test_claim_gives_a_losing_writer_its_turn(redis_server: RedisServer) -> None:
    """A claim makes other writers' guarded commits on that entry fail until it is used or
    released; blind writes are unaffected; a claim held by another writer is refused."""
    from transit.errors import Conflict
    from transit.storage.base import ABSENT

    async def go() -> None:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        a = backend(redis_server, node_id="a", prefix=prefix)
        b = backend(redis_server, node_id="b", prefix=prefix)
        try:
            await a.put("k", b"0")
            token = await a.claim("k", 5.0)
            assert token
            assert await b.claim("k", 5.0) is None  # one claim at a time
            seen = await b.get_versioned("k")
            with pytest.raises(Conflict):  # the right version, but a's turn
                await b.commit([Write("k", b"b")], {"k": seen.version})
            await a.commit([Write("k", b"a")], {"k": seen.version}, claim=token)
            await a.release_claim("k", token)
            seen = await b.get_versioned("k")
            await b.commit([Write("k", b"b")], {"k": seen.version})
            assert await a.get("k") == b"b"
            # a claim on another key, and unguarded writes, are not affected
            other = await a.claim("other", 5.0)
            assert other
            await b.commit([Write("other", b"x")])
            await b.commit([Write("new", b"x")], {"new": ABSENT})
            with pytest.raises(StorageError):  # claims are not storage entries
                await b.put("core/claim/k", b"x")
        finally:
            await a.close()
            await b.close()

    asyncio.run(go())


def test_update_under_a_tight_rewrite_loop_gets_through(redis_server: RedisServer) -> None:
    """One writer rewrites an entry in a tight loop; another writer's update() still lands
    (it claims the entry after losing a few races) instead of giving up with Conflict."""
    from transit.storage.update import update

    prefix = f"t{uuid.uuid4().hex[:8]}"

    def bump(values: dict[str, bytes | None]) -> tuple[list[Write], int]:
        n = int(values["n"] or b"0") + 1
        return [Write("n", str(n).encode())], n

    stop = threading.Event()

    def hammer() -> None:
        async def loop() -> None:
            h = backend(redis_server, node_id="hammer", prefix=prefix)
            try:
                while not stop.is_set():
                    await update(h, ["n"], bump)
            finally:
                await h.close()

        asyncio.run(loop())

    async def go() -> int:
        b = backend(redis_server, node_id="late", prefix=prefix)
        try:
            landed = 0
            for _ in range(20):
                await update(b, ["n"], lambda v: ([Write("n", v["n"] or b"0"),
                                                   Write("late", b"1")], None))
                landed += 1
            return landed
        finally:
            await b.close()

    t = threading.Thread(target=hammer)
    t.start()
    try:
        assert asyncio.run(go()) == 20
    finally:
        stop.set()
        t.join(10)


def test_get_versioned_many_matches_get_versioned(redis_server: RedisServer) -> None:
    """The one-round-trip read that `update` uses is the same as reading key by key, also
    through the barrier and a view (decrypted values, versions of the stored bytes)."""
    import os

    from transit.barrier import Barrier
    from transit.storage import StorageView

    async def go() -> None:
        r = backend(redis_server, node_id="many")
        try:
            barrier = Barrier(r)
            root = os.urandom(32)
            await barrier.initialize(root)
            await barrier.unseal(root)
            for store in (r, barrier, StorageView(barrier, "logical/x/")):
                await store.put("a", b"1")
                many = await store.get_versioned_many(["a", "missing"])
                one = [await store.get_versioned("a"), await store.get_versioned("missing")]
                assert many == one
                assert many[0].value == b"1" and many[1].value is None
        finally:
            await r.close()

    asyncio.run(go())
