"""Seals: how a node obtains the root key that opens the barrier (spec §4.3-4.5, §5.1).

**Shamir** (the default, no `seal` stanza). Init generates the root key and a separate
32-byte unseal key (KEK); the KEK is split into `secret_shares` shares (`transit.crypto.shamir`;
with one share the share *is* the KEK). The root key, encrypted under the KEK, is stored outside
the barrier at `core/hsm/barrier-unseal-keys`; the seal configuration is stored in plaintext at
`core/seal-config`. Unsealing is per node: shares arrive one by one (`progress`, with a nonce
that names the attempt); once `threshold` distinct shares are in, they are combined and must
open the stored root key, else `Unseal failed, invalid key` and the progress starts over.

**Static** (`seal "static" { current_key = "..." }`, OpenBao's syntax). A 32-byte key given to
the server plays the KEK's part and the node unseals itself at start (`auto_unseal`). Like
Vault's auto seals, init then takes `recovery_shares`/`recovery_threshold`: a separate
recovery key is split into shares (returned as the init "keys"; the core's route renames them)
and kept inside the barrier at `core/recovery-key`, its config in plaintext at
`core/recovery-config`. `current_key` is one of:

- `file:///path`: the file holds the 32 raw bytes, or their hex (64 chars) or base64 text;
- `env://NAME`: the environment variable holds the hex or base64 text;
- the hex or base64 text itself.

A store initialised under one seal type is not opened with the other (no seal migration).

**Rekey** (`sys/rekey`, `transit/rekey.py`) replaces the KEK and the root key (`rekey`): the
new root key, wrapped under the new KEK, the new seal configuration, the keyring re-encrypted
under the new root key and the KEK (inside the barrier, `core/shamir-kek`, as Vault) are one
guarded commit. Other processes notice on their own: a sealed node re-reads the seal
configuration and the wrapped root key for every unseal attempt, an unsealed one re-reads the
configuration at most every `CONFIG_TTL` seconds (`sys/seal-status`), and the barrier follows
the new root key through `core/master`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transit.barrier import KEY_SIZE, NONCE_SIZE, Barrier
from transit.config import SealStanza, seal_stanza
from transit.crypto import shamir
from transit.errors import ConfigError, InvalidKey, StorageError, UserError
from transit.storage.base import Backend, Write, version_of

log = logging.getLogger("transit.seal")

SEAL_CONFIG_PATH = "core/seal-config"
RECOVERY_CONFIG_PATH = "core/recovery-config"
UNSEAL_KEYS_PATH = "core/hsm/barrier-unseal-keys"
RECOVERY_KEY_PATH = "core/recovery-key"  # inside the barrier
SHAMIR_KEK_PATH = "core/shamir-kek"  # inside the barrier (written by a rekey, as Vault)
KEYRING_CANARY_PATH = "core/keyring-canary"  # inside the barrier: the last rekey's nonce
CONFIG_TTL = 1.0  # an unsealed node re-reads core/seal-config at most this often
MIN_KEY_SIZE = 16
MAX_SHARE_SIZE = KEY_SIZE + shamir.SHARE_OVERHEAD
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


def _wrap(kek: bytes, root_key: bytes) -> bytes:
    """The stored root key: `0x02 ‖ nonce ‖ GCM(kek, ["<b64 root>"], aad=path)`."""
    nonce = os.urandom(NONCE_SIZE)
    payload = orjson.dumps([base64.b64encode(root_key).decode()])
    return _BLOB_VERSION + nonce + AESGCM(kek).encrypt(nonce, payload, UNSEAL_KEYS_PATH.encode())


def _unwrap(kek: bytes, blob: bytes) -> bytes:
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


class SealManager:
    """Init, per-node unseal progress, and seal for one node."""

    def __init__(
        self, physical: Backend, barrier: Barrier, *, static_key: bytes | None = None
    ) -> None:
        if static_key is not None and len(static_key) != KEY_SIZE:
            raise ConfigError(f"static seal key must be {KEY_SIZE} bytes, got {len(static_key)}")
        self.physical = physical
        self.barrier = barrier
        self._static_key = static_key
        # Cached once found; re-read when sealed, and every CONFIG_TTL s (a rekey elsewhere).
        self._config: SealConfig | None = None
        self._config_read = 0.0
        self._refresh: asyncio.Future[SealConfig | None] | None = None  # background re-read
        self._reread = False  # forget_config(): the next config() reads before answering
        self._recovery: SealConfig | None = None
        self._parts: list[bytes] = []
        self._nonce = ""
        self._lock = asyncio.Lock()
        # In-progress operator attempts (`transit/rekey.py`: "rekey", "generate-root"): in
        # memory only, dropped on seal, as in Vault.
        self.attempts: dict[str, Any] = {}
        self.attempts_lock = asyncio.Lock()  # one operator step at a time in this process

    @property
    def auto(self) -> bool:
        """True for a static seal: the node unseals itself at start."""
        return self._static_key is not None

    @property
    def type(self) -> str:
        return "static" if self.auto else "shamir"

    # -- state ---------------------------------------------------------------------------

    def attempt(self, kind: str, term: int) -> Any:
        """The `kind` attempt in progress, unless it began in another term of activity (then
        it is dropped)."""
        attempt = self.attempts.get(kind)
        if attempt is not None and attempt.term != term:
            self.attempts.pop(kind, None)
            return None
        return attempt

    async def config(self) -> SealConfig | None:
        """The stored seal config once the store is initialised (keyring present too).

        Read from storage while sealed (a rekey may have changed it: the unseal threshold
        must be the current one). While unsealed, the cached one is answered at once and,
        when older than `CONFIG_TTL`, re-read in the background: `sys/health` and
        `sys/seal-status` must never wait on storage (a standby's replica may be paused or
        gone), and a storage error keeps the cached one (no flapping on a Redis blip)."""
        cached = self._config
        if cached is not None and not self.barrier.sealed and not self._reread:
            if time.monotonic() - self._config_read >= CONFIG_TTL and (
                    self._refresh is None or self._refresh.done()):
                self._config_read = time.monotonic()  # one refresh at a time
                self._refresh = asyncio.ensure_future(self._refresh_config(cached))
            return cached
        return await self._read_config(cached)

    async def _refresh_config(self, cached: SealConfig) -> SealConfig | None:
        try:
            return await self._read_config(cached)
        except Exception as exc:  # sealed meanwhile, or storage away: next time
            log.debug("seal configuration not re-read: %s", exc)
            return cached

    async def _read_config(self, cached: SealConfig | None) -> SealConfig | None:
        try:
            blob = await self.physical.get(SEAL_CONFIG_PATH)
            if blob is None or not await self.barrier.initialized():
                return cached if cached is not None and not self.barrier.sealed else None
            config = SealConfig.from_json(blob)
            if config.type == "static":
                rec = await self.physical.get(RECOVERY_CONFIG_PATH)
                self._recovery = SealConfig.from_json(rec) if rec is not None else None
        except StorageError:
            if cached is None or self.barrier.sealed:
                raise
            return cached
        self._config, self._config_read, self._reread = config, time.monotonic(), False
        return config

    def forget_config(self) -> None:
        """Re-read the seal configuration next time, before answering (another process of
        this node rekeyed: its primary has the new one)."""
        self._config_read = 0.0
        self._reread = True

    async def initialized(self) -> bool:
        return await self.config() is not None

    async def status(self) -> dict[str, Any]:
        """The seal-status fields this layer knows (no version, storage or cluster info)."""
        config = await self.config()
        if config is None:
            return {
                "type": self.type, "initialized": False, "sealed": True, "t": 0, "n": 0,
                "progress": 0, "nonce": "", "migration": False, "recovery_seal": self.auto,
            }
        static = config.type == "static"
        shown = self._recovery if static else config
        return {
            "type": config.type, "initialized": True, "sealed": self.barrier.sealed,
            "t": shown.secret_threshold if shown else 0,
            "n": shown.secret_shares if shown else 0,
            "progress": len(self._parts), "nonce": self._nonce,
            "migration": False, "recovery_seal": static,
        }

    # -- init ----------------------------------------------------------------------------

    async def initialize(self, shares: int, threshold: int) -> tuple[list[bytes], bytes]:
        """Initialise the store. Returns (key shares, root key) and leaves the barrier
        UNSEALED, so the core can create the root token; for a Shamir seal the core then
        calls `seal()`.

        Shamir: the shares split the KEK. Static: `shares`/`threshold` are the recovery
        shares/threshold and the shares split the recovery key.
        """
        what = "recovery" if self.auto else "seal"
        problem = validate(shares, threshold)
        if problem is not None:
            raise UserError(f"invalid {what} configuration: {problem}")
        async with self._lock:
            if await self.initialized() or await self.barrier.initialized():
                raise UserError("Vault is already initialized")
            root_key = os.urandom(KEY_SIZE)
            if self._static_key is not None:
                kek = self._static_key
                config = SealConfig("static", 1, 1)
            else:
                kek = os.urandom(KEY_SIZE)
                config = SealConfig("shamir", shares, threshold)
            # The keyring is written last: it is what makes the store count as initialised.
            await self.physical.put(SEAL_CONFIG_PATH, config.to_json())
            await self.physical.put(UNSEAL_KEYS_PATH, _wrap(kek, root_key))
            await self.barrier.initialize(root_key)
            await self.barrier.unseal(root_key)
            if self._static_key is not None:
                recovery_key = os.urandom(KEY_SIZE)
                recovery = SealConfig("shamir", shares, threshold)
                await self.physical.put(RECOVERY_CONFIG_PATH, recovery.to_json())
                await self.barrier.put(RECOVERY_KEY_PATH, recovery_key)
                out = shamir.split(recovery_key, shares, threshold)
                self._recovery = recovery
            else:
                out = shamir.split(kek, shares, threshold)
            self._config, self._config_read = config, time.monotonic()
            self._reset()
            return out, root_key

    # -- unseal / seal ---------------------------------------------------------------------

    async def unseal(self, key: bytes | None, reset: bool = False) -> bool:
        """Add one share. True iff this call unsealed the barrier.

        `reset` discards the progress (400 `vault is unsealed` when there is nothing to
        reset). An already-unsealed node ignores the key and returns False. A share seen
        before does not advance the progress.
        """
        if reset:
            if not self.barrier.sealed:
                raise UserError("vault is unsealed")
            self._reset()
            return False
        if not self.barrier.sealed:
            return False
        config = await self.config()
        if config is None:
            raise UserError("Vault is not initialized")
        if config.type == "static":
            raise UserError(
                "this node uses a static seal and unseals itself at start; restart it"
            )
        if not key:
            raise UserError("'key' must be specified in request body as JSON, or 'reset' set to true")
        if len(key) < MIN_KEY_SIZE:
            raise UserError(f"key is shorter than minimum {MIN_KEY_SIZE} bytes")
        if len(key) > MAX_SHARE_SIZE:
            raise UserError(f"key is longer than maximum {MAX_SHARE_SIZE} bytes")
        async with self._lock:
            if not self.barrier.sealed:
                return False
            if any(hmac.compare_digest(key, part) for part in self._parts):
                return False
            if not self._parts:
                self._nonce = str(uuid.uuid4())
            self._parts.append(bytes(key))
            if len(self._parts) < config.secret_threshold:
                return False
            parts = self._parts
            self._reset()  # success or failure, the next attempt starts from zero
            try:
                kek = parts[0] if config.secret_threshold == 1 else shamir.combine(parts)
            except ValueError:
                raise InvalidKey() from None
            blob = await self.physical.get(UNSEAL_KEYS_PATH)
            if blob is None:
                raise StorageError("stored unseal keys are missing")
            await self.barrier.unseal(_unwrap(kek, blob))
            return True

    async def auto_unseal(self) -> bool:
        """Static seal: unseal with the configured key. True iff this call unsealed.

        Not initialised yet, or initialised under a Shamir seal: stays sealed (logged).
        A key that does not open the store raises `InvalidKey`.
        """
        if self._static_key is None or not self.barrier.sealed:
            return False
        config = await self.config()
        if config is None:
            return False
        if config.type != "static":
            log.warning(
                "a static seal is configured but the storage was initialised with a %s seal;"
                " seal migration is not supported, unseal with key shares", config.type,
            )
            return False
        async with self._lock:
            if not self.barrier.sealed:
                return False
            blob = await self.physical.get(UNSEAL_KEYS_PATH)
            if blob is None:
                raise StorageError("stored unseal keys are missing")
            await self.barrier.unseal(_unwrap(self._static_key, blob))
            return True

    def seal(self) -> None:
        """Seal the barrier (drops the keys) and discard any unseal progress and any rekey or
        root generation in progress."""
        self.barrier.seal()
        self._reset()
        self.attempts.clear()

    # -- rekey ---------------------------------------------------------------------------

    async def share_config(self) -> SealConfig | None:
        """The configuration of the shares operators hold: the seal's (Shamir) or the
        recovery key's (static)."""
        config = await self.config()
        if config is None or config.type != "static":
            return config
        return self._recovery

    async def check_recovery_key(self, key: bytes) -> bool:
        """Static seal: whether `key` (combined from recovery shares) is the recovery key."""
        stored = await self.barrier.get(RECOVERY_KEY_PATH)
        return stored is not None and hmac.compare_digest(stored, key)

    async def open_root(self, kek: bytes) -> tuple[bytes, str]:
        """(root key, version of the stored blob) for an unseal key combined from shares;
        `InvalidKey` when it does not open `core/hsm/barrier-unseal-keys`."""
        blob = await self.physical.get(UNSEAL_KEYS_PATH)
        if blob is None:
            raise StorageError("stored unseal keys are missing")
        return _unwrap(kek, blob), version_of(blob)

    async def rekey(self, new_kek: bytes, config: SealConfig, *, expect: str) -> None:
        """Apply a rekey: a new root key wrapped under `new_kek`, the barrier rekeyed, `config`
        stored — one durable commit, only if the stored wrapped root key is still the one
        whose version (`expect`, from `open_root`) the current shares opened (else
        `UserError`, nothing written)."""
        if len(new_kek) != KEY_SIZE:
            raise UserError(f"unseal key must be {KEY_SIZE} bytes")
        new_root = os.urandom(KEY_SIZE)

        def extra(values: dict[str, bytes | None]) -> list[Write]:
            if version_of(values[UNSEAL_KEYS_PATH]) != expect:
                raise UserError("the unseal keys changed while this rekey was in progress; "
                                "cancel it and start again")
            return [Write(UNSEAL_KEYS_PATH, _wrap(new_kek, new_root)),
                    Write(SEAL_CONFIG_PATH, config.to_json())]

        async with self._lock:
            await self.barrier.rekey(
                new_root, guard=[UNSEAL_KEYS_PATH], extra=extra,
                inside={SHAMIR_KEK_PATH: new_kek, KEYRING_CANARY_PATH: config.nonce.encode()},
            )
            self._config, self._config_read = config, time.monotonic()
        log.info("security barrier rekeyed: shares=%d threshold=%d", config.secret_shares,
                 config.secret_threshold)

    def _reset(self) -> None:
        self._parts = []
        self._nonce = ""


# -- static seal key from the server configuration --------------------------------------------


def decode_key_text(text: str) -> bytes:
    """A 32-byte key from hex (64 chars) or standard/URL-safe base64 text."""
    text = text.strip()
    if len(text) == 2 * KEY_SIZE:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("static seal key: expected 32 bytes as hex or base64") from None
    if len(key) != KEY_SIZE:
        raise ConfigError(f"static seal key must be {KEY_SIZE} bytes, got {len(key)}")
    return key


def load_static_key(value: str, env: Mapping[str, str] | None = None) -> bytes:
    """Resolve a `current_key` value: `file://PATH`, `env://NAME`, or the key text."""
    env = os.environ if env is None else env
    if value.startswith("file://"):
        path = value[len("file://") :]
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ConfigError(f"static seal key file {path}: {exc.strerror or exc}") from None
        if len(data) == KEY_SIZE:
            return data
        try:
            return decode_key_text(data.decode("ascii"))
        except UnicodeDecodeError:
            raise ConfigError(
                f"static seal key file {path}: expected 32 raw bytes, or hex or base64 text"
            ) from None
    if value.startswith("env://"):
        name = value[len("env://") :]
        text = env.get(name)
        if not text:
            raise ConfigError(f"static seal key: environment variable {name} is not set")
        return decode_key_text(text)
    return decode_key_text(value)


def static_key(seal: SealStanza | None, env: Mapping[str, str] | None = None) -> bytes | None:
    """The static seal key of a config's `seal` stanza (`ServerConfig.seal`), or None for
    Shamir (no stanza, or `seal "shamir"`). Other seal types are a ConfigError."""
    if seal is None:
        return None
    kind, body = seal.type, seal.options
    if kind == "shamir":
        return None
    if kind != "static":
        raise ConfigError(f'unsupported seal type "{kind}" (only "static"; omit it for Shamir)')
    if body.get("previous_key"):
        raise ConfigError('seal "static": previous_key (seal key rotation) is not supported')
    value = body.get("current_key")
    if not isinstance(value, str) or not value:
        raise ConfigError('seal "static": current_key is required')
    return load_static_key(value, env)


def static_key_from_config(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> bytes | None:
    """The static seal key from a parsed config's raw dict (`ServerConfig.raw`), or None
    when there is no `seal` stanza (Shamir). Other seal types are a ConfigError."""
    return static_key(seal_stanza(raw), env)
