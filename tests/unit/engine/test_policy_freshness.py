"""A ciphertext newer than the cached key reloads it, and a performance standby forwards
when even storage does not know the version yet (DESIGN §5)."""

from __future__ import annotations

import asyncio

import pytest

from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.engines.transit.policies import PolicyStore, max_version
from transit.errors import ForwardToActive
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend


def test_max_version() -> None:
    assert max_version(["vault:v3:abc", "vault:v12:x", None, "junk", "vault:vx:y"]) == 12
    assert max_version([]) == 0


def test_stale_cache_reloads_then_forwards() -> None:
    async def run() -> None:
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

    asyncio.run(run())
