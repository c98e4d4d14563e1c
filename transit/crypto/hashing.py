"""Hash algorithms by Vault name: `/hash`, `/hmac` and the signing digests."""

from __future__ import annotations

import hashlib
import hmac as _hmac

from cryptography.hazmat.primitives import hashes

from transit.errors import UserError

# Vault's HashTypeMap names -> hashlib names ("none" is handled by callers).
_HASHLIB = {
    "sha1": "sha1",
    "sha2-224": "sha224",
    "sha2-256": "sha256",
    "sha2-384": "sha384",
    "sha2-512": "sha512",
    "sha3-224": "sha3_224",
    "sha3-256": "sha3_256",
    "sha3-384": "sha3_384",
    "sha3-512": "sha3_512",
}
_CRYPTOGRAPHY: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha2-224": hashes.SHA224,
    "sha2-256": hashes.SHA256,
    "sha2-384": hashes.SHA384,
    "sha2-512": hashes.SHA512,
    "sha3-224": hashes.SHA3_224,
    "sha3-256": hashes.SHA3_256,
    "sha3-384": hashes.SHA3_384,
    "sha3-512": hashes.SHA3_512,
}
HASH_ENDPOINT_ALGORITHMS = frozenset(_HASHLIB) - {"sha1"}
HMAC_ALGORITHMS = frozenset(_HASHLIB)
SIGN_HASH_ALGORITHMS = frozenset(_HASHLIB) | {"none"}


def hash_data(data: bytes, algorithm: str) -> bytes:
    """The `/hash` endpoint digest (sha2-*, sha3-*)."""
    if algorithm not in HASH_ENDPOINT_ALGORITHMS:
        raise UserError(f"unsupported algorithm {algorithm}")
    return hashlib.new(_HASHLIB[algorithm], data).digest()


def digest(data: bytes, algorithm: str) -> bytes:
    """Digest with any sign/hmac algorithm name (caller validated it)."""
    return hashlib.new(_HASHLIB[algorithm], data).digest()


def hmac_digest(key: bytes, data: bytes, algorithm: str) -> bytes:
    return _hmac.new(key, data, _HASHLIB[algorithm]).digest()


def crypto_hash(algorithm: str) -> hashes.HashAlgorithm:
    """A `cryptography` hash object for a Vault algorithm name."""
    return _CRYPTOGRAPHY[algorithm]()
