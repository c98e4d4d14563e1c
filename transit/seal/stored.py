"""What a seal stores, and in which format: the storage paths, the seal configuration
(`SealConfig`, Vault's, with its validation), and the root key wrapped under the KEK.

Kept apart from `SealManager` (transit/seal/manager.py) so that the format of every value the
seal writes, in and outside the barrier, is read in one place.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transit.barrier import KEY_SIZE, NONCE_SIZE
from transit.errors import InvalidKey, StorageError

SEAL_CONFIG_PATH = "core/seal-config"
RECOVERY_CONFIG_PATH = "core/recovery-config"
UNSEAL_KEYS_PATH = "core/hsm/barrier-unseal-keys"
RECOVERY_KEY_PATH = "core/recovery-key"  # inside the barrier
SHAMIR_KEK_PATH = "core/shamir-kek"  # inside the barrier (written by a rekey, as Vault)
KEYRING_CANARY_PATH = "core/keyring-canary"  # inside the barrier: the last rekey's nonce
_BLOB_VERSION = b"\x02"


@dataclass(frozen=True, slots=True)
class SealConfig:
    """Vault's SealConfig as stored in `core/seal-config` (JSON, plaintext)."""

    type: str
    secret_shares: int
    secret_threshold: int
    stored_shares: int = 1
    pgp_keys: tuple[str, ...] = ()
    nonce: str = ""
    backup: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps({
            "type": self.type, "secret_shares": self.secret_shares,
            "secret_threshold": self.secret_threshold,
            "pgp_keys": list(self.pgp_keys) or None, "nonce": self.nonce,
            "backup": self.backup, "stored_shares": self.stored_shares,
        })

    @classmethod
    def from_json(cls, blob: bytes) -> SealConfig:
        try:
            raw = orjson.loads(blob)
            return cls(
                str(raw["type"]), int(raw["secret_shares"]), int(raw["secret_threshold"]),
                int(raw.get("stored_shares") or 1),
                tuple(str(k) for k in raw.get("pgp_keys") or ()),
                str(raw.get("nonce") or ""), bool(raw.get("backup", False)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"seal configuration is corrupt: {exc}") from None


def validate(shares: int, threshold: int) -> str | None:
    """Vault's SealConfig.Validate: the reason the pair is invalid, or None."""
    if shares < 1:
        return "shares must be at least one"
    if threshold < 1:
        return "threshold must be at least one"
    if shares > 1 and threshold == 1:
        return "threshold must be greater than one for multiple shares"
    if shares > 255:
        return "shares must be less than 256"
    if threshold > 255:
        return "threshold must be less than 256"
    if threshold > shares:
        return "threshold cannot be larger than shares"
    return None


def wrap_root_key(kek: bytes, root_key: bytes) -> bytes:
    """The stored root key: `0x02 ‖ nonce ‖ GCM(kek, ["<b64 root>"], aad=path)`."""
    nonce = os.urandom(NONCE_SIZE)
    payload = orjson.dumps([base64.b64encode(root_key).decode()])
    return _BLOB_VERSION + nonce + AESGCM(kek).encrypt(nonce, payload, UNSEAL_KEYS_PATH.encode())


def unwrap_root_key(kek: bytes, blob: bytes) -> bytes:
    """The root key from its stored blob; `InvalidKey` when `kek` does not open it."""
    if len(kek) != KEY_SIZE:
        raise InvalidKey()
    if blob[:1] != _BLOB_VERSION or len(blob) < 1 + NONCE_SIZE + 16:
        raise StorageError("stored unseal keys are corrupt")
    nonce, ct = blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :]
    try:
        keys = orjson.loads(AESGCM(kek).decrypt(nonce, ct, UNSEAL_KEYS_PATH.encode()))
    except InvalidTag:
        raise InvalidKey() from None
    return base64.b64decode(keys[0])
