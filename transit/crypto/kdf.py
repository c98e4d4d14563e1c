"""Key derivation for `derived` keys (spec §3.2)."""

from __future__ import annotations

import hashlib
import hmac as _hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from transit.errors import UserError

KDF_HMAC_SHA256_COUNTER = 0
KDF_HKDF_SHA256 = 1

MISSING_CONTEXT = (
    "missing 'context' for key derivation; the key was created using a derived key, which means "
    "additional, per-request information must be included in order to perform operations with "
    "the key"
)


def hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 with no salt. Its output is prefix-stable in `length`."""
    return HKDF(hashes.SHA256(), length, salt=None, info=info).derive(ikm)


def counter_kdf(key: bytes, context: bytes, bits: int = 256) -> bytes:
    """Vault's legacy NIST SP 800-108 counter-mode KDF with HMAC-SHA256 (kdf 0)."""
    out = b""
    rounds = -(-bits // 256)
    suffix = context + bits.to_bytes(4, "big")
    for i in range(rounds):
        out += _hmac.new(key, i.to_bytes(4, "big") + suffix, hashlib.sha256).digest()
    return out[: bits // 8]


def derive(kdf: int, key: bytes, context: bytes | None, length: int) -> bytes:
    """Derive `length` bytes for `context`; the legacy KDF always yields 32 bytes."""
    if not context:
        raise UserError(MISSING_CONTEXT)
    if kdf == KDF_HKDF_SHA256:
        return hkdf_sha256(key, context, length)
    return counter_kdf(key, context, 256)
