"""Rekey below HTTP (operations-api §1): the barrier following a new root key through
`core/master`, the seal's guarded rekey on every node, and the attempt state machine
(transit/rekey.py over transit/seal/ and transit/barrier.py)."""

from __future__ import annotations

import asyncio
import os
import re

import orjson
import pytest

from transit import rekey as rekeys
from transit.barrier import KEYRING_PATH, Barrier
from transit.crypto import shamir
from transit.errors import InvalidKey, UserError
from transit.rekey import OperatorError
from transit.seal.manager import SealManager
from transit.seal.stored import SEAL_CONFIG_PATH, SHAMIR_KEK_PATH
from transit.storage.inmem import InmemBackend


async def two_nodes(shares: int = 3, threshold: int = 2
                    ) -> tuple[SealManager, SealManager, list[bytes]]:
    """Two seal managers (two nodes) over one storage, both unsealed."""
    physical = InmemBackend()
    a = SealManager(physical, Barrier(physical))
    keys, _ = await a.initialize(shares, threshold)
    b = SealManager(physical, Barrier(physical))
    for k in keys[:threshold]:
        await b.unseal(k)
    assert not a.barrier.sealed and not b.barrier.sealed
    return a, b, keys


def test_barrier_rekey_is_followed_by_other_processes_through_core_master() -> None:
    async def go() -> None:
        a, b, _ = await two_nodes()
        await a.barrier.put("data/x", b"one")
        term = a.barrier.key_status()["term"]
        new_root = os.urandom(32)
        await a.barrier.rekey(new_root)
        assert bytes(a.barrier._root) == new_root
        assert a.barrier.key_status()["term"] == term  # terms unchanged
        # b still holds the old root key: the keyring no longer opens with it, core/master
        # (under a term key b knows) gives the new one
        await b.barrier.reload_keyring()
        assert bytes(b.barrier._root) == new_root
        assert await b.barrier.get("data/x") == b"one"
        # a rotation after the rekey, then b rotating: it follows both (upgrade chain)
        await a.barrier.rotate()
        await a.barrier.rekey(os.urandom(32))
        await b.barrier.rotate()
        assert b.barrier.key_status()["term"] == term + 2
        await a.barrier.reload_keyring()
        assert bytes(a.barrier._root) == bytes(b.barrier._root)
        # a fresh process: only the current root key opens the keyring
        c = Barrier(a.physical)
        with pytest.raises(InvalidKey):
            await c.unseal(new_root)
        await c.unseal(bytes(b.barrier._root))
        assert await c.get("data/x") == b"one"

    asyncio.run(go())


def test_seal_rekey_replaces_shares_on_every_node() -> None:
    async def go() -> None:
        a, b, old = await two_nodes(3, 2)
        kek = shamir.combine(old[:2])
        _, version = await a.open_root(kek)
        new_kek = os.urandom(32)
        config = rekeys.RekeyAttempt("n-1", 5, 3, (), None, False, False, 0).config()
        await a.rekey(new_kek, config, expect=version)
        stored = orjson.loads(await a.physical.get(SEAL_CONFIG_PATH))
        assert (stored["secret_shares"], stored["secret_threshold"], stored["nonce"]) == (
            5, 3, "n-1")
        assert await a.barrier.get(SHAMIR_KEK_PATH) == new_kek
        assert await a.barrier.get("core/keyring-canary") == b"n-1"
        # node b: seal-status follows (it re-reads), then sealed: old shares fail, new work
        b.forget_config()
        assert (await b.status())["t"] == 3
        b.seal()
        for k in old[:2]:
            await b.unseal(k)
        with pytest.raises(InvalidKey):
            await b.unseal(old[2])
        for k in shamir.split(new_kek, 5, 3)[1:4]:
            unsealed = await b.unseal(k)
        assert unsealed and not b.barrier.sealed
        # a second rekey guarded on the version the shares opened: refused, nothing written
        before = await a.physical.get(KEYRING_PATH)
        with pytest.raises(UserError, match="unseal keys changed"):
            await a.rekey(os.urandom(32), config, expect=version)
        assert await a.physical.get(KEYRING_PATH) == before

    asyncio.run(go())


def test_rekey_attempt_state_machine() -> None:
    async def go() -> None:
        a, _, old = await two_nodes(3, 2)
        idle = rekeys.status(a, 2, 0)
        assert idle["nonce"] == "" and idle["required"] == 2 and "verification_nonce" not in idle
        attempt = rekeys.start(a, 0, 2, 2, [], None, False, True)
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", attempt.nonce)
        with pytest.raises(OperatorError, match="rekey already in progress"):
            rekeys.start(a, 0, 2, 2, [], None, False, False)
        # another term of activity (HA epoch): the attempt is gone
        assert rekeys.status(a, 2, 7)["started"] is False
        attempt = rekeys.start(a, 7, 2, 2, [], None, False, True)
        assert await rekeys.update(a, 7, old[0], attempt.nonce) is None
        done = await rekeys.update(a, 7, old[1], attempt.nonce)
        assert done is not None and done["verification_required"] is True
        new = [bytes.fromhex(k) for k in done["keys"]]
        assert rekeys.verify_status(a, 7)["started"] is True
        assert await rekeys.verify(a, 7, new[0], done["verification_nonce"]) is None
        result = await rekeys.verify(a, 7, new[1], done["verification_nonce"])
        assert result == {"nonce": done["verification_nonce"], "complete": True}
        assert (await a.config()).secret_threshold == 2  # type: ignore[union-attr]
        assert a.attempts == {}
        # sealing drops an attempt
        rekeys.start(a, 7, 1, 1, [], None, False, False)
        a.seal()
        assert a.attempts == {}

    asyncio.run(go())
