"""Building KeyEntries from imported material (BYOK, spec §4.20): raw keys, PKCS#8 DER private
keys and PKIX PEM public keys. Errors are Vault's plain (500) messages, without the
"error importing key: " prefix that `Policy.import_*` adds."""

from __future__ import annotations

import os
import re
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from transit.crypto.encoding import b64encode, format_time
from transit.crypto.keyentry import CURVES, KeyEntry, set_ec_private, set_ec_public, set_ed_private
from transit.crypto.keytypes import HMAC_MAX_KEY_SIZE, HMAC_MIN_KEY_SIZE, KeyType


class ImportError_(ValueError):
    """Import failed; the message is Vault's."""


_GO_TYPE = {rsa.RSAPrivateKey: "*rsa.PrivateKey", rsa.RSAPublicKey: "*rsa.PublicKey",
            ec.EllipticCurvePrivateKey: "*ecdsa.PrivateKey",
            ec.EllipticCurvePublicKey: "*ecdsa.PublicKey",
            ed25519.Ed25519PrivateKey: "ed25519.PrivateKey",
            ed25519.Ed25519PublicKey: "ed25519.PublicKey"}


def _go_type(k: object) -> str:
    for cls, name in _GO_TYPE.items():
        if isinstance(k, cls):
            return name
    return type(k).__name__


def _new_entry(key_type: KeyType, now: datetime) -> KeyEntry:
    e = KeyEntry(time=format_time(now), creation_time=int(now.timestamp()))
    if key_type is not KeyType.HMAC:
        e.hmac_key = os.urandom(32)
    return e


def _wrong_type(key_type: KeyType, k: object) -> ImportError_:
    return ImportError_(f"invalid key type: expected {key_type}, got {_go_type(k)}")


def _apply(key_type: KeyType, e: KeyEntry, k: object) -> None:
    """Copy a parsed private or public key object into `e`, with Vault's checks."""
    if isinstance(k, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not key_type.is_ecdsa:
            raise _wrong_type(key_type, k)
        want = CURVES[key_type]()
        if k.curve.name != want.name:
            got = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
            raise ImportError_(f"invalid curve: expected {key_type.curve_name}, got "
                               f"{got.get(k.curve.name, k.curve.name)}")
        if isinstance(k, ec.EllipticCurvePrivateKey):
            set_ec_private(e, k)
        else:
            set_ec_public(e, k)
    elif isinstance(k, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        if key_type is not KeyType.ED25519:
            raise _wrong_type(key_type, k)
        if isinstance(k, ed25519.Ed25519PrivateKey):
            set_ed_private(e, k)
        else:
            e.public_key = b64encode(k.public_bytes_raw())
    elif isinstance(k, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if not key_type.is_rsa:
            raise _wrong_type(key_type, k)
        want_bytes = key_type.rsa_bits // 8
        got_bytes = (k.key_size + 7) // 8
        if got_bytes != want_bytes:
            raise ImportError_(f"invalid key size: expected {want_bytes} bytes, got {got_bytes} "
                               "bytes")
        if isinstance(k, rsa.RSAPrivateKey):
            e.rsa = k.private_numbers()
        else:
            e.rsa_pub = k.public_numbers()
    else:
        raise _wrong_type(key_type, k)


def entry_from_key(key_type: KeyType, key: bytes, now: datetime) -> KeyEntry:
    """Raw bytes (symmetric, hmac) or PKCS#8 DER (asymmetric) -> a new KeyEntry."""
    e = _new_entry(key_type, now)
    n = len(key)
    if key_type.is_aead or key_type is KeyType.HMAC:
        if (key_type.is_aead and n != key_type.key_len) or (
                key_type is KeyType.HMAC and not HMAC_MIN_KEY_SIZE <= n <= HMAC_MAX_KEY_SIZE):
            raise ImportError_(f"invalid key size {n} bytes for key type {key_type}")
        e.key = bytes(key)
        if key_type is KeyType.HMAC:
            e.hmac_key = e.key
        return e
    try:
        k = serialization.load_der_private_key(key, password=None)
    except (ValueError, TypeError) as err:
        raise ImportError_(f"error parsing asymmetric key: {err}") from None
    _apply(key_type, e, k)
    return e


_PEM_BLOCK = re.compile(r"-----BEGIN [^\n]*-----\r?\n.*?-----END [^\n]*-----", re.S)


def entry_from_public_pem(key_type: KeyType, pem: str, now: datetime) -> KeyEntry:
    if not key_type.supports_import_public_key:
        raise ImportError_(f"public key import is not supported for key type {key_type}")
    e = _new_entry(key_type, now)
    if not _PEM_BLOCK.search(pem):  # Go's pem.Decode found no block
        raise ImportError_("error parsing public key: not in PEM format")
    try:
        k = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as err:
        raise ImportError_(f"error parsing public key: {err}") from None
    _apply(key_type, e, k)
    return e


def fill_private(key_type: KeyType, old: KeyEntry, key: bytes) -> KeyEntry:
    """A copy of public-only `old` with the private half from PKCS#8 `key` (same key pair)."""
    try:
        k = serialization.load_der_private_key(key, password=None)
    except (ValueError, TypeError) as err:
        raise ImportError_(f"error parsing asymmetric key: {err}") from None
    new = KeyEntry.from_json(old.to_json())
    _apply(key_type, new, k)
    if key_type.is_rsa:
        ok = old.rsa_pub is not None and new.rsa is not None and (
            new.rsa.public_numbers == old.rsa_pub)
        if ok:
            new.rsa_pub = None
    elif key_type.is_ecdsa:
        ok = (new.ec_x, new.ec_y) == (old.ec_x, old.ec_y)
    else:
        ok = new.public_key == old.public_key
    if not ok:
        raise ImportError_("cannot import key, key pair does not match")
    return new
