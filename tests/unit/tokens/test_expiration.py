"""The token expiration manager (transit/tokens/expiration.py) over in-memory storage, with a
fake clock: expired tokens are revoked with their trees, and wrapping tokens with their data,
without anyone looking them up; renewals are honoured; work per tick is bounded; storage
errors are retried; nothing is written while the node is not active."""

from __future__ import annotations

import asyncio
import logging

import pytest

from transit.errors import StorageError
from transit.logical import UPDATE, Request, Response
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend
from transit.tokens import TokenEntry, TokenStore
from transit.tokens.expiration import ExpirationManager
from transit.tokens.wrapping import Wrapper


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


async def make(clock: Clock, physical: InmemBackend) -> TokenStore:
    store = TokenStore(StorageView(physical, "sys/token/"), clock=clock)
    await store.setup()
    return store


def stored_ids(physical: InmemBackend) -> set[str]:
    return {k.rsplit("/", 1)[1] for k in physical._data if k.startswith("sys/token/id/")}


def stored(physical: InmemBackend, prefix: str) -> list[str]:
    return [k for k in physical._data if k.startswith(prefix)]


async def drain(manager: ExpirationManager, limit: int = 100) -> int:
    """Tick until nothing is left to do now; returns the number of ticks."""
    for n in range(1, limit + 1):
        if not await manager.tick():
            return n
    raise AssertionError("the manager kept finding work")


def test_expired_parent_takes_its_children_without_a_lookup() -> None:
    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        root = await store.create_root()
        parent = await store.create(root, policies=["default"], ttl=10)
        # a periodic child would outlive its parent on its own: the tree takes it down
        child = await store.create(parent, policies=["default"], ttl=3600, period=3600)
        grandchild = await store.create(child, policies=["default"], ttl=3600, period=3600)
        other = await store.create(root, policies=["default"], ttl=100)
        manager = ExpirationManager(store)
        manager.start()
        await drain(manager)  # the scan
        # root never expires: not scheduled
        assert manager.pending == 4

        clock.advance(5)
        await drain(manager)
        assert stored_ids(physical) == {root.hash, parent.hash, child.hash, grandchild.hash,
                                        other.hash}

        clock.advance(6)
        await drain(manager)
        assert stored_ids(physical) == {root.hash, other.hash}
        assert len(stored(physical, "sys/token/accessor/")) == 2
        assert stored(physical, "sys/token/parent/") == [f"sys/token/parent/{root.hash}/{other.hash}"]
        assert manager.pending == 1
        assert await store.lookup(root.id) is root and await store.lookup(other.id) is other
        for gone in (parent, child, grandchild):
            assert await store.lookup(gone.id) is None

    asyncio.run(go())


def test_tokens_created_and_renewed_here_are_scheduled_directly() -> None:
    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        manager = ExpirationManager(store)
        manager.start()
        await drain(manager)
        root = await store.create_root()
        tok = await store.create(root, policies=["default"], ttl=10)
        assert manager.pending == 1  # no re-read needed
        clock.advance(8)
        await store.renew(tok, 60)
        clock.advance(5)  # past the first expiry
        await drain(manager)
        assert await store.lookup(tok.id) is tok
        clock.advance(60)
        await drain(manager)
        assert tok.hash not in stored_ids(physical)

    asyncio.run(go())


def test_a_renewal_elsewhere_is_honoured() -> None:
    """Another worker (a second store over the same storage) renews the token: whether or not
    its invalidation arrives, the manager re-reads storage before revoking."""

    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        sibling = await make(clock, physical)
        manager = ExpirationManager(store)
        manager.start()
        root = await store.create_root()
        quiet = await store.create(root, policies=["default"], ttl=10)
        told = await store.create(root, policies=["default"], ttl=10)
        clock.advance(5)
        for tok in (quiet, told):
            entry = await sibling.lookup(tok.id)
            assert entry is not None
            await sibling.renew(entry, 100)
        store.invalidate(told.hash)  # the invalidation feed (only for one of them)
        clock.advance(10)
        await drain(manager)
        assert {quiet.hash, told.hash} <= stored_ids(physical)
        clock.advance(100)
        await drain(manager)
        assert stored_ids(physical) == {root.hash}

    asyncio.run(go())


def test_tokens_another_worker_creates_are_found() -> None:
    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        sibling = await make(clock, physical)
        manager = ExpirationManager(store)
        manager.start()
        await drain(manager)
        root = await sibling.create_root()
        told = await sibling.create(root, policies=["default"], ttl=10)
        store.invalidate(told.hash)  # what the invalidation feed does
        await drain(manager)
        assert manager.pending == 1
        unheard = await sibling.create(root, policies=["default"], ttl=10)
        store.invalidate()  # a feed resubscribe: everything may have changed -> scan
        await drain(manager)
        assert manager.pending == 2
        clock.advance(11)
        await drain(manager)
        assert stored_ids(physical) == {root.hash}
        assert await sibling.lookup(unheard.id) is None

    asyncio.run(go())


def test_never_expiring_tokens_are_not_scheduled() -> None:
    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        root = await store.create_root()
        await store.create(root, policies=["root"], ttl=0)
        manager = ExpirationManager(store)
        manager.start()
        await drain(manager)
        assert manager.pending == 0
        clock.advance(10 * 365 * 86400)
        await drain(manager)
        assert len(stored_ids(physical)) == 2

    asyncio.run(go())


def test_expired_wrapping_token_and_its_data_are_removed() -> None:
    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        wrapper = Wrapper(store, StorageView(physical, "sys/wrapping/"))
        manager = ExpirationManager(store)
        manager.start()
        await drain(manager)
        req = Request(UPDATE, "wrapping/wrap", {}, None, "sys/")
        resp = await wrapper.wrap(Response(data={"secret": "s3"}), 30, req)
        assert resp is not None and resp.wrap_info is not None
        assert len(stored(physical, "sys/wrapping/")) == 2
        clock.advance(31)
        await drain(manager)
        assert stored(physical, "sys/wrapping/") == [] and stored_ids(physical) == set()
        assert stored(physical, "sys/token/accessor/") == []

    asyncio.run(go())


def test_work_per_tick_is_bounded() -> None:
    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        root = await store.create_root()
        for _ in range(25):
            await store.create(root, policies=["default"], ttl=10)
        manager = ExpirationManager(store, batch=10, scan_batch=10)
        manager.start()
        assert await manager.tick() is True  # a scan step: 10 of the 26 stored tokens read
        assert manager.pending in (9, 10)  # (the root, never expiring, may be among them)
        await drain(manager)
        assert manager.pending == 25
        clock.advance(11)
        assert await manager.tick() is True
        assert len(stored_ids(physical)) == 16
        assert await manager.tick() is True
        assert await manager.tick() is False
        assert stored_ids(physical) == {root.hash}

    asyncio.run(go())


class FlakyDeletes(InmemBackend):
    """Storage whose deletes fail while `failing` is set."""

    failing = False

    async def delete(self, key: str) -> None:
        if self.failing:
            raise StorageError("redis: connection refused")
        await super().delete(key)


def test_storage_errors_are_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        clock, physical = Clock(), FlakyDeletes()
        store = await make(clock, physical)
        root = await store.create_root()
        tok = await store.create(root, policies=["default"], ttl=10)
        sibling = await make(clock, physical)
        manager = ExpirationManager(store, interval=0.001)
        clock.advance(11)
        physical.failing = True
        task = asyncio.ensure_future(manager.run(lambda: True))
        try:
            for _ in range(500):  # bounded: until a failure was logged
                await asyncio.sleep(0.001)
                if "connection refused" in caplog.text:
                    break
            assert "token expiration: redis: connection refused" in caplog.text
            assert tok.hash in stored_ids(physical)  # revocation failed half way
            # A renewal that raced with the expiry (another worker checked the lease just
            # before it ended) commits after the manager's mark: the token stays dead.
            racing = TokenEntry.from_json(physical._data[f"sys/token/id/{tok.hash}"],
                                          hash=tok.hash)
            assert racing.num_uses == -1  # the mark
            racing.num_uses, racing.expire_time = 0, clock.t + 3600
            await sibling.save(racing)
            sibling.invalidate(tok.hash)
            assert await sibling.lookup_hash(tok.hash) is None
            physical.failing = False
            for _ in range(500):
                await asyncio.sleep(0.001)
                if tok.hash not in stored_ids(physical):
                    break
            assert stored_ids(physical) == {root.hash}
            assert stored(physical, "sys/token/accessor/") != []  # root's
            assert len(stored(physical, "sys/token/accessor/")) == 1
        finally:
            task.cancel()

    caplog.set_level(logging.WARNING, "transit.tokens.expiration")
    asyncio.run(go())


def test_nothing_happens_while_not_active() -> None:
    """A standby (or a sealed node) never writes: the manager idles and keeps no schedule;
    once active it scans and revokes."""

    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        root = await store.create_root()
        tok = await store.create(root, policies=["default"], ttl=10)
        clock.advance(11)
        manager = ExpirationManager(store, interval=0.001)
        active = False
        asked = 0  # how often the manager asked whether this node is active

        def is_active() -> bool:
            nonlocal asked
            asked += 1
            return active

        writes_before = dict(physical._data)
        task = asyncio.ensure_future(manager.run(is_active))
        try:
            for _ in range(5000):  # bounded: until it has been told "not active" 20 times
                if asked >= 20:
                    break
                await asyncio.sleep(0.001)
            assert asked >= 20
            assert physical._data == writes_before and not manager.running
            active = True
            for _ in range(500):
                await asyncio.sleep(0.001)
                if tok.hash not in stored_ids(physical):
                    break
            assert stored_ids(physical) == {root.hash}
            await store.create(root, policies=["default"], ttl=100)
            assert manager.pending == 1
            active = False  # stepped down: the schedule is dropped
            for _ in range(500):
                await asyncio.sleep(0.001)
                if not manager.running:
                    break
            assert not manager.running and manager.pending == 0
        finally:
            task.cancel()

    asyncio.run(go())
