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

Rekey (`rekey`, after `sys/rekey` with the current unseal shares) replaces the root key: the
keyring is re-encrypted under the new root key and `core/master` rewritten, in one guarded
commit with the seal's own records; the terms do not change. Every other process that holds
the old root key in memory (sibling workers, standbys) follows it the way Vault's standbys do:
when `core/keyring` no longer opens with the root key it has, it reads the new one from
`core/master` (encrypted under a term key it knows, following `core/upgrade/<N>` to newer
terms) and opens the keyring with that.

Sealing drops every key from memory (the bytearrays are zeroed first; best effort in Python).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transit.errors import Conflict, ForwardToActive, InvalidKey, Sealed, StorageError, UserError
from transit.storage.base import ABSENT, Backend, Versioned, Write
from transit.storage.update import update

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
    def from_json(cls, raw: dict[str, Any]) -> _Key:  # decoded JSON
        value = base64.b64decode(str(raw["Value"]))
        if len(value) != KEY_SIZE:
            raise ValueError(f"keyring term {raw['Term']}: key is {len(value)} bytes")
        return cls(
            int(raw["Term"]),
            bytearray(value),
            str(raw.get("InstallTime", "")),
            int(raw.get("Encryptions", 0) or 0),
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
        try:
            await self._persist(bytes(root_key), {INITIAL_TERM: first}, INITIAL_TERM)
        except Conflict:  # another node initialised between the check and the write
            raise UserError("Vault is already initialized") from None

    async def unseal(self, root_key: bytes) -> None:
        """Open the keyring with `root_key`; `InvalidKey` if it does not open it."""
        if not self.sealed:
            return
        keys = await self._read_keyring(root_key)
        self._install(bytearray(root_key), keys)
        self.sealed = False

    def root_key_copy(self) -> bytes | None:
        """A copy of the root key while unsealed, None while sealed: the unseal hook of a node's
        sibling worker processes (transit/cluster/siblings.py hands it to a restarted worker
        over the supervisor's pipe). Never stored or logged."""
        return None if self.sealed or self._root is None else bytes(self._root)

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
        """Install a new term for new writes; returns it. Old terms stay readable.

        Read-modify-write of the *stored* keyring, committed only if nobody changed it in
        between (another worker or node rotating too): the new term is always the stored
        highest + 1, so two rotations can never both create term N+1. Durable (WAIT) before
        this node encrypts anything under the new term."""
        if self.read_only:
            raise ForwardToActive("barrier key rotation on a performance standby")
        self._check()
        async with self._lock:
            assert self._root is not None
            root = bytes(self._root)

            async def change(
                values: dict[str, bytes | None],
            ) -> tuple[list[Write], tuple[bytes, dict[int, _Key]]]:
                current, keys = await self._open_following(root, values[KEYRING_PATH])
                prev = max(keys)
                new = _Key(prev + 1, bytearray(os.urandom(KEY_SIZE)), _now())
                keys[new.term] = new
                upgrade = UPGRADE_PREFIX + str(prev)
                blob = orjson.dumps(new.to_json())
                writes = [
                    *self._keyring_writes(current, keys, new.term),
                    Write(upgrade, _encrypt(AESGCM(bytes(keys[prev].value)), prev, upgrade,
                                            blob)),
                ]
                return writes, (current, keys)

            current, keys = await update(self.physical, [KEYRING_PATH], change, durable=True)
            self._keep_counters(keys)
            self._install(self._root if current == root else bytearray(current), keys)
            return self._active

    async def rekey(
        self, new_root: bytes, *, guard: Sequence[str] = (),
        extra: Callable[[dict[str, bytes | None]], list[Write]] | None = None,
        inside: Mapping[str, bytes] | None = None,
    ) -> None:
        """Replace the root key (`sys/rekey`): `core/keyring` re-encrypted under `new_root`
        and `core/master` rewritten — terms unchanged — in one commit, durable, guarded on
        the stored keyring and on `guard` (physical paths). `extra(values)` (the stored
        values of `guard`; may raise to abort: nothing written) returns more physical writes
        for that commit (the seal's records); `inside` values are written in it too,
        through the barrier under the active term."""
        if self.read_only:
            raise ForwardToActive("barrier rekey on a performance standby")
        if len(new_root) != KEY_SIZE:
            raise UserError(f"root key must be {KEY_SIZE} bytes")
        self._check()
        async with self._lock:
            assert self._root is not None
            root = bytes(self._root)

            async def change(values: dict[str, bytes | None]) -> tuple[list[Write], dict[int, _Key]]:
                _, keys = await self._open_following(root, values[KEYRING_PATH])
                active = max(keys)
                writes = list(extra(values)) if extra is not None else []
                aead = AESGCM(bytes(keys[active].value))
                for path, value in (inside or {}).items():
                    writes.append(Write(path, _encrypt(aead, active, path, bytes(value))))
                return [*self._keyring_writes(new_root, keys, active), *writes], keys

            keys = await update(self.physical, [KEYRING_PATH, *guard], change, durable=True)
            self._keep_counters(keys)
            old = self._root
            self._install(bytearray(new_root), keys)
            old[:] = bytes(len(old))

    async def reload_keyring(self) -> None:
        """Re-read `core/keyring` with the root key in memory (follow another node's rotate),
        or with the root key `core/master` holds when it no longer opens (another process
        rekeyed)."""
        self._check()
        async with self._lock:
            assert self._root is not None
            root = bytes(self._root)
            current, keys = await self._open_following(
                root, await self.physical.get(KEYRING_PATH))
            self._keep_counters(keys)
            self._install(self._root if current == root else bytearray(current), keys)

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
        return await self._decrypt(key, blob)

    async def _decrypt(self, key: str, blob: bytes) -> bytes:
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

    async def confirm_replicated(self) -> None:
        confirm = getattr(self.physical, "confirm_replicated", None)
        if confirm is not None:
            await confirm()

    async def get_versioned(self, key: str) -> Versioned:
        """The decrypted stored value, with the version of its stored (encrypted) bytes."""
        if self.sealed:
            raise Sealed()
        stored = await self.physical.get_versioned(key)
        if stored.value is None:
            return stored
        return Versioned(await self._decrypt(key, stored.value), stored.version)

    async def commit(
        self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
        durable: bool = False, **claim: str,
    ) -> None:
        if self.sealed:
            raise Sealed()
        if self.read_only:
            raise ForwardToActive("write on a performance standby")
        term = self._active
        aead, key = self._aeads[term], self._keys[term]
        sealed = []
        for w in writes:
            if w.value is not None:
                key.encryptions += 1
                sealed.append(Write(w.key, _encrypt(aead, term, w.key, bytes(w.value))))
            else:
                sealed.append(w)
        await self.physical.commit(sealed, expect, durable=durable, **claim)

    def __getattr__(self, name: str) -> object:
        """`claim`/`release_claim`/`get_versioned_many` of the physical backend, when it has
        them."""
        if name in ("claim", "release_claim"):
            return getattr(self.physical, name)
        if name == "get_versioned_many":
            many = getattr(self.physical, name)

            async def opened(keys: Sequence[str]) -> list[Versioned]:
                if self.sealed:
                    raise Sealed()
                out = []
                for key, stored in zip(keys, await many(keys), strict=True):
                    value = None if stored.value is None else await self._decrypt(
                        key, stored.value)
                    out.append(Versioned(value, stored.version))
                return out

            return opened
        raise AttributeError(name)

    # -- internals ---------------------------------------------------------------------

    def _keep_counters(self, keys: dict[int, _Key]) -> None:
        """Keep this node's encryption counters for the terms it knows."""
        for term, key in keys.items():
            if term in self._keys:
                key.encryptions = max(key.encryptions, self._keys[term].encryptions)

    async def _open_following(
        self, root: bytes, blob: bytes | None, attempts: int = 3,
    ) -> tuple[bytes, dict[int, _Key]]:
        """(root key, keys) of the stored keyring `blob`: opened with `root`, or — when it no
        longer opens with it (a rekey elsewhere) — with the root key from `core/master`."""
        for _ in range(attempts):
            try:
                return root, self._open_keyring(root, blob)
            except InvalidKey:
                pass
            followed = await self._root_from_master()
            try:
                return followed, self._open_keyring(followed, blob)
            except InvalidKey:  # rekeyed again between the two reads: read both again
                root = followed
                blob = await self.physical.get(KEYRING_PATH)
        raise StorageError("the keyring does not open with the root key in core/master")

    async def _root_from_master(self) -> bytes:
        """The root key stored at `core/master`, decrypted with the term keys this node holds
        (following `core/upgrade/<N>` up to the term it was written under)."""
        blob = await self.physical.get(MASTER_PATH)
        if blob is None or len(blob) < _OVERHEAD:
            raise StorageError(f"{MASTER_PATH} is missing or corrupt")
        term = int.from_bytes(blob[:4], "big")
        aeads = dict(self._aeads)
        while term not in aeads:
            prev = max(aeads)
            if prev >= term:
                raise StorageError(f"no key for term {term} of {MASTER_PATH}")
            path = UPGRADE_PREFIX + str(prev)
            up = await self.physical.get(path)
            if up is None:
                raise StorageError(f"{path} is missing: cannot follow the keyring")
            try:
                key = _Key.from_json(orjson.loads(_open(aeads[prev], path, up)))
            except (InvalidTag, KeyError, TypeError, ValueError) as exc:
                raise StorageError(f"{path} is corrupt: {exc!r}") from None
            aeads[key.term] = AESGCM(bytes(key.value))
        try:
            raw = orjson.loads(_open(aeads[term], MASTER_PATH, blob))
            return base64.b64decode(raw["Key"])
        except (InvalidTag, KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"{MASTER_PATH} is corrupt: {exc!r}") from None

    def _check(self) -> None:
        if self.sealed:
            raise Sealed()

    def _install(self, root: bytearray, keys: dict[int, _Key]) -> None:
        self._root = root
        self._keys = keys
        self._aeads = {t: AESGCM(bytes(k.value)) for t, k in keys.items()}
        self._active = max(keys)

    async def _read_keyring(self, root_key: bytes) -> dict[int, _Key]:
        return self._open_keyring(root_key, await self.physical.get(KEYRING_PATH))

    @staticmethod
    def _open_keyring(root_key: bytes, blob: bytes | None) -> dict[int, _Key]:
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
        """Write `core/keyring` (root key, term 1) and `core/master` (active term) — at
        initialisation, only if no keyring exists yet (two nodes initialising at once)."""
        await self.physical.commit(
            self._keyring_writes(root_key, keys, active), {KEYRING_PATH: ABSENT}, durable=True
        )

    @staticmethod  # builtins.list: in this class `list` names a method (Barrier.list)
    def _keyring_writes(root_key: bytes, keys: dict[int, _Key],
                        active: int) -> builtins.list[Write]:
        """`core/keyring` (under the root key, term 1) and `core/master` (active term)."""
        doc = {
            "MasterKey": base64.b64encode(root_key).decode(),
            "Keys": [keys[t].to_json() for t in sorted(keys)],
            "RotationConfig": {"Disabled": False, "MaxOperations": 0, "Interval": 0},
        }
        ring = _encrypt(AESGCM(root_key), INITIAL_TERM, KEYRING_PATH, orjson.dumps(doc))
        master = orjson.dumps({"Version": 1, "Key": base64.b64encode(root_key).decode()})
        active_aead = AESGCM(bytes(keys[active].value))
        return [
            Write(KEYRING_PATH, ring),
            Write(MASTER_PATH, _encrypt(active_aead, active, MASTER_PATH, master)),
        ]
