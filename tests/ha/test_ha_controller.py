"""The HA election loop (transit/cluster/ha.py) of two controllers over a real redis-server.

These test one module, `HAController`, with real storage (RedisBackend, and the real barrier
the leader advertisements go through) but without a node around it: the node is a
`RecordingCore`, which is exactly the controller's port to the core (`become_active(record)`,
`become_standby()`, `sealed`, `barrier`; see the module docstring of transit/cluster/ha.py)
and records what the controller asked of it. That is what makes the failure paths below
reachable and observable (a partitioned or frozen lock holder, a failed activation, a sealed
node); whole-node failover runs are tests/ha/test_failover.py.

Timings are short (ttl 2 s, retry 0.1 s) so takeovers are measured in fractions of seconds;
each test prints what it measured (`pytest -s` shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.redis_fixtures import RedisServer
from transit.barrier import Barrier
from transit.cluster.advert import LeaderRecord, leader_key
from transit.cluster.ha import HAController
from transit.errors import Fenced, StorageError
from transit.storage.redis.backend import RedisBackend

TTL = 2.0
RETRY = 0.1


ROOT_KEY = bytes(range(32))  # every node's barrier opens with it (one cluster)


async def open_barrier(backend: RedisBackend) -> Barrier:
    """The real barrier over `backend`, unsealed (initialised first by the first node)."""
    barrier = Barrier(backend)
    if not await barrier.initialized():
        await barrier.initialize(ROOT_KEY)
    await barrier.unseal(ROOT_KEY)
    return barrier


class RecordingCore:
    """The node as the controller sees it (its port to the core), recording every call.

    Advertisements go through the real barrier, so their writes are fenced for real."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.barrier = Barrier(backend)  # sealed until `open_barrier` replaces it
        self._sealed = False
        self.sealed_seen = 0  # how often the controller found this node sealed
        self.events: list[tuple[str, float]] = []
        self.records: list[LeaderRecord] = []
        self.active = False

    @property
    def sealed(self) -> bool:
        if self._sealed:
            self.sealed_seen += 1
        return self._sealed

    @sealed.setter
    def sealed(self, value: bool) -> None:
        self._sealed = value

    async def become_active(self, record: LeaderRecord) -> None:
        await self.barrier.put(leader_key(record.node_id), record.to_json())
        self.records.append(record)
        self.active = True
        self.events.append(("active", time.monotonic()))

    async def become_standby(self) -> None:
        self.backend.fence = None
        self.active = False
        self.events.append(("standby", time.monotonic()))


class Node:
    """`name` is the node id; `owner` (default: the node id) the lock owner, i.e. the backend's
    identity, as the server sets it (`<node id>@<instance>`)."""

    def __init__(self, srv: RedisServer, name: str, owner: str | None = None,
                 **kw: Any) -> None:
        self.backend = RedisBackend(address=srv.address, lock_ttl=TTL, node_id=owner or name)
        self.core = RecordingCore(self.backend)
        self.ha = HAController(
            self.core, self.backend, name, f"https://{name}:8200", f"https://{name}:8201",
            retry=RETRY, cooldown=kw.pop("cooldown", 1.0), **kw,
        )

    async def open(self) -> Node:
        """Unseal this node's barrier (before its controller starts)."""
        self.core.barrier = await open_barrier(self.backend)
        return self

    async def close(self, timeout: float = 5.0) -> None:
        await self.ha.stop(timeout=timeout)
        await self.backend.close()


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> float:
    """Poll until cond() holds; the monotonic time it was first seen true."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)
    return time.monotonic()


async def drop_connections(backend: RedisBackend) -> None:
    """A "crash" as Redis sees it: every connection of the backend closes."""
    for name in ("_primary", "_writer", "_replica"):
        client = getattr(backend, name, None)
        if client is not None:
            await client.connection_pool.disconnect()


def run_nodes(srv: RedisServer, body: Callable[[Node, Node], Awaitable[None]],
              close_timeout: float = 5.0, names: tuple[str, str] = ("node-a", "node-b"),
              owners: tuple[str | None, str | None] = (None, None), **kw: Any) -> None:
    kw_close = close_timeout

    async def go() -> None:
        a = await Node(srv, names[0], owners[0], **kw).open()
        b = await Node(srv, names[1], owners[1], **kw).open()
        try:
            a.ha.start()
            await until(lambda: a.ha.is_active)  # a starts first: deterministic roles
            b.ha.start()
            # b has tried the lock and seen a's term (not a pause that might be too short)
            await until(lambda: a.ha.epoch is not None and b.ha.max_epoch >= a.ha.epoch)
            await body(a, b)
        finally:
            await asyncio.gather(a.close(kw_close), b.close(kw_close))

    asyncio.run(go())


def test_exactly_one_active_and_standby_sees_leader(redis_server: RedisServer) -> None:
    async def body(a: Node, b: Node) -> None:
        for _ in range(int(TTL / 0.1)):  # across several renewals
            assert a.ha.is_active and not b.ha.is_active
            assert a.core.active and not b.core.active
            await asyncio.sleep(0.1)
        assert a.ha.state == "active" and b.ha.state == "standby"
        assert a.ha.active_since is not None and b.ha.active_since is None
        assert a.ha.serving  # renewed throughout (a state, not a stopwatch)
        mine = await a.ha.leader()
        seen = await b.ha.leader()
        assert mine is not None and seen == mine == a.core.records[-1]
        assert seen.cluster_addr == "https://node-a:8201"
        assert await a.backend.lock_holder() == ("node-a", a.ha.epoch)

    run_nodes(redis_server, body)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def ha_warnings() -> Iterator[list[str]]:
    """The HA controller's warnings while the block runs (which path a takeover took)."""
    logger, handler = logging.getLogger("transit.cluster.ha"), _Collect()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_step_down_moves_leadership(redis_server: RedisServer) -> None:
    async def body(a: Node, b: Node) -> None:
        old = await b.ha.leader()
        tries = 0  # a's attempts at the lock: none while active or sitting out its cooldown
        acquire = a.backend.acquire_lock

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal tries
            tries += 1
            return await acquire(*args, **kwargs)

        a.backend.acquire_lock = counted  # type: ignore[method-assign]
        t0 = time.monotonic()
        await a.ha.step_down()
        assert not a.ha.is_active and a.backend.fence is None
        # Handed over, not left to expire: a's lock is gone the moment step_down returns (the
        # property a 'b active within 1 s' stopwatch stood in for).
        holder = await b.backend.lock_holder()
        assert holder is None or holder[0] == b.ha.owner, holder
        t1 = await until(lambda: b.ha.is_active)
        print(f"\nstep-down handover: {t1 - t0:.3f}s (ttl {TTL}s, retry {RETRY}s)")
        assert [e for e, _ in a.core.events] == ["active", "standby"]
        # a's cooldown (1 s) passes and a tries for the lock again, twice, and fails: b keeps
        # it. A positive barrier (the attempts happened) instead of a 1.5 s sleep.
        await until(lambda: tries >= 2)
        assert b.ha.is_active and not a.ha.is_active
        new = await a.ha.leader()
        assert new is not None and new.node_id == "node-b" and new != old
        await b.ha.step_down()
        await until(lambda: a.ha.is_active)

    run_nodes(redis_server, body)


def _partition(node: Node) -> None:
    """Node `node` keeps its Redis connections but its lock calls stall or fail."""

    async def stall(*_a: Any) -> Any:
        await asyncio.sleep(3600)

    async def fail(*_a: Any) -> Any:
        raise StorageError("redis unreachable (test partition)")

    node.backend.renew_lock = stall  # type: ignore[method-assign]
    node.backend.release_lock = fail  # type: ignore[method-assign]
    node.backend.acquire_lock = fail  # type: ignore[method-assign]


def test_stalled_renewals_step_down_before_ttl(redis_server: RedisServer) -> None:
    async def body(a: Node, b: Node) -> None:
        epoch_a = a.ha.epoch
        assert epoch_a is not None
        _partition(a)
        t_down = await until(lambda: not a.ha.is_active)
        await until(lambda: not a.core.active)  # become_standby follows the state change
        assert a.ha.last_leave is not None
        reason, age = a.ha.last_leave  # age: since the last successful renew was sent
        assert reason == "overdue"
        assert a.backend.fence is None and not a.core.active
        t_b = await until(lambda: b.ha.is_active)
        last_renew = t_down - age
        print(f"\nstalled leader stepped down {age:.3f}s after its last renew "
              f"(ttl {TTL}s, deadline {TTL * 0.75:.2f}s); standby active "
              f"{t_b - last_renew:.3f}s after that renew")
        assert TTL * 0.75 - 0.05 <= age < TTL * 0.75 + 0.4  # before the lock can expire
        assert t_b - last_renew >= TTL * 0.75  # not before a stepped down
        assert b.ha.epoch is not None and b.ha.epoch > epoch_a
        # a paused leader that never got to clear its fence: its write is refused
        a.backend.fence = epoch_a
        with pytest.raises(Fenced):
            await a.backend.put("core/paused-write", b"x")
        a.backend.fence = None
        assert await b.backend.get("core/paused-write") is None
        await b.backend.put("core/b-write", b"ok")  # the new active's fenced write works
        assert b.backend.fence == b.ha.epoch

    run_nodes(redis_server, body)


def test_renew_task_cancelled_steps_down(redis_server: RedisServer) -> None:
    async def body(a: Node, b: Node) -> None:
        task = a.ha._keepalive_task
        assert task is not None
        task.cancel()
        epoch = a.ha.epoch
        await until(lambda: any(e == "standby" for e, _ in a.core.events))
        assert a.ha.last_leave is not None
        reason, age = a.ha.last_leave
        assert reason == "overdue" and TTL * 0.75 - 0.05 <= age < TTL * 0.75 + 0.4
        # a is healthy again, so either node may win the next term (a new epoch)
        await until(lambda: a.ha.is_active or b.ha.is_active, timeout=TTL)
        winner = a if a.ha.is_active else b
        assert winner.ha.epoch is not None and epoch is not None and winner.ha.epoch > epoch
        print(f"\nkeep-alive cancelled: stepped down {age:.3f}s after the last renew; "
              f"{winner.ha.node_id} took the next term")

    run_nodes(redis_server, body)


def test_holder_gone_fast_takeover(redis_server: RedisServer) -> None:
    async def body(a: Node, b: Node) -> None:
        epoch_a = a.ha.epoch

        async def frozen(*_a: Any) -> Any:
            await asyncio.sleep(3600)

        # A "crash": a's process stops talking to Redis and its connections close.
        for name in ("renew_lock", "release_lock", "acquire_lock", "lock_holder",
                     "holder_gone", "put", "get"):
            setattr(a.backend, name, frozen)
        # Fast because of the path taken (the holder_gone break, logged), not a stopwatch:
        # the TTL path would also get there, later, and the polling limit is only a limit.
        with ha_warnings() as warned:
            await drop_connections(a.backend)
            t0 = time.monotonic()
            t1 = await until(lambda: b.ha.is_active, timeout=10)
        print(f"\nholder gone: standby active {t1 - t0:.3f}s after the holder's connections "
              f"closed (ttl {TTL}s, retry {RETRY}s)")
        assert any("has no Redis connection; taking over" in m for m in warned), warned
        assert b.ha.epoch is not None and epoch_a is not None and b.ha.epoch > epoch_a

    run_nodes(redis_server, body, close_timeout=0.5)  # a is frozen: don't wait for it


def test_release_on_seal_hands_over_and_waits_for_unseal(redis_server: RedisServer) -> None:
    async def body(a: Node, b: Node) -> None:
        await a.ha.release()
        a.core.sealed = True
        assert not a.ha.is_active
        await until(lambda: b.ha.is_active)
        await b.ha.step_down()  # b sits out its cooldown; sealed a must not take the lock
        seen = a.core.sealed_seen
        await until(lambda: a.core.sealed_seen >= seen + 3)  # a's loop went round 3 times
        assert not a.ha.is_active and await a.backend.lock_holder() is None
        a.core.sealed = False
        await until(lambda: a.ha.is_active, timeout=3)

    run_nodes(redis_server, body)


def test_single_node_stop_releases_lock(redis_server: RedisServer) -> None:
    async def go() -> None:
        a = await Node(redis_server, "solo").open()
        try:
            a.ha.start()
            await until(lambda: a.ha.is_active)
            await a.ha.stop()
            assert not a.ha.is_active and a.core.events[-1][0] == "standby"
            assert await a.backend.lock_holder() is None
        finally:
            await a.close()

    asyncio.run(go())


def test_own_stale_lock_is_reclaimed(redis_server: RedisServer) -> None:
    async def go() -> None:
        ghost = RedisBackend(address=redis_server.address, lock_ttl=30, node_id="same")
        assert await ghost.acquire_lock("same") is not None  # a previous run's lock, 30 s
        a = await Node(redis_server, "same").open()
        try:
            a.ha.start()
            # Reclaimed, not waited out: the polling limit is a third of the ghost's 30 s TTL,
            # so becoming active at all proves the lock was taken over before it expired.
            await until(lambda: a.ha.is_active, timeout=10)
            holder = await a.backend.lock_holder()
            assert holder is not None and holder[0] == "same"
        finally:
            await a.close()
            await ghost.close()

    asyncio.run(go())


def test_failed_activation_releases_and_retries(redis_server: RedisServer) -> None:
    async def go() -> None:
        a = await Node(redis_server, "flaky").open()
        real = a.core.become_active
        calls = 0

        async def become_active(record: LeaderRecord) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("mount table unreadable")
            await real(record)

        a.core.become_active = become_active  # type: ignore[method-assign]
        try:
            a.ha.start()
            await until(lambda: a.ha.is_active, timeout=3)
            assert calls == 2 and [e for e, _ in a.core.events] == ["standby", "active"]
            assert a.ha.epoch is not None and a.ha.epoch >= 2
        finally:
            await a.close()

    asyncio.run(go())


# -- one owner per running server; epochs only move forward ---------------------------------


def test_same_node_id_two_owners_one_writer(redis_server: RedisServer) -> None:
    """Two servers started with the same node id are two lock owners: the second never takes
    the lock of the first while it runs, cannot write with the first's epoch, forwards to its
    advertisement, and takes over at once when the first is gone."""
    async def body(a: Node, b: Node) -> None:
        assert a.ha.owner == "twin@aaaa" and b.ha.owner == "twin@bbbb"
        assert a.ha.node_id == b.ha.node_id == "twin"
        epoch_a = a.ha.epoch
        assert epoch_a is not None
        for _ in range(int(TTL / 0.1)):  # across several renewals and standby retries
            assert a.ha.is_active and not b.ha.is_active and not b.core.active
            await asyncio.sleep(0.1)
        assert await a.backend.lock_holder() == ("twin@aaaa", epoch_a)
        names = {c["name"] for c in redis_server.client().client_list()}
        assert {"transit-twin@aaaa", "transit-twin@bbbb"} <= names
        assert not await b.backend.holder_gone("twin@aaaa")
        # b shares the node id and would know the epoch: its write is refused all the same
        b.backend.fence = epoch_a
        with pytest.raises(Fenced):
            await b.backend.put("core/b-write", b"x")
        b.backend.fence = None
        assert await a.backend.get("core/b-write") is None
        # b never deletes a's live lock, neither by release nor by break
        with pytest.raises(StorageError):
            await b.backend.release_lock("twin@aaaa", epoch_a)
        assert not await b.backend.break_lock("twin@aaaa", epoch_a)
        assert await a.backend.lock_holder() == ("twin@aaaa", epoch_a)
        # the user-visible identity is the node id; the record names its owner
        seen = await b.ha.leader()
        assert seen is not None and seen == a.core.records[-1]
        assert seen.node_id == "twin" and seen.owner == "twin@aaaa"
        assert seen.cluster_addr == "https://twin:8201"

        # a stale record under the shared key (another owner's) is not taken for a's
        other = RedisBackend(address=redis_server.address, lock_ttl=TTL)
        stale = LeaderRecord("twin", "https://old:8200", "https://old:8201", "c", "k",
                             "twin@old0")
        try:
            barrier = await open_barrier(other)  # unfenced writes
            await barrier.put(leader_key("twin"), stale.to_json())
            assert await b.ha.refresh_leader() is None
            await barrier.put(leader_key("twin"), a.core.records[-1].to_json())
            assert await b.ha.refresh_leader() == a.core.records[-1]
        finally:
            await other.close()

        # a crashes: b (same node id, other owner) sees a's connections gone at once
        async def frozen(*_a: Any) -> Any:
            await asyncio.sleep(3600)

        for name in ("renew_lock", "release_lock", "acquire_lock", "lock_holder",
                     "holder_gone", "put", "get"):
            setattr(a.backend, name, frozen)
        with ha_warnings() as warned:  # the holder_gone break, not the TTL (as above)
            await drop_connections(a.backend)
            await until(lambda: b.ha.is_active, timeout=10)
        assert any("lock holder twin@aaaa" in m and "has no Redis connection; taking over" in m
                   for m in warned), warned
        assert b.ha.epoch is not None and b.ha.epoch > epoch_a
        assert await b.backend.lock_holder() == ("twin@bbbb", b.ha.epoch)

    run_nodes(redis_server, body, close_timeout=0.5, names=("twin", "twin"),
              owners=("twin@aaaa", "twin@bbbb"))


def test_owner_defaults_to_the_backend_identity(redis_server: RedisServer) -> None:
    backend = RedisBackend(address=redis_server.address, lock_ttl=TTL, node_id="n1@beef")
    ha = HAController(RecordingCore(backend), backend, "n1", "http://a", "https://a:1")
    assert ha.owner == "n1@beef" and ha.node_id == "n1"
    # a backend named for another node: the node id itself
    ha = HAController(RecordingCore(backend), backend, "n2", "http://a", "https://a:1")
    assert ha.owner == "n2" and ha.node_id == "n2"
    ha = HAController(RecordingCore(backend), backend, "n1", "http://a", "https://a:1",
                      owner="n1@cafe")
    assert ha.owner == "n1@cafe" and ha.node_id == "n1"
    asyncio.run(backend.close())


def test_epoch_moves_forward_across_a_failover(redis_server: RedisServer) -> None:
    """Every controller remembers the highest epoch it saw (lock holders, the stored counter)
    and asks for more: a failover to a replica that missed the epoch INCRs (simulated: the
    counter goes back to 0 and the lock is gone) still gives the next term a higher epoch."""
    r = redis_server.client()
    r.set("transit/core/epoch", 41)

    async def body(a: Node, b: Node) -> None:
        assert a.ha.epoch == 42
        await until(lambda: b.ha.max_epoch >= 42)  # the lock holder it read
        r.set("transit/core/epoch", 100)  # as if terms had come and gone unseen
        await until(lambda: b.ha.max_epoch >= 100)  # the counter, read while a standby
        r.set("transit/core/epoch", 42)  # ... and a replica that missed them
        await a.ha.step_down()
        await until(lambda: b.ha.is_active)
        assert b.ha.epoch == 101  # not 43: min_epoch
        await until(lambda: a.ha.max_epoch >= 101)  # a, a standby again, read the holder
        r.set("transit/core/epoch", 0)  # the failover: counter and lock gone
        r.delete("transit/core/lock")
        await until(lambda: not b.ha.is_active)
        await until(lambda: a.ha.is_active or b.ha.is_active, timeout=2 * TTL)
        winner = a if a.ha.is_active else b
        assert winner.ha.epoch == 102, winner.ha.epoch
        assert int(r.get("transit/core/epoch") or 0) == 102
        print(f"\nafter the simulated failover: {winner.ha.node_id} at epoch 102 (counter 0)")

    run_nodes(redis_server, body)
