"""InvalidationSubscriber against real redis-server processes (a primary and its replica):
delivery, applied_index and wait_for_index, ordering against the replica's data, resets on
reconnect and on lost messages, and that it never crashes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.redis_fixtures import RedisServer
from transit.cluster.invalidation import InvalidationSubscriber, parse_message
from transit.storage.redis.backend import RedisBackend

Pair = tuple[RedisServer, RedisServer]


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


class Recorder:
    """on_key / on_reset callbacks that record what they saw."""

    def __init__(self, replica: RedisServer | None = None, prefix: str = "") -> None:
        self.keys: list[str] = []
        self.resets = 0
        self.missing: list[str] = []  # keys whose data was not on the replica yet
        self.fail_on: set[str] = set()
        self._replica = replica.client() if replica is not None else None
        self._prefix = prefix

    async def on_key(self, key: str) -> None:
        if key in self.fail_on:
            self.fail_on.discard(key)
            raise RuntimeError("cache reload failed")
        if self._replica is not None and key.startswith("data/"):
            # Sync client on purpose: a read that cannot yield to the event loop.
            if self._replica.get(f"{self._prefix}/{key}") is None:
                self.missing.append(key)
        self.keys.append(key)

    def on_reset(self) -> None:  # sync callbacks are fine too
        self.resets += 1


def setup(pair: Pair, **kw: Any) -> tuple[RedisBackend, Recorder, InvalidationSubscriber]:
    primary, replica = pair
    prefix = f"t{uuid.uuid4().hex[:8]}"
    backend = RedisBackend(address=primary.address, prefix=prefix)
    rec = Recorder(replica, prefix)
    kw.setdefault("backoff_max", 0.2)
    sub = InvalidationSubscriber(replica.address, prefix, rec.on_key, rec.on_reset, **kw)
    return backend, rec, sub


def test_parse_message() -> None:
    assert parse_message(b"12 logical/u/policy/a b") == (12, "logical/u/policy/a b")
    assert parse_message("3 core/mounts") == (3, "core/mounts")
    for bad in (b"", b"12", b"x key", b"12 ", b"-1 key"):
        assert parse_message(bad) is None


def test_keys_arrive_and_index_tracks(redis_primary_with_replica: Pair) -> None:
    backend, rec, sub = setup(redis_primary_with_replica)

    async def go() -> None:
        sub.start()
        assert await sub.wait_connected(10)
        assert rec.resets == 1 and sub.applied_index == 0
        await backend.put("sys/policy/p1", b"x")
        await backend.put("logical/m1/policy/k", b"y")
        await backend.delete("sys/policy/p1")
        assert backend.last_index == 3
        assert await sub.wait_for_index(3, 5)
        assert sub.applied_index == 3
        assert rec.keys == ["sys/policy/p1", "logical/m1/policy/k", "sys/policy/p1"]
        assert await sub.wait_for_index(2, 0)  # already there: no wait
        assert not await sub.wait_for_index(4, 0.2)  # never written
        waiter = asyncio.create_task(sub.wait_for_index(4, 5))
        await asyncio.sleep(0)  # one turn of the loop: the waiter is now waiting
        assert not waiter.done()
        await backend.put("core/mounts", b"z")
        assert await waiter
        assert rec.resets == 1  # no spurious resubscription
        await sub.stop()
        assert not sub.connected and not sub.running
        await backend.close()

    asyncio.run(go())


def test_baseline_is_the_replica_index(redis_primary_with_replica: Pair) -> None:
    backend, rec, sub = setup(redis_primary_with_replica)

    async def go() -> None:
        for i in range(5):
            await backend.put(f"k/{i}", b"v")
        await eventually(
            lambda: (
                redis_primary_with_replica[1].client().get(f"{backend.prefix}/core/index") == b"5"
            )
        )
        sub.start()
        assert await sub.wait_connected(10)
        assert sub.applied_index == 5  # writes before the subscription count as applied
        assert rec.keys == [] and rec.resets == 1
        await backend.put("k/5", b"v")
        assert await sub.wait_for_index(6, 5)
        assert rec.keys == ["k/5"]
        await sub.stop()
        await backend.close()

    asyncio.run(go())


def test_message_never_arrives_before_its_data(redis_primary_with_replica: Pair) -> None:
    backend, rec, sub = setup(redis_primary_with_replica)

    async def go() -> None:
        sub.start()
        assert await sub.wait_connected(10)
        payload = b"x" * 50_000  # big values make replication visibly take time

        async def writer(w: int) -> None:  # a few concurrent writers, 300 writes in all
            for i in range(w, 300, 10):
                await backend.put(f"data/{i}", payload)

        await asyncio.gather(*(writer(w) for w in range(10)))
        assert await sub.wait_for_index(300, 10)
        assert len(rec.keys) == 300
        assert rec.missing == []
        await sub.stop()
        await backend.close()

    asyncio.run(go())


def test_client_kill_resubscribes_and_resets(redis_primary_with_replica: Pair) -> None:
    _, replica = redis_primary_with_replica
    backend, rec, sub = setup(redis_primary_with_replica)

    async def go() -> None:
        sub.start()
        assert await sub.wait_connected(10)
        await backend.put("a", b"1")
        assert await sub.wait_for_index(1, 5)
        killed = replica.client().client_kill_filter(_type="pubsub")
        assert killed >= 1
        await eventually(lambda: rec.resets == 2)
        assert await sub.wait_connected(10)
        await backend.put("b", b"2")
        assert await sub.wait_for_index(2, 5)
        assert rec.keys[-1] == "b"
        assert sub.resets == 2
        await sub.stop()
        await backend.close()

    asyncio.run(go())


def test_replica_restart_resubscribes_and_resets(redis_primary_with_replica: Pair) -> None:
    _, replica = redis_primary_with_replica
    backend, rec, sub = setup(redis_primary_with_replica)

    async def go() -> None:
        sub.start()
        assert await sub.wait_connected(10)
        await backend.put("a", b"1")
        assert await sub.wait_for_index(1, 5)
        await asyncio.to_thread(replica.stop)
        await eventually(lambda: not sub.connected)
        await backend.put("b", b"2")  # missed: the replica is down
        await backend.put("c", b"3")
        await asyncio.to_thread(replica.start)  # empty again until it resyncs
        await eventually(lambda: rec.resets == 2)
        assert sub.connected
        assert sub.applied_index == 3  # baseline taken after the link came up
        assert "b" not in rec.keys  # not delivered, covered by the reset instead
        await backend.put("d", b"4")
        assert await sub.wait_for_index(4, 5)
        await sub.stop()
        await backend.close()

    asyncio.run(go())


def test_lost_messages_force_a_reset(redis_primary_with_replica: Pair) -> None:
    primary, _ = redis_primary_with_replica
    backend, rec, sub = setup(redis_primary_with_replica, poll_interval=0.2)

    async def go() -> None:
        sub.start()
        assert await sub.wait_connected(10)
        # The index moves with no message (as after a full resync of the replica): the
        # poll sees the replica ahead while nothing arrives, and resubscribes.
        primary.client().incr(f"{backend.prefix}/core/index")
        await eventually(lambda: rec.resets == 2)
        assert sub.applied_index == 1
        # A message whose index jumps over missed ones: also a reset.
        primary.client().publish(f"{backend.prefix}/invalidate", "10 x")
        await eventually(lambda: rec.resets == 3)
        assert "x" not in rec.keys
        await backend.put("y", b"1")
        assert await sub.wait_for_index(2, 5)
        assert rec.keys == ["y"]
        await sub.stop()
        await backend.close()

    asyncio.run(go())


def test_failing_callback_and_garbage_never_crash(redis_primary_with_replica: Pair) -> None:
    primary, _ = redis_primary_with_replica
    backend, rec, sub = setup(redis_primary_with_replica)

    async def go() -> None:
        sub.start()
        assert await sub.wait_connected(10)
        primary.client().publish(f"{backend.prefix}/invalidate", "garbage")
        rec.fail_on.add("bad")
        await backend.put("bad", b"1")
        await eventually(lambda: rec.resets == 2)  # not applied -> full reset instead
        assert await sub.wait_for_index(1, 5)  # the reset's baseline covers it
        assert "bad" not in rec.keys
        await backend.put("good", b"2")
        assert await sub.wait_for_index(2, 5)
        assert rec.keys == ["good"]
        assert sub.running
        await sub.stop()
        await backend.close()

    asyncio.run(go())


def test_async_reset_callback_runs_before_connected(redis_primary_with_replica: Pair) -> None:
    _, replica = redis_primary_with_replica
    prefix = f"t{uuid.uuid4().hex[:8]}"
    seen: list[tuple[bool, int]] = []

    async def go() -> None:
        async def on_reset() -> None:
            await asyncio.sleep(0.05)
            seen.append((sub.connected, sub.applied_index))

        sub = InvalidationSubscriber(replica.address, prefix, lambda key: None, on_reset)
        sub.start()
        assert await sub.wait_connected(10)
        assert seen == [(False, 0)]
        await sub.stop()

    asyncio.run(go())


def test_waits_for_a_server_that_is_not_up_yet(tmp_path: Path) -> None:
    srv = RedisServer(tmp_path)  # port chosen, not started
    rec = Recorder()

    async def go() -> None:
        sub = InvalidationSubscriber(srv.address, "p", rec.on_key, rec.on_reset,
                                     timeout=0.5, backoff_max=0.2)  # fmt: skip
        sub.start()
        await eventually(lambda: bool(sub.last_error))  # it tried, and failed
        assert not sub.connected and sub.running
        assert not await sub.wait_for_index(1, 0.1)
        await asyncio.to_thread(srv.start)
        try:
            assert await sub.wait_connected(10)
            assert rec.resets == 1
            srv.client().publish("p/invalidate", "1 core/audit")
            assert await sub.wait_for_index(1, 5)
            assert rec.keys == ["core/audit"]
        finally:
            await sub.stop()
            srv.stop()

    asyncio.run(go())


# -- bounded staleness (issue 15): `fresh`, from probes of the primary's index -----------------
def test_fresh_only_while_the_primary_index_is_applied_within_the_bound(
        redis_primary_with_replica: Pair) -> None:
    primary, replica = redis_primary_with_replica
    backend, rec, _ = setup(redis_primary_with_replica)
    sub = InvalidationSubscriber(replica.address, backend.prefix, rec.on_key, rec.on_reset,
                                 primary_index=backend.write_index, max_staleness=0.6,
                                 backoff_max=0.2)
    assert sub.poll_interval == 0.12  # bound / 5

    async def go() -> None:
        assert not sub.fresh and "not connected" in sub.problem
        sub.start()
        assert await sub.wait_connected(10)
        await eventually(lambda: sub.fresh, 5)
        assert sub.problem == "" and sub.staleness is not None
        await backend.put("k/1", b"v")
        assert await sub.wait_for_index(1, 5)
        await asyncio.sleep(1.0)  # well past the bound: still fresh, the probes confirm it
        assert sub.fresh
        # Replication stops (the replica is detached): writes on the primary are not applied
        # here, and the feed stops being fresh within the bound.
        replica.client().execute_command("REPLICAOF", "NO", "ONE")
        await backend.put("k/2", b"v")
        written = time.monotonic()
        await eventually(lambda: not sub.fresh, 5)
        # Within the bound, without a stopwatch: no probe confirms freshness past the write
        # it cannot see, so the window the feed granted ends at most max_staleness after it
        # (`fresh` is `monotonic() < _fresh_until`: it flips at that moment, however busy).
        assert sub._fresh_until <= written + 0.6, sub._fresh_until - written
        assert "lags the primary" in sub.problem, sub.problem
        assert sub.connected  # the feed itself is fine: only its data is behind
        # Linked again: it catches up (a full resync replays no message: the poll sees the
        # replica ahead and resubscribes) and is fresh again.
        replica.client().execute_command("REPLICAOF", primary.host, str(primary.port))
        await eventually(lambda: sub.fresh, 15)
        await sub.stop()
        await backend.close()

    asyncio.run(go())


def test_a_replica_link_down_is_never_fresh(redis_primary_with_replica: Pair, tmp_path: Path
                                            ) -> None:
    primary, replica = redis_primary_with_replica
    backend, rec, _ = setup(redis_primary_with_replica)
    sub = InvalidationSubscriber(replica.address, backend.prefix, rec.on_key, rec.on_reset,
                                 primary_index=backend.write_index, max_staleness=5.0,
                                 backoff_max=0.2)

    async def go() -> None:
        sub.start()
        await eventually(lambda: sub.fresh, 10)
        # Pointed at a primary that does not exist: the link is down; no write happened, yet
        # it is not fresh from the next poll on (the bound is 5 s: this is not lag).
        dead = RedisServer(tmp_path / "dead")
        replica.client().execute_command("REPLICAOF", "127.0.0.1", str(dead.port))
        await eventually(lambda: not sub.fresh, 2.5)
        assert "link to its primary is down" in sub.problem, sub.problem
        replica.client().execute_command("REPLICAOF", primary.host, str(primary.port))
        await eventually(lambda: sub.fresh, 15)
        await sub.stop()
        await backend.close()

    asyncio.run(go())


def test_an_index_going_backwards_resets_every_cache(redis_primary_with_replica: Pair) -> None:
    """On the replica (it resynced from a primary lacking writes) or on the primary (a
    failover lost writes): the feed resubscribes, which drops every cache."""
    primary, replica = redis_primary_with_replica
    backend, rec, _ = setup(redis_primary_with_replica)
    primary_says: list[int | None] = [None]

    async def primary_index() -> int:
        told = primary_says[0]
        return await backend.write_index() if told is None else told

    sub = InvalidationSubscriber(replica.address, backend.prefix, rec.on_key, rec.on_reset,
                                 primary_index=primary_index, max_staleness=0.5,
                                 backoff_max=0.2)

    async def go() -> None:
        for i in range(5):
            await backend.put(f"k/{i}", b"v")
        sub.start()
        await eventually(lambda: sub.fresh and sub.applied_index == 5, 10)
        assert rec.resets == 1
        primary_says[0] = 3  # the primary now says 3 (< 5 applied): writes were lost
        await eventually(lambda: rec.resets >= 2, 3)
        primary_says[0] = None
        await eventually(lambda: sub.fresh, 5)
        # The replica itself goes back: detached, its index rewritten lower.
        replica.client().execute_command("REPLICAOF", "NO", "ONE")
        resets = rec.resets
        replica.client().set(f"{backend.prefix}/core/index", 2)
        await eventually(lambda: rec.resets > resets, 3)
        assert sub.applied_index == 2
        replica.client().execute_command("REPLICAOF", primary.host, str(primary.port))
        await sub.stop()
        await backend.close()

    asyncio.run(go())
