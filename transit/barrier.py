"""The storage barrier: AES-256-GCM over every value the core stores (spec §5.1).

A `Barrier` is itself a `Backend`: engines get views over it and never see the physical store.

Value layout (Vault's AESGCMBarrier, version 2)::

    term (4 bytes, big-endian) ‖ 0x02 ‖ nonce (12 random bytes) ‖ AES-256-GCM(value) ‖ tag

with the storage path (UTF-8) as AAD, so a value moved to another path fails to decrypt.
Version 0x01 values (no AAD) are still read. Reads pick the key by the stored term.

Keys:

- the **root key** (32 bytes, from the seal) encrypts only `core/keyring`, always under the
  fixed term 1 (as Vault);
- the **keyring** holds one data key per term; the highest term encrypts new writes. Its JSON
  is Vault's `{"MasterKey", "Keys": [{"Term", "Version", "Value", "InstallTime",
  "Encryptions"}]}`.

Rotation (`rotate`) adds term N+1, rewrites `core/keyring` (under the root key), then writes,
as Vault does, `core/master` (the root key under the new term) and `core/upgrade/<N>` (the
new term's key under term N). Followers do not need that chain: every node that unsealed holds
the same root key, so a standby follows a rotation by re-reading `core/keyring`
(`reload_keyring`, called by the cluster layer on invalidation of `core/keyring`, and
automatically when a read meets a term this node does not know yet). The `core/upgrade/*`
and `core/master` records keep the storage layout Vault's.

Sealing drops every key from memory (the bytearrays are zeroed first; best effort in Python).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transit.errors import ForwardToActive, InvalidKey, Sealed, StorageError, UserError
from transit.storage.base import Backend

KEYRING_PATH = "core/keyring"
MASTER_PATH = "core/master"
UPGRADE_PREFIX = "core/upgrade/"
INITIAL_TERM = 1
KEY_SIZE = 32
NONCE_SIZE = 12
VERSION_1 = 0x01  # no AAD (read only)
VERSION_2 = 0x02  # AAD = path
_HEADER = struct.Struct(">IB")
_OVERHEAD = _HEADER.size + NONCE_SIZE + 16


def _now() -> str:
    """Go's RFC 3339 time as Vault's keyring JSON carries it (UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class _Key:
    term: int
    value: bytearray
    install_time: str
    encryptions: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "Term": self.term, "Version": 1,
            "Value": base64.b64encode(self.value).decode(),
            "InstallTime": self.install_time, "Encryptions": self.encryptions,
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> _Key:
        value = base64.b64decode(str(raw["Value"]))
        if len(value) != KEY_SIZE:
            raise ValueError(f"keyring term {raw['Term']}: key is {len(value)} bytes")
        return cls(
            int(raw["Term"]),  # type: ignore[call-overload]
            bytearray(value),
            str(raw.get("InstallTime", "")),
            int(raw.get("Encryptions", 0) or 0),  # type: ignore[call-overload]
        )


def _encrypt(aead: AESGCM, term: int, path: str, value: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return _HEADER.pack(term, VERSION_2) + nonce + aead.encrypt(nonce, value, path.encode())


def _open(aead: AESGCM, path: str, blob: bytes) -> bytes:
    """Decrypt a barrier value whose term the caller already resolved to `aead`."""
    version = blob[4]
    nonce = blob[5 : 5 + NONCE_SIZE]
    ct = blob[5 + NONCE_SIZE :]
    if version == VERSION_2:
        return aead.decrypt(nonce, ct, path.encode())
    if version == VERSION_1:
        return aead.decrypt(nonce, ct, None)
    raise StorageError(f"failed to decrypt {path}: version bytes mis-match")


class Barrier:
    """AES-256-GCM barrier over a physical `Backend`; implements `Backend` itself."""

    def __init__(self, physical: Backend) -> None:
        self.physical = physical
        self.sealed = True
        # A performance standby reads through the barrier but must not write: the first
        # write attempt raises ForwardToActive and the whole request goes to the active node.
        self.read_only = False
        self._root: bytearray | None = None
        self._keys: dict[int, _Key] = {}
        self._aeads: dict[int, AESGCM] = {}
        self._active = 0
        self._lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------

    async def initialized(self) -> bool:
        return await self.physical.get(KEYRING_PATH) is not None

    async def initialize(self, root_key: bytes) -> None:
        """Write a new keyring (term 1) under `root_key`. Leaves the barrier sealed."""
        if len(root_key) != KEY_SIZE:
            raise UserError(f"root key must be {KEY_SIZE} bytes")
        if await self.initialized():
            raise UserError("Vault is already initialized")
        first = _Key(INITIAL_TERM, bytearray(os.urandom(KEY_SIZE)), _now())
        await self._persist(bytes(root_key), {INITIAL_TERM: first}, INITIAL_TERM)

    async def unseal(self, root_key: bytes) -> None:
        """Open the keyring with `root_key`; `InvalidKey` if it does not open it."""
        if not self.sealed:
            return
        keys = await self._read_keyring(root_key)
        self._install(bytearray(root_key), keys)
        self.sealed = False

    def seal(self) -> None:
        self.sealed = True
        for key in self._keys.values():
            key.value[:] = bytes(len(key.value))
        if self._root is not None:
            self._root[:] = bytes(len(self._root))
        self._root = None
        self._keys = {}
        self._aeads = {}
        self._active = 0

    async def rotate(self) -> int:
        """Install a new term for new writes; returns it. Old terms stay readable."""
        if self.read_only:
            raise ForwardToActive("barrier key rotation on a performance standby")
        self._check()
        async with self._lock:
            assert self._root is not None
            prev = self._active
            term = prev + 1
            new = _Key(term, bytearray(os.urandom(KEY_SIZE)), _now())
            keys = {**self._keys, term: new}
            await self._persist(bytes(self._root), keys, term)
            self._keys = keys
            self._aeads[term] = AESGCM(bytes(new.value))
            self._active = term
            upgrade = UPGRADE_PREFIX + str(prev)
            blob = orjson.dumps(new.to_json())
            await self.physical.put(upgrade, _encrypt(self._aeads[prev], prev, upgrade, blob))
            return term

    async def reload_keyring(self) -> None:
        """Re-read `core/keyring` with the root key in memory (follow another node's rotate)."""
        self._check()
        async with self._lock:
            assert self._root is not None
            keys = await self._read_keyring(bytes(self._root))
            for term, key in keys.items():  # keep this node's counters for known terms
                if term in self._keys:
                    key.encryptions = max(key.encryptions, self._keys[term].encryptions)
            self._install(self._root, keys)

    def key_status(self) -> dict[str, object]:
        self._check()
        key = self._keys[self._active]
        return {
            "term": key.term, "install_time": key.install_time,
            "encryptions": key.encryptions,
        }

    # -- Backend protocol --------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        if self.sealed:
            raise Sealed()
        blob = await self.physical.get(key)
        if blob is None:
            return None
        if len(blob) < _OVERHEAD:
            raise StorageError(f"failed to decrypt {key}: invalid ciphertext length")
        term = int.from_bytes(blob[:4], "big")
        aead = self._aeads.get(term)
        if aead is None:
            await self.reload_keyring()
            aead = self._aeads.get(term)
            if aead is None:
                raise StorageError(f"no decryption key available for term {term}")
        try:
            return _open(aead, key, blob)
        except InvalidTag:
            raise StorageError(
                f"failed to decrypt {key}: cipher: message authentication failed"
            ) from None

    async def put(self, key: str, value: bytes) -> None:
        if self.sealed:
            raise Sealed()
        if self.read_only:
            raise ForwardToActive(f"write of {key} on a performance standby")
        term = self._active
        blob = _encrypt(self._aeads[term], term, key, bytes(value))
        self._keys[term].encryptions += 1
        await self.physical.put(key, blob)

    async def delete(self, key: str) -> None:
        if self.sealed:
            raise Sealed()
        if self.read_only:
            raise ForwardToActive(f"delete of {key} on a performance standby")
        await self.physical.delete(key)

    async def list(self, prefix: str) -> list[str]:
        if self.sealed:
            raise Sealed()
        return await self.physical.list(prefix)

    # -- internals ---------------------------------------------------------------------

    def _check(self) -> None:
        if self.sealed:
            raise Sealed()

    def _install(self, root: bytearray, keys: dict[int, _Key]) -> None:
        self._root = root
        self._keys = keys
        self._aeads = {t: AESGCM(bytes(k.value)) for t, k in keys.items()}
        self._active = max(keys)

    async def _read_keyring(self, root_key: bytes) -> dict[int, _Key]:
        blob = await self.physical.get(KEYRING_PATH)
        if blob is None:
            raise UserError("Vault is not initialized")
        if len(root_key) != KEY_SIZE or len(blob) < _OVERHEAD:
            raise InvalidKey()
        if int.from_bytes(blob[:4], "big") != INITIAL_TERM:
            raise StorageError("keyring is not encrypted under the initial term")
        try:
            raw = orjson.loads(_open(AESGCM(bytes(root_key)), KEYRING_PATH, blob))
        except InvalidTag:
            raise InvalidKey() from None
        try:
            keys = {k.term: k for k in map(_Key.from_json, raw["Keys"])}
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"keyring is corrupt: {exc}") from None
        if not keys:
            raise StorageError("keyring is corrupt: no keys")
        return keys

    async def _persist(self, root_key: bytes, keys: dict[int, _Key], active: int) -> None:
        """Write `core/keyring` (root key, term 1) then `core/master` (active term)."""
        doc = {
            "MasterKey": base64.b64encode(root_key).decode(),
            "Keys": [keys[t].to_json() for t in sorted(keys)],
            "RotationConfig": {"Disabled": False, "MaxOperations": 0, "Interval": 0},
        }
        ring = _encrypt(AESGCM(root_key), INITIAL_TERM, KEYRING_PATH, orjson.dumps(doc))
        await self.physical.put(KEYRING_PATH, ring)
        master = orjson.dumps({"Version": 1, "Key": base64.b64encode(root_key).decode()})
        active_aead = AESGCM(bytes(keys[active].value))
        await self.physical.put(MASTER_PATH, _encrypt(active_aead, active, MASTER_PATH, master))
