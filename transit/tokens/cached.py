"""The token store's state and its cache over storage: the salt, the bounded cache of entries.

Every token is stored at `id/<hash>`, the hash an HMAC-SHA256 of the token under the store's
salt (`salt_id`). `TokenCache` holds what every part of the store shares (storage, clock, salt,
TTL defaults, hooks) and keeps the in-memory copies coherent with storage: load an entry by
hash into the cache, drop one, invalidate all, and `save` a changed entry.

The cache is bounded (`cache_size` entries, oldest insertions evicted: transit/tokens/cache.py).
It is only a copy of storage: every change is a guarded read-modify-write of the stored entry
(`save`, `use`), after which the cache holds the entry as written, so an evicted and reloaded
copy never diverges from what a request holds. A revoke or invalidation bumps an epoch, so a
load racing with it does not cache what it read. The lookups (transit/tokens/lookup.py),
revocation (transit/tokens/revocation.py) and creation (transit/tokens/store.py) build on it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from transit import metrics
from transit.errors import InternalError, StorageError
from transit.storage.base import Write
from transit.storage.update import get_or_create, update
from transit.tokens.cache import TOKEN_CACHE_SIZE, make_room
from transit.tokens.entry import TokenEntry
from transit.tokens.roles import RoleStore
from transit.tokens.ttl import DEFAULT_LEASE_TTL, MAX_LEASE_TTL, RenewLimits

_MISS = ("vault.cache.miss", "token")

RevokeHook = Callable[[str], Awaitable[None]]


class ExpiryWatcher(Protocol):
    """What the token store tells the expiration manager (transit/tokens/expiration.py)."""

    def scheduled(self, token_hash: str, expire_time: float) -> None:
        """This process wrote the token with this expiry (0: never expires)."""

    def changed(self, token_hash: str | None) -> None:
        """Someone else changed the token (None: possibly every token): re-read storage."""

    def forget(self, token_hash: str) -> None:
        """The token is gone."""


class TokenCache:
    """The token store's shared state and its cache of entries (see the module docstring)."""

    def __init__(
        self, storage: Any, *, clock: Callable[[], float] = time.time,
        cache_size: int = TOKEN_CACHE_SIZE,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.roles = RoleStore(storage)
        self._salt: bytes | None = None
        # token -> entry and hash -> entry: the same objects; `_by_token` only holds entries
        # that `_by_hash` holds, so bounding `_by_hash` bounds both
        self._by_token: dict[str, TokenEntry] = {}
        self._by_hash: dict[str, TokenEntry] = {}
        self.cache_size = cache_size
        # the server config's default_lease_ttl / max_lease_ttl (seconds; 768h unless set):
        # a token created without a TTL gets the default, and none outlives the max
        self.default_lease_ttl = DEFAULT_LEASE_TTL
        self.max_lease_ttl = MAX_LEASE_TTL
        self.expiry: ExpiryWatcher | None = None  # set by the expiration manager
        self._epoch = 0  # bumped by every revoke/invalidate: a racing load must not cache
        # Called with the hash of every destroyed token (the wrapper drops its cubbyhole).
        self.revoke_hooks: list[RevokeHook] = []
        # Asked before a token made by an auth-method login is renewed (set by the core,
        # transit/login.py): the role's current limits (None: renew with the token's own), or
        # an error refusing the renewal (Vault's AuthRenew callbacks).
        self.login_renewer: Callable[[TokenEntry], Awaitable[RenewLimits | None]] | None = None

    async def setup(self, *, create: bool = True) -> None:
        """Load the salt, or create it on a fresh store; drops every cache.

        `create=False` (a standby: it never writes): a missing salt is a StorageError — the
        active node made it, and this node's replica has not received it yet."""
        if create:
            self._salt = await get_or_create(self.storage, "salt", lambda: os.urandom(32))
        else:
            salt = await self.storage.get("salt")
            if salt is None:
                raise StorageError("the token salt (sys/token/salt) has not reached this "
                                   "node's storage yet")
            self._salt = salt
        self.invalidate()

    def salt_id(self, value: str) -> str:
        if self._salt is None:
            raise InternalError("token store is not set up")
        return hmac.new(self._salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    async def _load_hash(self, token_hash: str, token: str = "") -> TokenEntry | None:
        metrics.incr(_MISS)
        for _ in range(3):
            epoch = self._epoch
            raw = await self.storage.get("id/" + token_hash)
            if raw is None:
                return None
            entry = TokenEntry.from_json(raw, id=token, hash=token_hash)
            if epoch == self._epoch:
                self._cache(entry)
                return entry
        return None  # storage keeps changing under us: treat as unknown this time

    def _cache(self, entry: TokenEntry) -> None:
        if entry.hash not in self._by_hash:
            for old in make_room(self._by_hash, self.cache_size):
                if old.id and self._by_token.get(old.id) is old:
                    del self._by_token[old.id]
        self._by_hash[entry.hash] = entry
        if entry.id:
            self._by_token[entry.id] = entry

    def _drop(self, token_hash: str) -> None:
        """Forget the cached copy of one token; a load in flight will not cache what it read."""
        self._epoch += 1
        entry = self._by_hash.pop(token_hash, None)
        if entry is not None and entry.id:
            self._by_token.pop(entry.id, None)

    def invalidate(self, token_hash: str | None = None) -> None:
        """Drop one cached token (by salted hash) or all of them; roles too when all.
        Someone else changed storage: the expiration manager re-reads it too."""
        if token_hash is None:
            self._epoch += 1
            self._by_token.clear()
            self._by_hash.clear()
            self.roles.invalidate()
        else:
            self._drop(token_hash)
        if self.expiry is not None:
            self.expiry.changed(token_hash)

    async def save(self, entry: TokenEntry) -> None:
        """Persist a changed entry (renewal, orphaning). A read-modify-write of the stored
        entry: never resurrects a revoked (deleted) one, and keeps the stored use count,
        which only `use` changes (a cached entry's count may be stale). Afterwards the cache
        holds `entry` (as written) — unless the token changed meanwhile, then nothing."""
        if entry.revoked:
            return
        key = "id/" + entry.hash

        def change(values: dict[str, bytes | None]) -> tuple[list[Write], bool]:
            raw = values[key]
            if raw is None:
                return [], False
            entry.num_uses = TokenEntry.from_json(raw).num_uses
            return [Write(key, entry.to_json())], True

        epoch = self._epoch
        if not await update(self.storage, [key], change):
            return
        unchanged = epoch == self._epoch and not entry.revoked
        self._drop(entry.hash)  # e.g. an evicted copy reloaded meanwhile, older than this
        if unchanged:
            self._cache(entry)
        if self.expiry is not None:
            self.expiry.scheduled(entry.hash, entry.expire_time)
