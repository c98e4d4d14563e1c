"""Rekey and root generation below HTTP: the barrier following a new root key through
`core/master`, the seal's guarded rekey, the attempt state machines, the root-token
encoding and the OpenPGP reader/encrypter (operations-api §1-2)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from transit import generate_root as roots
from transit import rekey as rekeys
from transit.barrier import KEYRING_PATH, Barrier
from transit.crypto import openpgp, shamir
from transit.engines.system.rawjson import decode_share
from transit.errors import InvalidKey, UserError
from transit.rekey import OperatorError
from transit.seal import SEAL_CONFIG_PATH, SHAMIR_KEK_PATH, SealManager
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


def test_root_token_encoding_round_trip() -> None:
    token, otp = "hvs." + "a" * 24, roots.new_otp()
    assert len(otp) == roots.OTP_LENGTH == 28 and otp.isalnum()
    encoded = roots.encode_token(token, otp)
    assert len(encoded) == 38 and "=" not in encoded  # RawStdEncoding
    assert roots.decode_token(encoded, otp) == token
    raw = base64.b64decode(encoded + "==")
    assert bytes(x ^ y for x, y in zip(raw, otp.encode(), strict=True)) == token.encode()
    with pytest.raises(ValueError):
        roots.encode_token(token, otp[:-1])


def test_decode_share_is_go_strict_about_hex() -> None:
    key = os.urandom(33)
    assert decode_share(key.hex()) == key
    assert decode_share(base64.b64encode(key).decode()) == key
    with pytest.raises(UserError):  # Python's fromhex would take the spaces
        decode_share(" ".join(key.hex()[i:i + 2] for i in range(0, 66, 2)))


def _rsa_public_key(uid: bytes = b"T <t@example.com>", subkey: bool = False) -> bytes:
    """A minimal transferable public key (no signatures): RSA primary (+ an RSA subkey)."""
    def mpi(n: int) -> bytes:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return n.bit_length().to_bytes(2, "big") + raw

    def key_body() -> bytes:
        pub = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
        return b"\x04" + (1_700_000_000).to_bytes(4, "big") + b"\x01" + mpi(pub.n) + mpi(pub.e)

    def packet(tag: int, body: bytes) -> bytes:
        return bytes([0xC0 | tag, 0xFF]) + len(body).to_bytes(4, "big") + body

    out = packet(6, key_body())
    if uid:
        out += bytes([0x80 | (13 << 2), len(uid)]) + uid  # old-format user ID packet
    if subkey:
        out += packet(14, key_body())
    return out


def test_openpgp_read_and_encrypt_structure() -> None:
    data = _rsa_public_key()
    key = openpgp.read_public_key(data)
    body_len = int.from_bytes(data[2:6], "big")
    body = data[6:6 + body_len]
    assert key.fingerprint == hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body
                                           ).hexdigest()
    assert key.encryption_key() is key.primary  # no self-signature: the primary encrypts
    message = openpgp.encrypt(key, b"secret")
    assert message[0] == 0xC0 | 1 and message[2] == 3  # PKESK v3
    assert message[3:11] == key.primary.key_id and message[11] == 1
    assert b"secret" not in message
    # a subkey without a binding signature is not an encryption key
    with_sub = openpgp.read_public_key(_rsa_public_key(subkey=True))
    assert len(with_sub.subkeys) == 1 and with_sub.encryption_key() is with_sub.primary
    for bad, message_part in [
        (b"", "first packet was not a public/private key"),
        (b"\x00\x01", "tag byte does not have MSB set"),
        (_rsa_public_key(uid=b""), "entity without any identities"),
        (_rsa_public_key()[:40], "unexpected EOF"),
    ]:
        with pytest.raises(openpgp.PGPError, match=message_part):
            openpgp.read_public_key(bad)
    with pytest.raises(openpgp.PGPError, match="error decoding given PGP key: illegal base64 "
                                                "data at input byte 2"):
        rekeys.read_pgp_key("ab!cd")
    assert rekeys.read_pgp_key(base64.b64encode(data).decode()).fingerprint == key.fingerprint
