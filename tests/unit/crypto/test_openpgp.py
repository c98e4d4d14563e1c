"""The OpenPGP public-key reader and message encrypter (transit/crypto/openpgp.py) that
encrypts key shares for their holders (operations-api §1)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from transit import rekey as rekeys
from transit.crypto import openpgp


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
