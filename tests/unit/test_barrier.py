"""The AES-256-GCM storage barrier (spec ha-and-sys-api §5.1)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transit.barrier import KEYRING_PATH, MASTER_PATH, Barrier
from transit.errors import InvalidKey, Sealed, StorageError, UserError
from transit.storage.base import Backend, StorageView
from transit.storage.conformance.backend import BackendConformance
from transit.storage.inmem import InmemBackend


async def _unsealed(physical: InmemBackend | None = None) -> tuple[Barrier, InmemBackend, bytes]:
    physical = InmemBackend() if physical is None else physical
    root = os.urandom(32)
    b = Barrier(physical)
    await b.initialize(root)
    await b.unseal(root)
    return b, physical, root


class TestBarrierConformance(BackendConformance):
    """An unsealed barrier seen through a view (the keyring lives at the root)."""

    @pytest.fixture
    def backend_factory(self) -> Callable[[], Awaitable[Backend]]:
        async def make() -> Backend:
            b, _, _ = await _unsealed()
            return StorageView(b, "logical/conformance/")

        return make


def test_round_trip_and_layout() -> None:
    async def go() -> None:
        b, physical, _ = await _unsealed()
        assert isinstance(b, Backend)
        assert await b.initialized()
        await b.put("sys/token/x", b"secret value")
        assert await b.get("sys/token/x") == b"secret value"
        assert await b.get("missing") is None
        raw = await physical.get("sys/token/x")
        assert raw is not None
        assert raw[:4] == (1).to_bytes(4, "big") and raw[4] == 0x02
        assert len(raw) == 4 + 1 + 12 + len(b"secret value") + 16
        assert await b.list("sys/") == ["token/"]
        await b.delete("sys/token/x")
        assert await b.get("sys/token/x") is None

    asyncio.run(go())


def test_keyring_under_root_key_term_1() -> None:
    async def go() -> None:
        _, physical, root = await _unsealed()
        blob = await physical.get(KEYRING_PATH)
        assert blob is not None and blob[:5] == b"\x00\x00\x00\x01\x02"
        ring = orjson.loads(AESGCM(root).decrypt(blob[5:17], blob[17:], KEYRING_PATH.encode()))
        assert [k["Term"] for k in ring["Keys"]] == [1]
        assert len(ring["Keys"][0]["Value"]) == 44  # base64 of 32 bytes
        assert await physical.get(MASTER_PATH) is not None

    asyncio.run(go())


def test_aad_binds_the_path() -> None:
    async def go() -> None:
        b, physical, _ = await _unsealed()
        await b.put("a/one", b"value")
        await physical.put("a/two", (await physical.get("a/one")) or b"")
        with pytest.raises(StorageError, match="message authentication failed"):
            await b.get("a/two")
        blob = bytearray((await physical.get("a/one")) or b"")
        blob[-1] ^= 1
        await physical.put("a/one", bytes(blob))
        with pytest.raises(StorageError):
            await b.get("a/one")

    asyncio.run(go())


def test_rotation_keeps_old_values_readable() -> None:
    async def go() -> None:
        b, physical, root = await _unsealed()
        await b.put("old", b"written under term 1")
        assert b.key_status()["term"] == 1
        assert await b.rotate() == 2
        assert await b.rotate() == 3
        await b.put("new", b"written under term 3")
        assert ((await physical.get("new")) or b"")[:4] == (3).to_bytes(4, "big")
        assert await physical.get("core/upgrade/1") is not None
        assert await physical.get("core/upgrade/2") is not None
        status = b.key_status()
        assert status["term"] == 3 and status["encryptions"] == 1
        assert str(status["install_time"]).endswith("Z")
        # a fresh unseal (another node, or after restart) reads every term
        b.seal()
        other = Barrier(physical)
        await other.unseal(root)
        assert await other.get("old") == b"written under term 1"
        assert await other.get("new") == b"written under term 3"
        assert other.key_status()["term"] == 3

    asyncio.run(go())


def test_follower_picks_up_a_rotation() -> None:
    async def go() -> None:
        active, physical, root = await _unsealed()
        follower = Barrier(physical)
        await follower.unseal(root)
        await active.rotate()
        await active.put("k", b"v")
        assert await follower.get("k") == b"v"  # unknown term -> keyring reloaded
        assert follower.key_status()["term"] == 2
        await active.rotate()
        await follower.reload_keyring()
        assert follower.key_status()["term"] == 3

    asyncio.run(go())


def test_unknown_term_is_an_error() -> None:
    async def go() -> None:
        b, physical, _ = await _unsealed()
        await b.put("k", b"v")
        blob = (await physical.get("k")) or b""
        await physical.put("k", (9).to_bytes(4, "big") + blob[4:])
        with pytest.raises(StorageError, match="term 9"):
            await b.get("k")

    asyncio.run(go())


def test_sealed_barrier_refuses_everything() -> None:
    async def go() -> None:
        b, _, _ = await _unsealed()
        await b.put("k", b"v")
        b.seal()
        assert b.sealed
        for call in (b.get("k"), b.put("k", b"x"), b.delete("k"), b.list(""), b.rotate()):
            with pytest.raises(Sealed, match="Vault is sealed"):
                await call
        with pytest.raises(Sealed):
            b.key_status()
        fresh = Barrier(InmemBackend())
        assert fresh.sealed
        with pytest.raises(Sealed):
            await fresh.get("k")

    asyncio.run(go())


def test_wrong_root_key() -> None:
    async def go() -> None:
        b, physical, root = await _unsealed()
        b.seal()
        with pytest.raises(InvalidKey, match="Unseal failed, invalid key"):
            await b.unseal(os.urandom(32))
        with pytest.raises(InvalidKey):
            await b.unseal(b"short")
        assert b.sealed
        await b.unseal(root)
        assert not b.sealed

    asyncio.run(go())


def test_initialize_twice_and_unseal_uninitialized() -> None:
    async def go() -> None:
        b, physical, root = await _unsealed()
        with pytest.raises(UserError, match="already initialized"):
            await b.initialize(os.urandom(32))
        empty = Barrier(InmemBackend())
        assert not await empty.initialized()
        with pytest.raises(UserError, match="not initialized"):
            await empty.unseal(root)

    asyncio.run(go())


def test_physical_store_holds_no_plaintext() -> None:
    async def go() -> None:
        b, physical, root = await _unsealed()
        marker = b"PLAINTEXT-MARKER-0123456789"
        await b.put("logical/m/keys/k", marker * 3)
        await b.put("sys/policy/p", b'{"path":"' + marker + b'"}')
        await b.rotate()
        await b.put("sys/token/t", marker)
        everything = b"".join(physical._data.values()) + "".join(physical._data).encode()
        assert marker not in everything
        for term_key in b._keys.values():
            assert bytes(term_key.value) not in everything
        assert root not in everything

    asyncio.run(go())


def test_seal_zeroes_keys() -> None:
    async def go() -> None:
        b, _, _ = await _unsealed()
        held = [k.value for k in b._keys.values()]
        b.seal()
        assert all(v == bytearray(32) for v in held)
        assert b._keys == {} and b._aeads == {}

    asyncio.run(go())
