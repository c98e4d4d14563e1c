"""The transit PolicyStore keeps at most `cache_size` keys in each of its per-key dicts, and an
evicted key loses nothing: it is read from storage again, with every version."""

from __future__ import annotations

import asyncio

from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.engines.transit.policies import PolicyStore
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend


def _sizes(store: PolicyStore) -> list[int]:
    return [len(store._cache), len(store._parsed), len(store._loaded_versions),
            len(store._locks)]


def test_every_per_key_dict_is_bounded_and_evicted_keys_reload() -> None:
    async def go() -> None:
        storage = StorageView(InmemBackend(), "logical/m/")
        store = PolicyStore(storage, cache_size=8)
        cts = {}
        for i in range(40):
            name = f"k{i}"
            await store.modify(name, lambda _, n=name: (Policy.create(n, KeyType.AES256_GCM96), None))
            await store.modify(name, lambda p: (p, p.rotate()))
            p = await store.get(name)
            assert p is not None
            cts[name] = p.encrypt(b"pt-" + name.encode())[0]
            assert max(_sizes(store)) <= 8
        assert store.cached("k0") is None  # evicted long ago
        for name, ct in cts.items():
            p = await store.get(name)
            assert p is not None and p.latest_version == 2
            assert p.decrypt(ct) == b"pt-" + name.encode()
            assert max(_sizes(store)) <= 8
        # a rotation of an evicted key starts from storage: no version is lost
        await store.modify("k1", lambda p: (p, p.rotate()))
        fresh = PolicyStore(storage)
        p = await fresh.get("k1")
        assert p is not None and p.latest_version == 3 and p.decrypt(cts["k1"]) == b"pt-k1"

    asyncio.run(go())


def test_a_lock_in_use_is_never_dropped() -> None:
    async def go() -> None:
        store = PolicyStore(StorageView(InmemBackend(), "logical/m/"), cache_size=8)
        held = store.lock("busy")
        async with held:
            for i in range(50):
                store.lock(f"other{i}")
            assert store.lock("busy") is held
            assert len(store._locks) <= 8
        assert len(store._locks) <= 8

    asyncio.run(go())
