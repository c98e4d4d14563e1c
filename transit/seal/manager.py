"""`SealManager`: one node's seal: init, unseal progress, seal, and applying a rekey.

It reads and caches the seal configuration (re-read while sealed and every `CONFIG_TTL`
seconds while unsealed), collects unseal shares per node, and opens the barrier with the root
key unwrapped from storage (formats: transit/seal/stored.py). The operator flows around it
(`sys/rekey`, `sys/generate-root`) live in transit/rekey.py and transit/generate_root.py.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
import uuid
from typing import Any

from transit.barrier import KEY_SIZE, Barrier
from transit.crypto import shamir
from transit.errors import ConfigError, InvalidKey, StorageError, UserError
from transit.seal.stored import (
    KEYRING_CANARY_PATH,
    RECOVERY_CONFIG_PATH,
    RECOVERY_KEY_PATH,
    SEAL_CONFIG_PATH,
    SHAMIR_KEK_PATH,
    UNSEAL_KEYS_PATH,
    SealConfig,
    unwrap_root_key,
    validate,
    wrap_root_key,
)
from transit.storage.base import Backend, Write, version_of

log = logging.getLogger("transit.seal")

CONFIG_TTL = 1.0  # an unsealed node re-reads core/seal-config at most this often
MIN_KEY_SIZE = 16
MAX_SHARE_SIZE = KEY_SIZE + shamir.SHARE_OVERHEAD


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
            await self.physical.put(UNSEAL_KEYS_PATH, wrap_root_key(kek, root_key))
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
            await self.barrier.unseal(unwrap_root_key(kek, blob))
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
            await self.barrier.unseal(unwrap_root_key(self._static_key, blob))
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
        return unwrap_root_key(kek, blob), version_of(blob)

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
            return [Write(UNSEAL_KEYS_PATH, wrap_root_key(new_kek, new_root)),
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
