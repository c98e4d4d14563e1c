"""Seal manager: Shamir init/unseal per node, progress and reset, static seal."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
from pathlib import Path

import orjson
import pytest

from transit.barrier import Barrier
from transit.errors import ConfigError, InvalidKey, UserError
from transit.seal.manager import SealManager
from transit.seal.static import load_static_key, static_key_from_config
from transit.seal.stored import SEAL_CONFIG_PATH, UNSEAL_KEYS_PATH
from transit.storage.inmem import InmemBackend


def manager(physical: InmemBackend | None = None, static: bytes | None = None) -> SealManager:
    physical = InmemBackend() if physical is None else physical
    return SealManager(physical, Barrier(physical), static_key=static)


async def initialized(shares: int = 5, threshold: int = 3) -> tuple[SealManager, list[bytes]]:
    m = manager()
    keys, _ = await m.initialize(shares, threshold)
    m.seal()
    return m, keys


@pytest.mark.parametrize(
    ("shares", "threshold", "message"),
    [
        (0, 1, "shares must be at least one"),
        (3, 0, "threshold must be at least one"),
        (3, 1, "threshold must be greater than one for multiple shares"),
        (256, 3, "shares must be less than 256"),
        (3, 5, "threshold cannot be larger than shares"),
        (-1, -1, "shares must be at least one"),
    ],
)
def test_init_validation(shares: int, threshold: int, message: str) -> None:
    async def go() -> None:
        m = manager()
        with pytest.raises(UserError) as exc:
            await m.initialize(shares, threshold)
        assert str(exc.value) == f"invalid seal configuration: {message}"
        assert not await m.initialized()
        assert await m.physical.list("") == []  # nothing stored

    asyncio.run(go())


def test_init_stores_config_in_plaintext_and_leaves_barrier_unsealed() -> None:
    async def go() -> None:
        m = manager()
        before = await m.status()
        assert before["initialized"] is False and before["t"] == 0 and before["n"] == 0
        keys, root = await m.initialize(5, 3)
        assert len(keys) == 5 and all(len(k) == 33 for k in keys)
        assert len(root) == 32
        assert not m.barrier.sealed
        cfg = orjson.loads((await m.physical.get(SEAL_CONFIG_PATH)) or b"")
        assert cfg["type"] == "shamir"
        assert (cfg["secret_shares"], cfg["secret_threshold"]) == (5, 3)
        blob = (await m.physical.get(UNSEAL_KEYS_PATH)) or b""
        assert root not in blob
        with pytest.raises(UserError, match="Vault is already initialized"):
            await m.initialize(5, 3)
        status = await m.status()
        assert status["sealed"] is False and (status["t"], status["n"]) == (3, 5)

    asyncio.run(go())


def test_unseal_with_several_subsets() -> None:
    async def go() -> None:
        m, keys = await initialized()
        for subset in itertools.islice(itertools.permutations(keys, 3), 0, 60, 7):
            assert m.barrier.sealed
            assert await m.unseal(subset[0]) is False
            assert await m.unseal(subset[1]) is False
            assert await m.unseal(subset[2]) is True
            assert not m.barrier.sealed
            status = await m.status()
            assert status["progress"] == 0 and status["nonce"] == ""
            m.seal()

    asyncio.run(go())


def test_progress_nonce_duplicate_and_reset() -> None:
    async def go() -> None:
        m, keys = await initialized()
        s0 = await m.status()
        assert (s0["sealed"], s0["progress"], s0["nonce"]) == (True, 0, "")
        await m.unseal(keys[0])
        s1 = await m.status()
        assert s1["progress"] == 1 and len(s1["nonce"]) == 36
        await m.unseal(keys[0])  # a duplicate does not advance
        s2 = await m.status()
        assert s2["progress"] == 1 and s2["nonce"] == s1["nonce"]
        await m.unseal(keys[1])
        assert (await m.status())["progress"] == 2
        assert await m.unseal(None, reset=True) is False
        s3 = await m.status()
        assert (s3["progress"], s3["nonce"]) == (0, "")
        await m.unseal(keys[2])
        assert (await m.status())["nonce"] not in ("", s1["nonce"])
        await m.unseal(keys[3])
        assert await m.unseal(keys[4]) is True
        with pytest.raises(UserError, match="vault is unsealed"):
            await m.unseal(None, reset=True)
        assert await m.unseal(keys[0]) is False  # already unsealed: nothing happens
        assert not m.barrier.sealed

    asyncio.run(go())


def test_wrong_shares_fail_and_reset_progress() -> None:
    async def go() -> None:
        m, keys = await initialized()
        _, other = await initialized()
        await m.unseal(keys[0])
        await m.unseal(keys[1])
        with pytest.raises(InvalidKey, match="^Unseal failed, invalid key$"):
            await m.unseal(other[0])
        status = await m.status()
        assert (status["sealed"], status["progress"], status["nonce"]) == (True, 0, "")
        # mixed lengths: same generic error
        await m.unseal(keys[0])
        await m.unseal(keys[1])
        with pytest.raises(InvalidKey):
            await m.unseal(os.urandom(20))
        assert (await m.status())["progress"] == 0
        # and the right shares still work afterwards
        for k in keys[2:]:
            last = await m.unseal(k)
        assert last is True

    asyncio.run(go())


def test_key_length_and_uninitialized_errors() -> None:
    async def go() -> None:
        m, _ = await initialized()
        with pytest.raises(UserError, match="shorter than minimum 16 bytes"):
            await m.unseal(b"x" * 15)
        with pytest.raises(UserError, match="longer than maximum 33 bytes"):
            await m.unseal(b"x" * 34)
        with pytest.raises(UserError, match="'key' must be specified"):
            await m.unseal(b"")
        assert (await m.status())["progress"] == 0
        fresh = manager()
        with pytest.raises(UserError, match="Vault is not initialized"):
            await fresh.unseal(os.urandom(33))

    asyncio.run(go())


def test_one_of_one_share_is_the_kek() -> None:
    async def go() -> None:
        m, keys = await initialized(1, 1)
        assert len(keys) == 1 and len(keys[0]) == 32
        assert await m.unseal(keys[0]) is True
        m.seal()
        with pytest.raises(InvalidKey):
            await m.unseal(os.urandom(32))

    asyncio.run(go())


def test_unseal_is_per_node() -> None:
    async def go() -> None:
        physical = InmemBackend()
        a = manager(physical)
        keys, _ = await a.initialize(3, 2)
        a.seal()
        b = SealManager(physical, Barrier(physical))
        await a.unseal(keys[0])
        assert (await b.status())["progress"] == 0
        assert await b.unseal(keys[1]) is False
        assert await b.unseal(keys[2]) is True
        assert a.barrier.sealed and not b.barrier.sealed

    asyncio.run(go())


def test_static_seal_auto_unseals() -> None:
    async def go() -> None:
        physical = InmemBackend()
        key = os.urandom(32)
        m = manager(physical, key)
        assert m.auto and m.type == "static"
        assert await m.auto_unseal() is False  # not initialised yet
        recovery, root = await m.initialize(5, 3)
        assert len(recovery) == 5 and all(len(k) == 33 for k in recovery)
        assert not m.barrier.sealed
        await m.barrier.put("data", b"kept")
        status = await m.status()
        assert status["type"] == "static" and status["recovery_seal"] is True
        assert (status["t"], status["n"]) == (3, 5)
        # restart: a new manager on the same storage unseals itself
        again = manager(physical, key)
        assert again.barrier.sealed
        assert await again.auto_unseal() is True
        assert await again.barrier.get("data") == b"kept"
        assert await again.auto_unseal() is False  # already unsealed
        again.seal()
        with pytest.raises(UserError, match="static seal"):
            await again.unseal(recovery[0])
        # the wrong static key
        wrong = manager(physical, os.urandom(32))
        with pytest.raises(InvalidKey):
            await wrong.auto_unseal()
        # a Shamir-configured node cannot open it with shares either
        shamir_node = manager(physical)
        with pytest.raises(UserError, match="static seal"):
            await shamir_node.unseal(recovery[0])

    asyncio.run(go())


def test_static_seal_init_validation_says_recovery() -> None:
    async def go() -> None:
        m = manager(static=os.urandom(32))
        with pytest.raises(UserError, match="^invalid recovery configuration: threshold cannot"):
            await m.initialize(2, 3)

    asyncio.run(go())


def test_static_key_on_shamir_storage_stays_sealed() -> None:
    async def go() -> None:
        physical = InmemBackend()
        keys, _ = await manager(physical).initialize(1, 1)
        node = manager(physical, os.urandom(32))
        assert await node.auto_unseal() is False
        assert node.barrier.sealed
        assert await node.unseal(keys[0]) is True  # the stored (Shamir) config rules

    asyncio.run(go())


def test_static_key_sources(tmp_path: Path) -> None:
    key = os.urandom(32)
    raw = tmp_path / "raw.key"
    raw.write_bytes(key)
    hexed = tmp_path / "hex.key"
    hexed.write_text(key.hex() + "\n")
    b64 = tmp_path / "b64.key"
    b64.write_text(base64.b64encode(key).decode())
    for path in (raw, hexed, b64):
        assert load_static_key(f"file://{path}") == key
    assert load_static_key("env://SEAL_KEY", {"SEAL_KEY": key.hex()}) == key
    assert load_static_key("env://SEAL_KEY", {"SEAL_KEY": base64.b64encode(key).decode()}) == key
    assert load_static_key(key.hex().upper()) == key
    assert load_static_key(base64.urlsafe_b64encode(key).decode()) == key
    for bad in ("env://MISSING", f"file://{tmp_path}/nope", "abcd", base64.b64encode(b"x" * 16).decode()):
        with pytest.raises(ConfigError):
            load_static_key(bad, {})
    short = tmp_path / "short.key"
    short.write_bytes(b"\xff" * 31)
    with pytest.raises(ConfigError):
        load_static_key(f"file://{short}")
    with pytest.raises(ConfigError):
        SealManager(InmemBackend(), Barrier(InmemBackend()), static_key=b"short")


def test_static_key_from_config(tmp_path: Path) -> None:
    from transit.config import parse_config

    key = os.urandom(32)
    path = tmp_path / "unseal.key"
    path.write_bytes(key)
    base = 'storage "inmem" {}\nlistener "tcp" { tls_disable = true }\n'
    cfg = parse_config(base + f'seal "static" {{\n current_key_id = "k1"\n current_key = "file://{path}"\n}}\n')
    assert static_key_from_config(cfg.raw) == key
    assert static_key_from_config(parse_config(base).raw) is None
    json_cfg = {"seal": {"static": {"current_key": "env://K"}}}
    assert static_key_from_config(json_cfg, {"K": key.hex()}) == key
    with pytest.raises(ConfigError, match="unsupported seal type"):
        static_key_from_config({"seal": {"awskms": {}}})
    with pytest.raises(ConfigError, match="current_key is required"):
        static_key_from_config({"seal": {"static": {}}})
