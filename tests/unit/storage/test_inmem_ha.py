"""The in-memory HA backend's specifics (transit/storage/inmem_ha.py): shared handles, lock
TTL on the clock, owners and holder_gone."""

from __future__ import annotations

import asyncio

import pytest

from transit.errors import (
    Fenced,
    StorageError,
)
from transit.storage.base import HABackend, Write
from transit.storage.inmem import InmemBackend
from transit.storage.inmem_ha import InmemHABackend


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_inmem_ha_handles_share_one_store() -> None:
    async def go() -> None:
        a = InmemHABackend(owner="node-a")
        b = a.connect("node-b")
        await a.put("x/y", b"1")
        assert await b.get("x/y") == b"1"
        assert await b.list("x/") == ["y"]
        await b.commit([Write("x/y", None), Write("z", b"2")])
        assert await a.list("") == ["z"]
        assert await a.write_index() == await b.write_index() == 3
        assert (a.last_index, b.last_index) == (1, 3)
        assert (a.owner, b.owner) == ("node-a", "node-b")
        other = InmemHABackend()  # a new store shares nothing
        assert await other.list("") == [] and await other.write_index() == 0

    asyncio.run(go())


def test_inmem_ha_ttl_on_the_clock() -> None:
    async def go() -> None:
        clock = FakeClock()
        a = InmemHABackend(owner="node-a", lock_ttl=10, clock=clock)
        b = a.connect("node-b", lock_ttl=3)
        assert b.lock_ttl == 3 and a.connect().lock_ttl == 10
        epoch = await a.acquire_lock("node-a")
        assert epoch == 1
        a.fence = epoch
        clock.now += 9.9
        assert await a.renew_lock("node-a", 1)  # renewed at 9.9 s: good until 19.9 s
        clock.now += 9.9
        await a.put("k", b"v")
        assert await b.lock_holder() == ("node-a", 1)
        clock.now += 0.1  # exactly at the deadline: expired
        assert await b.lock_holder() is None
        with pytest.raises(Fenced):
            await a.put("k", b"late")
        assert not await a.renew_lock("node-a", 1)
        assert await b.acquire_lock("node-b") == 2
        clock.now += 3
        assert await a.acquire_lock("node-a") == 3  # b's 3 s lock expired

    asyncio.run(go())


def test_inmem_ha_owner_and_holder_gone() -> None:
    async def go() -> None:
        a = InmemHABackend()
        assert a.owner is None
        a.fence = 5
        with pytest.raises(Fenced):  # fenced without an owner: never holds the lock
            await a.put("k", b"v")
        a.fence = None
        assert await a.acquire_lock("node-a@1") == 1
        assert a.owner == "node-a@1"  # adopted
        with pytest.raises(StorageError, match="not 'node-b'"):
            await a.acquire_lock("node-b")
        watcher = a.connect()
        twin = a.connect("node-a@1")  # a second process with the same owner
        assert not await watcher.holder_gone("node-a@1")
        await a.close()
        assert not await watcher.holder_gone("node-a@1")
        await twin.close()
        await twin.close()  # twice is fine
        assert await watcher.holder_gone("node-a@1")
        assert await watcher.lock_holder() == ("node-a@1", 1)  # the lock outlives the process
        assert await watcher.holder_gone("never-seen")
        other = a.connect("node-b")
        with pytest.raises(StorageError, match="cannot release"):
            await other.release_lock("node-a@1", 1)
        assert await watcher.lock_holder() == ("node-a@1", 1)
        assert not await other.break_lock("node-b", 1)  # its own: release_lock, not break
        assert await other.break_lock("node-a@1", 1)  # the holder's process is gone
        assert await watcher.lock_holder() is None
        epoch = await other.acquire_lock("node-b")
        assert not await a.connect("node-c").break_lock("node-b", epoch)  # node-b is alive
        assert await watcher.lock_holder() == ("node-b", epoch)
        with pytest.raises(StorageError):
            InmemHABackend(lock_ttl=0)
        with pytest.raises(StorageError):
            await watcher.acquire_lock("")

    asyncio.run(go())


def test_inmem_ha_is_an_inmem_backend() -> None:
    b = InmemHABackend()
    assert isinstance(b, InmemBackend)
    assert isinstance(b, HABackend)
    assert not isinstance(InmemBackend(), HABackend)
