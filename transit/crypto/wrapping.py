"""BYOK key wrapping (spec §4.20): RSA-OAEP of an ephemeral AES-256 key ‖ AES-KWP (RFC 5649)
of the target key. `unwrap` serves `keys/:name/import`, `wrap` and `key_material_for_wrap`
serve `byok-export`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from transit.crypto.keytypes import KeyType
from transit.errors import InternalError, UserError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from transit.crypto.policy import Policy

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA1": hashes.SHA1, "SHA224": hashes.SHA224, "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384, "SHA512": hashes.SHA512,
}
MIN_WRAPPED_KEY_SIZE = 16  # AES-KWP output is at least 16 bytes


def parse_hash_function(name: str) -> hashes.HashAlgorithm:
    """`hash_function` (any case) -> hash; UserError(`unknown hash function: x`)."""
    cls = _HASHES.get((name or "SHA256").upper())
    if cls is None:
        raise UserError(f"unknown hash function: {name}")
    return cls()


def _oaep(h: hashes.HashAlgorithm) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def unwrap(ciphertext: bytes, wrapping_key: RSAPrivateKey, hash_function: str) -> bytes:
    """The target key bytes of an import `ciphertext`; InternalError (500) on failure."""
    h = parse_hash_function(hash_function)
    k = wrapping_key.key_size // 8
    if len(ciphertext) < k + MIN_WRAPPED_KEY_SIZE:
        raise InternalError("provided ciphertext is too short")
    try:
        eph = wrapping_key.decrypt(ciphertext[:k], _oaep(h))
    except ValueError:
        raise InternalError("crypto/rsa: decryption error") from None
    if len(eph) != 32:
        raise InternalError("expected ephemeral AES key to be 256-bit")
    try:
        return aes_key_unwrap_with_padding(eph, ciphertext[k:])
    except (InvalidUnwrap, ValueError):
        raise InternalError("failed to unwrap the target key: kwp: unwrap failed") from None


def wrap(target: bytes, public_key: RSAPublicKey, hash_function: str = "SHA256") -> bytes:
    """The import format for `target` under `public_key` (a fresh ephemeral key each time)."""
    h = parse_hash_function(hash_function)
    eph = os.urandom(32)
    return public_key.encrypt(eph, _oaep(h)) + aes_key_wrap_with_padding(eph, target)


def key_material_for_wrap(policy: Policy, version: int) -> bytes:
    """What byok-export wraps: raw bytes (symmetric, hmac) or PKCS#8 DER (asymmetric)."""
    t = policy.type
    e = policy.keys.get(version or policy.latest_version)
    if e is None:
        raise UserError("version does not exist or cannot be found")
    if t.is_aead or t is KeyType.HMAC:
        return e.key or b""
    if e.is_private_key_missing(t):
        raise InternalError("private key material is missing for this key version")
    k: EllipticCurvePrivateKey | Ed25519PrivateKey | RSAPrivateKey
    if t.is_ecdsa:
        k = e.ec_private(t)
    elif t is KeyType.ED25519:
        k = e.ed_private()
    else:
        k = e.rsa_private()
    return k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())
