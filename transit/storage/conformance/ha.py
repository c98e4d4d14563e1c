"""The `HABackend` conformance suite (see the package docstring for both suites and how to run
them): the lock (acquire/renew/release/holder, TTL, epochs that only grow, `min_epoch`), the
fence on every write (`errors.Fenced`, nothing written) and the write index. Each check gets
`nodes`, a `Nodes` that opens handles on one fresh, empty shared store.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from transit.errors import Conflict, Fenced, StorageError
from transit.storage.base import ABSENT, HABackend, Write
from transit.storage.conformance.support import (
    assert_absent,
    assert_raises,
    close_backend,
    install_tests,
)
from transit.storage.update import update

# -- the HA contract ---------------------------------------------------------------------------

HAConnect = Callable[[str, float], HABackend | Awaitable[HABackend]]
HAFactory = Callable[[], HAConnect]


class Nodes:
    """Handles on one shared store: `await nodes(owner, lock_ttl)` is a new backend object
    (as one server process would have); `close()` closes them all."""

    def __init__(self, connect: HAConnect) -> None:
        self._connect = connect
        self._open: list[HABackend] = []

    async def __call__(self, owner: str, lock_ttl: float = 10.0) -> HABackend:
        made = self._connect(owner, lock_ttl)
        handle = await made if inspect.isawaitable(made) else made
        self._open.append(handle)
        return handle

    async def close(self) -> None:
        for handle in self._open:
            await close_backend(handle)


HACheck = Callable[[Nodes], Coroutine[Any, Any, None]]


async def _wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def check_ha_protocol(nodes: Nodes) -> None:
    a = await nodes("node-a")
    assert isinstance(a, HABackend)
    assert a.fence is None
    assert a.last_index == 0
    assert await a.lock_holder() is None
    assert await a.write_index() == 0
    assert await a.list("") == []


async def check_ha_acquire_is_exclusive(nodes: Nodes) -> None:
    a, b = await nodes("node-a"), await nodes("node-b@instance-2")
    epoch = await a.acquire_lock("node-a")
    assert type(epoch) is int and epoch >= 1
    assert await b.acquire_lock("node-b@instance-2") is None
    assert await a.acquire_lock("node-a") is None  # held, even by the caller: no re-entry
    assert await a.lock_holder() == ("node-a", epoch)
    assert await b.lock_holder() == ("node-a", epoch)


async def check_ha_concurrent_acquire(nodes: Nodes) -> None:
    handles = [await nodes(f"racer-{i}") for i in range(10)]
    got = await asyncio.gather(*(h.acquire_lock(f"racer-{i}") for i, h in enumerate(handles)))
    winners = [(i, e) for i, e in enumerate(got) if e is not None]
    assert len(winners) == 1, got
    i, epoch = winners[0]
    assert await handles[0].lock_holder() == (f"racer-{i}", epoch)


async def check_ha_epochs_only_grow(nodes: Nodes) -> None:
    a, b = await nodes("node-a"), await nodes("node-b")
    e1 = await a.acquire_lock("node-a")
    assert e1 is not None
    await a.release_lock("node-a", e1)
    assert await a.lock_holder() is None
    e2 = await b.acquire_lock("node-b")
    assert e2 is not None and e2 > e1
    await b.release_lock("node-b", e2)
    e3 = await a.acquire_lock("node-a", min_epoch=100)  # e.g. after a storage failover
    assert e3 is not None and e3 > 100
    assert await b.lock_holder() == ("node-a", e3)
    await a.release_lock("node-a", e3)
    e4 = await b.acquire_lock("node-b", min_epoch=5)  # a lower min_epoch never goes back
    assert e4 is not None and e4 > e3
    await b.release_lock("node-b", e4)
    e5 = await a.acquire_lock("node-a")
    assert e5 is not None and e5 > e4


async def check_ha_renew(nodes: Nodes) -> None:
    a, b = await nodes("node-a"), await nodes("node-b")
    epoch = await a.acquire_lock("node-a")
    assert epoch is not None
    assert await a.renew_lock("node-a", epoch)
    assert not await a.renew_lock("node-a", epoch + 1)  # wrong epoch
    assert not await a.renew_lock("node-a", epoch - 1)
    assert not await b.renew_lock("node-b", epoch)  # another owner
    assert await b.lock_holder() == ("node-a", epoch)
    await a.release_lock("node-a", epoch)
    assert not await a.renew_lock("node-a", epoch)  # released: renew cannot bring it back
    assert await a.lock_holder() is None


async def check_ha_release_only_exact(nodes: Nodes) -> None:
    """`release_lock(owner, epoch)` deletes the lock only if it holds exactly that value."""
    a, b = await nodes("node-a"), await nodes("node-b")
    epoch = await a.acquire_lock("node-a")
    assert epoch is not None
    await b.release_lock("node-b", epoch)  # another owner, the holder's epoch
    await a.release_lock("node-a", epoch + 1)  # the holder, another epoch
    await a.release_lock("node-a", epoch - 1)
    assert await b.lock_holder() == ("node-a", epoch)
    await a.release_lock("node-a", epoch)
    assert await b.lock_holder() is None
    await a.release_lock("node-a", epoch)  # releasing a free lock is not an error
    eb = await b.acquire_lock("node-b")
    assert eb is not None
    await a.release_lock("node-a", epoch)  # a's old epoch does not touch b's lock
    assert await a.lock_holder() == ("node-b", eb)


async def check_ha_release_never_foreign(nodes: Nodes) -> None:
    """One process never deletes a lock another process holds (issue 8 §4), even naming its
    exact value: refused (StorageError) or no effect. Two processes of one node id are two
    owners ("node@1", "node@2"), so this covers a duplicate node id too."""
    a, b = await nodes("node@1"), await nodes("node@2")
    epoch = await a.acquire_lock("node@1")
    assert epoch is not None
    try:
        await b.release_lock("node@1", epoch)
    except StorageError:
        pass
    assert await a.lock_holder() == ("node@1", epoch)
    assert await b.acquire_lock("node@2") is None


async def check_ha_ttl(nodes: Nodes) -> None:
    """A renewed lock outlives its TTL; one left alone expires, then its holder's fenced
    writes are refused and another node takes the lock at a higher epoch."""
    a, b = await nodes("node-a", 0.5), await nodes("node-b", 0.5)
    epoch = await a.acquire_lock("node-a")
    assert epoch is not None
    a.fence = epoch
    await a.put("k", b"1")
    until = time.monotonic() + 1.0  # twice the TTL
    while time.monotonic() < until:
        assert await a.renew_lock("node-a", epoch)
        await asyncio.sleep(0.05)
    assert await b.lock_holder() == ("node-a", epoch)
    assert await b.acquire_lock("node-b") is None

    async def expired() -> bool:
        return await b.lock_holder() is None

    await _wait_for(expired)  # no more renewals
    index = await b.write_index()
    await assert_raises(Fenced, a.put("k", b"2"))
    assert not await a.renew_lock("node-a", epoch)  # an expired lock cannot be renewed
    assert await a.get("k") == b"1"
    assert await b.write_index() == index
    later = await b.acquire_lock("node-b")
    assert later is not None and later > epoch


async def check_ha_fence(nodes: Nodes) -> None:
    """While `fence` is set, a write goes through only if the lock holds exactly this
    handle's owner and that epoch; otherwise Fenced, nothing written, index unchanged."""
    a, b = await nodes("node-a"), await nodes("node-b")
    await a.put("k", b"unfenced")  # fence None: no check
    ea = await a.acquire_lock("node-a")
    assert ea is not None
    a.fence = ea
    await a.put("k", b"a1")
    await a.commit([Write("k2", b"x")])
    await b.put("free", b"1")  # b is not fenced: its writes go through whoever holds the lock

    async def refused(h: HABackend, keys_before: list[str]) -> None:
        index, last = await a.write_index(), h.last_index
        v = await h.get_versioned("k")
        calls: list[Callable[[], Awaitable[None]]] = [
            lambda: h.put("k", b"stale"),
            lambda: h.put("n/new", b"stale"),
            lambda: h.delete("k"),
            lambda: h.delete("k2"),
            lambda: h.commit([Write("n/x", b"1"), Write("k", b"stale"), Write("k2", None)]),
            lambda: h.commit([Write("k", b"stale")], {"k": v.version}),  # good guard: fenced
            lambda: h.commit([Write("k", b"stale")], {"k": ABSENT}),  # both: Fenced first
            lambda: h.commit([Write("n/y", b"1")], durable=True),
        ]
        for call in calls:
            await assert_raises(Fenced, call())
        assert await a.get("k") == v.value
        assert await a.get("k2") == b"x"
        await assert_absent(a, "n/new", "n/x", "n/y")
        assert await a.list("") == keys_before
        assert await a.write_index() == index, "a refused write moved the index"
        assert h.last_index == last

    # Another owner with the holder's epoch (e.g. a second process with the same node id).
    b.fence = ea
    await refused(b, ["free", "k", "k2"])
    # A closed fence: an epoch no lock holds.
    b.fence = -1
    await refused(b, ["free", "k", "k2"])
    # No lock at all.
    await a.release_lock("node-a", ea)
    await refused(a, ["free", "k", "k2"])
    # Taken over: the old holder is stale, through update() too (never retried).
    eb = await b.acquire_lock("node-b")
    assert eb is not None and eb > ea
    b.fence = eb
    await b.put("k", b"b1")
    await refused(a, ["free", "k", "k2"])
    calls = 0

    def change(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
        nonlocal calls
        calls += 1
        return [Write("k", b"stale-update")], None

    await assert_raises(Fenced, update(a, ["k"], change))
    assert calls == 1, "update() retried a fenced commit"
    assert await a.get("k") == b"b1"
    a.fence = None  # unfenced writes always go through
    await a.put("k", b"unfenced-again")
    assert await b.get("k") == b"unfenced-again"


async def check_ha_write_index(nodes: Nodes) -> None:
    """The shared index moves by one per applied write (each write of a commit, a delete of
    a missing key too); `last_index` is the highest index a handle's own writes reached."""
    a, b = await nodes("node-a"), await nodes("node-b")
    i0 = await a.write_index()
    await a.put("x", b"1")
    assert a.last_index == await a.write_index() == i0 + 1
    await a.delete("x")
    await a.delete("never/existed")
    assert a.last_index == await b.write_index() == i0 + 3
    await a.commit([Write("c", b"1"), Write("d/e", b"2"), Write("c", None)])
    assert a.last_index == await a.write_index() == i0 + 6
    await b.put("y", b"1")
    assert b.last_index == await a.write_index() == i0 + 7
    assert a.last_index == i0 + 6
    assert await a.write_index(replica=True) == i0 + 7  # no replica: the same store

    v = await a.get_versioned("y")
    await a.commit([], {"y": v.version})  # a guard-only commit writes nothing
    await assert_raises(Conflict, a.commit([Write("y", b"2"), Write("z", b"3")], {"y": ABSENT}))
    assert await a.write_index() == i0 + 7
    assert a.last_index == i0 + 6

    await asyncio.gather(*(a.put(f"many/{i}", b"v") for i in range(20)))
    assert await b.write_index() == i0 + 27 == a.last_index
    epoch = await a.acquire_lock("node-a")  # the lock is not a write
    assert epoch is not None
    a.fence = epoch
    assert await a.renew_lock("node-a", epoch)
    assert await a.write_index() == i0 + 27
    await a.put("fenced", b"1")  # a fenced write counts like any other
    assert a.last_index == await a.write_index() == i0 + 28


async def check_ha_update_across_handles(nodes: Nodes) -> None:
    """Two backend objects (two processes, two nodes) race increments through update()."""
    a, b = await nodes("node-a"), await nodes("node-b")

    async def incr(values: dict[str, bytes | None]) -> tuple[list[Write], int]:
        await asyncio.sleep(0)
        n = int(values["ctr"] or b"0") + 1
        return [Write("ctr", str(n).encode())], n

    results = await asyncio.gather(*(update(h, ["ctr"], incr) for h in [a, b] * 25))
    assert sorted(results) == list(range(1, 51))
    assert await a.get("ctr") == await b.get("ctr") == b"50"


HA_CHECKS: tuple[HACheck, ...] = (
    check_ha_protocol,
    check_ha_acquire_is_exclusive,
    check_ha_concurrent_acquire,
    check_ha_epochs_only_grow,
    check_ha_renew,
    check_ha_release_only_exact,
    check_ha_release_never_foreign,
    check_ha_ttl,
    check_ha_fence,
    check_ha_write_index,
    check_ha_update_across_handles,
)


async def run_ha_check(ha_factory: HAFactory, check: HACheck) -> None:
    """Run one HA check on a fresh shared store from `ha_factory`, closing every handle."""
    nodes = Nodes(ha_factory())
    try:
        await check(nodes)
    finally:
        await nodes.close()


async def check_ha_backend(ha_factory: HAFactory) -> None:
    """Run the whole `HABackend` suite; raises AssertionError naming the first failing check."""
    for check in HA_CHECKS:
        try:
            await run_ha_check(ha_factory, check)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


class HABackendConformance:
    """Mix-in test class; subclasses provide the `ha_factory` fixture. One test per check
    of `HA_CHECKS`: `test_<check name without "check_">`."""


def _ha_test(check: HACheck) -> Callable[[Any, HAFactory], None]:
    def test(self: Any, ha_factory: HAFactory) -> None:
        asyncio.run(run_ha_check(ha_factory, check))

    test.__doc__ = check.__doc__
    return test


install_tests(HABackendConformance, HA_CHECKS, _ha_test)
