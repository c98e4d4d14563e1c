"""A ciphertext newer than the cached key reloads it, and a performance standby forwards
when even storage does not know the version yet (DESIGN §5)."""

from __future__ import annotations

import asyncio

import pytest

from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.engines.transit.policies import PolicyStore
from transit.errors import ForwardToActive
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend


def test_stale_cache_reloads_then_forwards() -> None:
    async def go() -> None:
        storage = StorageView(InmemBackend(), "logical/m/")
        standby, active = PolicyStore(storage), PolicyStore(storage)
        await active.modify("k", lambda _: (Policy.create("k", KeyType.AES256_GCM96), None))
        cached = await standby.get("k")
        assert cached is not None and cached.latest_version == 1

        rotated, _ = await active.modify("k", lambda p: (p, p.rotate()))
        assert rotated is not None  # the standby's cache has not heard of it
        ct, version = rotated.encrypt(b"hi")
        assert version == 2

        fresh = await standby.get_for("k", [ct], forward=True)
        assert fresh is not None and fresh.latest_version == 2
        assert fresh.decrypt(ct) == b"hi"

        with pytest.raises(ForwardToActive):
            await standby.get_for("k", ["vault:v3:AAAA"], forward=True)
        same = await standby.get_for("k", ["vault:v3:AAAA"], forward=False)
        assert same is not None and same.latest_version == 2  # the decrypt error follows

    asyncio.run(go())


def test_two_stores_rotating_one_key_never_lose_a_version() -> None:
    """Two PolicyStores over one storage stand for two worker processes, each with its own
    (stale) cache: rotations interleaved at every await still give distinct versions, and the
    stored key ends with all of them (DESIGN §7: re-read storage, guarded commit)."""

    async def go() -> None:
        storage = StorageView(InmemBackend(), "logical/m/")
        a, b = PolicyStore(storage), PolicyStore(storage)
        await a.modify("k", lambda _: (Policy.create("k", KeyType.AES256_GCM96), None))
        await b.get("k")  # b caches v1 and never hears of a's rotations

        async def rotate(store: PolicyStore) -> int:
            p, _ = await store.modify("k", lambda p: (p, p.rotate()))
            assert p is not None
            return p.latest_version

        versions = await asyncio.gather(*(rotate(s) for s in [a, b] * 10))
        assert sorted(versions) == list(range(2, 22))
        fresh = PolicyStore(storage)
        stored = await fresh.get("k")
        assert stored is not None and stored.latest_version == 21
        assert sorted(stored.keys) == list(range(1, 22))

    asyncio.run(go())


def test_a_change_that_raises_writes_nothing_and_keeps_the_cache() -> None:
    async def go() -> None:
        storage = StorageView(InmemBackend(), "logical/m/")
        store = PolicyStore(storage)
        await store.modify("k", lambda _: (Policy.create("k", KeyType.AES256_GCM96), None))
        before = await storage.get("policy/k")

        def boom(p: Policy | None) -> tuple[Policy, None]:
            assert p is not None
            p.rotate()
            raise ValueError("no")

        with pytest.raises(ValueError):
            await store.modify("k", boom)
        assert await storage.get("policy/k") == before
        cached = store.cached("k")
        assert cached is not None and cached.latest_version == 1

    asyncio.run(go())
