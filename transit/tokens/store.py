"""The token store: service tokens kept in the barrier, keyed by a salted hash.

Storage layout (inside the view the core hands us, `sys/token/` of the barrier):

    salt                          32 random bytes: the HMAC-SHA256 key for every hash below
    id/<hash(token)>              TokenEntry JSON (no token id in it)
    accessor/<hash(accessor)>     {"accessor", "token_hash"}
    parent/<hash(parent)>/<hash(child)>   the revoke-tree index
    lease/<lease id>              the lease index (transit/tokens/leases.py)
    roles/<name>                  token roles

The token itself never reaches storage. The hot path (`lookup`) is one dict hit on the token
string plus an expiry comparison; a miss computes the HMAC and reads `id/<hash>` once. Python
dicts hash strings with a keyed SipHash, so the dict probe leaks nothing useful about stored
tokens; hashes are compared with `hmac.compare_digest` where they are compared at all.

The cache is bounded (`cache_size` entries, oldest insertions evicted: transit/tokens/cache.py).
It is only a copy of storage: every change is a guarded read-modify-write of the stored entry
(`save`, `use`), after which the cache holds the entry as written, so an evicted and reloaded
copy never diverges from what a request holds. Expired tokens are revoked when looked up and,
on the active node, in the background (transit/tokens/expiration.py), which `expiry` is told
about every token this process writes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from transit import metrics
from transit.errors import InternalError, PermissionDenied, StorageError, UserError
from transit.storage.base import Write
from transit.storage.update import get_or_create, update
from transit.tokens import leases
from transit.tokens.cache import TOKEN_CACHE_SIZE, make_room
from transit.tokens.entry import BATCH, SERVICE, TokenEntry
from transit.tokens.roles import RoleStore
from transit.tokens.ttl import DEFAULT_LEASE_TTL, MAX_LEASE_TTL, RenewLimits

log = logging.getLogger("transit.tokens")

_HIT = ("vault.cache.hit", "token")
_MISS = ("vault.cache.miss", "token")
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
WRAPPING_POLICY = "response-wrapping"

RevokeHook = Callable[[str], Awaitable[None]]


class ExpiryWatcher(Protocol):
    """What the token store tells the expiration manager (transit/tokens/expiration.py)."""

    def scheduled(self, token_hash: str, expire_time: float) -> None:
        """This process wrote the token with this expiry (0: never expires)."""

    def changed(self, token_hash: str | None) -> None:
        """Someone else changed the token (None: possibly every token): re-read storage."""

    def forget(self, token_hash: str) -> None:
        """The token is gone."""


def random_id(n: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_token(prefix: str = "hvs.") -> str:
    """`hvs.` + 24 random base62 characters (`hvb.` for batch tokens)."""
    return prefix + random_id()


class TokenStore:
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

    # --- lookups -----------------------------------------------------------------

    async def lookup(self, token: str) -> TokenEntry | None:
        """The live entry for a token string, or None (unknown, revoked, expired, used up)."""
        entry = self._by_token.get(token)
        if entry is None:
            if not token:
                return None
            entry = await self._load(token)
            if entry is None:
                return None
        else:
            metrics.incr(_HIT)
        exp = entry.expire_time
        if exp and exp <= self.clock():
            await self._expire(entry)
            return None
        if entry.revoked or entry.num_uses < 0:
            return None
        return entry

    async def lookup_hash(self, token_hash: str) -> TokenEntry | None:
        """The live entry by salted hash (its `id` is "" unless the token was seen)."""
        entry = self._by_hash.get(token_hash)
        if entry is None:
            entry = await self._load_hash(token_hash)
            if entry is None:
                return None
        else:
            metrics.incr(_HIT)
        return await self._live(entry)

    async def lookup_accessor(self, accessor: str) -> TokenEntry | None:
        if not accessor:
            return None
        raw = await self.storage.get("accessor/" + self.salt_id(accessor))
        if raw is None:
            return None
        return await self.lookup_hash(orjson.loads(raw)["token_hash"])

    async def list_accessors(self) -> list[str]:
        out = []
        for key in await self.storage.list("accessor/"):
            raw = await self.storage.get("accessor/" + key)
            if raw is not None:
                out.append(orjson.loads(raw)["accessor"])
        return sorted(out)

    async def _live(self, entry: TokenEntry) -> TokenEntry | None:
        if entry.revoked or entry.num_uses < 0:
            return None
        exp = entry.expire_time
        if exp and exp <= self.clock():
            await self._expire(entry)
            return None
        return entry

    async def _load(self, token: str) -> TokenEntry | None:
        token_hash = self.salt_id(token)
        cached = self._by_hash.get(token_hash)
        if cached is not None:  # known by hash (accessor lookup) but not by token yet
            metrics.incr(_HIT)
            if cached.id and not hmac.compare_digest(cached.id, token):
                return None
            cached.id = token
            self._by_token[token] = cached
            return cached
        entry = await self._load_hash(token_hash, token)
        return entry

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

    # --- creation ----------------------------------------------------------------

    async def create(
        self,
        parent: TokenEntry | None,
        *,
        policies: list[str],
        meta: dict[str, str] | None = None,
        display_name: str = "token",
        num_uses: int = 0,
        ttl: int = 0,
        explicit_max_ttl: int = 0,
        period: int = 0,
        renewable: bool = True,
        orphan: bool = False,
        role: str = "",
        path: str = "auth/token/create",
        type: str = SERVICE,
        id: str = "",
        entity_id: str = "",
        bound_cidrs: list[str] | None = None,
        internal_data: dict[str, Any] | None = None,
    ) -> TokenEntry:
        """Store a new token. `ttl` is final (the caller did the TTL arithmetic)."""
        now = self.clock()
        if id:
            if id.startswith("hvs."):
                raise UserError("custom token ID cannot have the 'hvs.' prefix")
            if id.startswith("s."):
                raise UserError("custom token ID cannot have the 's.' prefix")
            if "." in id:
                raise UserError("custom token ID cannot have a '.' in the value")
        else:
            id = new_token("hvb." if type == BATCH else "hvs.")
        token_hash = self.salt_id(id)
        if await self.storage.get("id/" + token_hash) is not None:
            raise UserError("cannot create a token with a duplicate ID")
        entry = TokenEntry(
            id=id, hash=token_hash, accessor="" if type == BATCH else random_id(),
            policies=list(policies),
            parent="" if (orphan or parent is None) else parent.hash,
            display_name=display_name, meta=meta, num_uses=num_uses,
            creation_time=int(now), issue_time=now, ttl=ttl, creation_ttl=ttl,
            explicit_max_ttl=explicit_max_ttl, period=period,
            expire_time=now + ttl if ttl else 0.0, renewable=renewable and ttl > 0,
            role=role, path=path, type=type, entity_id=entity_id,
            bound_cidrs=list(bound_cidrs or []), internal_data=internal_data or None,
        )
        await self._write_new(entry)
        return entry

    async def create_root(self, token_id: str = "") -> TokenEntry:
        """A root token (init, dev mode, generate-root); dev mode may pass the id."""
        now = self.clock()
        token = token_id or new_token()
        entry = TokenEntry(
            id=token, hash=self.salt_id(token), accessor=random_id(), policies=["root"],
            display_name="root", creation_time=int(now), issue_time=now,
            renewable=False, path="auth/token/root",
        )
        await self._write_new(entry)
        return entry

    async def _write_new(self, entry: TokenEntry) -> None:
        """The entry and its indexes in one atomic commit: the lease index (transit/tokens/
        leases.py) never names a token that is not stored, nor misses one that is."""
        writes = [Write("id/" + entry.hash, entry.to_json())]
        if entry.accessor:
            index = orjson.dumps({"accessor": entry.accessor, "token_hash": entry.hash})
            writes.append(Write("accessor/" + self.salt_id(entry.accessor), index))
        if entry.parent:
            writes.append(Write(f"parent/{entry.parent}/{entry.hash}", b"1"))
        if entry.has_lease:
            writes.append(Write(leases.index_key(entry), leases.INDEX_VALUE))
        await self.storage.commit(writes)
        self._cache(entry)
        if self.expiry is not None:
            self.expiry.scheduled(entry.hash, entry.expire_time)

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

    # --- use, renew --------------------------------------------------------------

    async def use(self, entry: TokenEntry) -> None:
        """Count one use of a limited-use token; the last use revokes it.

        Wrapping tokens are exempt: `sys/wrapping/unwrap` consumes them itself. A token
        already used up (a concurrent request took the last use) raises PermissionDenied.
        """
        if entry.num_uses == 0 or entry.policies == [WRAPPING_POLICY]:
            return
        if entry.num_uses < 0:  # a concurrent request took the last use
            raise PermissionDenied()
        if entry.revoked:  # e.g. revoke-self by this very request: nothing left to count
            return
        # Count the use on the stored entry, guarded, so that uses through every worker and
        # node add up: of N concurrent last uses, exactly one succeeds.
        key = "id/" + entry.hash

        def change(values: dict[str, bytes | None]) -> tuple[list[Write], int]:
            raw = values[key]
            stored = TokenEntry.from_json(raw) if raw is not None else None
            if stored is None or stored.num_uses < 0:
                raise PermissionDenied()  # revoked, or another request took the last use
            if stored.num_uses == 0:
                return [], 0  # not limited (any more): nothing to count
            stored.num_uses -= 1
            if stored.num_uses == 0:
                stored.num_uses = -1  # used up: lookups fail from now on, revoke follows
            return [Write(key, stored.to_json())], stored.num_uses

        try:
            left = await update(self.storage, [key], change)
        except PermissionDenied:
            entry.num_uses = -1
            raise
        entry.num_uses = left
        if left < 0:
            await self.revoke(entry)
        elif self._by_hash.get(entry.hash) is not entry:
            self._drop(entry.hash)  # a reloaded copy (after an eviction) has the old count

    async def renew(self, entry: TokenEntry, increment: int = 0) -> list[str]:
        """Extend a token's lease (Vault's RenewToken); returns warnings. `entry.ttl` is the new TTL."""
        from transit.tokens.ttl import calculate_ttl

        if entry.type == BATCH:
            raise UserError("batch tokens cannot be renewed")
        now = self.clock()
        if not entry.expire_time:
            raise UserError("invalid lease ID")
        if entry.expire_time <= now:
            raise UserError("lease expired")
        if not entry.renewable:
            raise UserError("lease is not renewable")
        period, explicit_max = entry.period, entry.explicit_max_ttl
        backend_ttl, backend_max = entry.ttl, 0
        default_ttl, max_ttl = self.default_lease_ttl, self.max_lease_ttl
        limits = None
        if self.login_renewer is not None and not entry.role:
            limits = await self.login_renewer(entry)
        if limits is not None:
            period, backend_ttl, backend_max = limits.period, limits.ttl, limits.max_ttl
            default_ttl, max_ttl = limits.default_ttl, limits.max_lease_ttl
        if entry.role:
            role = await self.roles.get(entry.role)
            if role is None:
                raise InternalError(
                    f'original token role "{entry.role}" could not be found, not renewing'
                )
            period, explicit_max = role.period, role.explicit_max_ttl
        ttl, warnings = calculate_ttl(
            increment=increment, backend_ttl=backend_ttl, period=period,
            explicit_max_ttl=explicit_max, start=entry.issue_time or entry.creation_time, now=now,
            backend_max_ttl=backend_max, default_ttl=default_ttl, max_ttl=max_ttl,
        )
        if entry.parent and not period:  # a child never outlives its parent (whose revoke
            parent = await self.lookup_hash(entry.parent)  # would take it down anyway)
            if parent is not None and parent.expire_time:
                ttl = max(1, min(ttl, int(parent.expire_time - now)))
        entry.ttl = ttl
        entry.expire_time = now + ttl
        entry.last_renewal = now
        await self.save(entry)
        return warnings

    # --- revocation --------------------------------------------------------------

    async def revoke(self, entry: TokenEntry) -> None:
        """Revoke a token and, depth first, every descendant."""
        order: list[str] = []
        stack = [entry.hash]
        seen: set[str] = set()
        while stack:
            h = stack.pop()
            if h in seen:
                continue
            seen.add(h)
            order.append(h)
            for child in await self.storage.list(f"parent/{h}/"):
                stack.append(child.rstrip("/"))
        entry.revoked = True
        for h in reversed(order):  # leaves first: an interrupted revoke leaves no orphans
            await self._destroy(h, entry if h == entry.hash else None)

    async def revoke_orphan(self, entry: TokenEntry) -> None:
        """Revoke one token; its children become orphans."""
        for child_hash in await self.storage.list(f"parent/{entry.hash}/"):
            child_hash = child_hash.rstrip("/")
            child = self._by_hash.get(child_hash) or await self._load_hash(child_hash)
            if child is not None:
                child.parent = ""
                await self.save(child)
            await self.storage.delete(f"parent/{entry.hash}/{child_hash}")
        entry.revoked = True
        await self._destroy(entry.hash, entry)

    async def revoke_hash(self, token_hash: str) -> bool:
        """Revoke the stored token with this salted hash and its descendants (a lease
        revocation); False when no such token is stored."""
        raw = await self.storage.get("id/" + token_hash)
        if raw is None:
            return False
        await self.revoke(self._by_hash.get(token_hash) or TokenEntry.from_json(raw, hash=token_hash))
        return True

    async def expire_now(self, token_hash: str) -> bool:
        """End a token's lease now and leave its revocation to the expiration manager (Vault's
        LazyRevoke: `sys/leases/revoke` with `sync=false`). Lookups fail from this write on.
        A guarded write of the stored entry, which it also marks used up (`num_uses = -1`,
        revocation pending) as the manager does: `save` keeps the stored count, so a renewal
        racing with this cannot bring the token back. False when no such token is stored."""
        key = "id/" + token_hash
        now = self.clock()

        def change(values: dict[str, bytes | None]) -> tuple[list[Write], bool]:
            raw = values[key]
            if raw is None:
                return [], False
            stored = TokenEntry.from_json(raw)
            if stored.num_uses < 0 and stored.expire_time and stored.expire_time <= now:
                return [], True  # already over and marked: its revocation is due anyway
            if not stored.expire_time or stored.expire_time > now:
                stored.expire_time = now
            stored.num_uses = -1
            return [Write(key, stored.to_json())], True

        found = bool(await update(self.storage, [key], change))
        cached = self._by_hash.get(token_hash)
        if found and cached is not None:  # a copy a request holds fails its next check too
            cached.num_uses = -1
            if not 0 < cached.expire_time <= now:
                cached.expire_time = now
        self._drop(token_hash)
        if found and self.expiry is not None:
            self.expiry.scheduled(token_hash, now)
        return found

    async def _destroy(self, token_hash: str, entry: TokenEntry | None) -> None:
        """Delete one token: its indexes and hooked data first, the entry itself last, so an
        interrupted revoke leaves a (still expired or marked) entry to be revoked again."""
        if entry is None:
            entry = self._by_hash.get(token_hash)
            if entry is None:
                raw = await self.storage.get("id/" + token_hash)
                entry = TokenEntry.from_json(raw, hash=token_hash) if raw is not None else None
        self._drop(token_hash)
        if entry is not None:
            entry.revoked = True
            if entry.id:
                self._by_token.pop(entry.id, None)
            if entry.accessor:
                await self.storage.delete("accessor/" + self.salt_id(entry.accessor))
            if entry.parent:
                await self.storage.delete(f"parent/{entry.parent}/{token_hash}")
        for hook in self.revoke_hooks:
            try:
                await hook(token_hash)
            except Exception:
                log.exception("revoke hook failed")
        last = [Write("id/" + token_hash, None)]  # with its lease index, atomically
        if entry is not None and entry.has_lease:
            last.append(Write(leases.index_key(entry), None))
        await self.storage.commit(last)
        self._drop(token_hash)  # a lookup may have reloaded it while we deleted the rest
        if self.expiry is not None:
            self.expiry.forget(token_hash)

    async def revoke_path_prefix(self, prefix: str) -> int:
        """Revoke every token whose creation path starts with `prefix` (an auth mount being
        disabled: `auth/userpass/`), with its descendants: the tokens the lease index lists
        under it (batch tokens have no lease and are not stored). Returns how many."""
        where = leases.folder(prefix)
        if where is None:
            return 0
        revoked = 0
        for lease in await leases.collect(self, where):
            h = leases.token_hash(lease)
            if h is not None and await self.revoke_hash(h):
                revoked += 1
        return revoked

    async def _expire(self, entry: TokenEntry) -> None:
        """An expired token found on lookup: revoke it (and its tree), best effort."""
        try:
            await self.revoke(entry)
        except Exception:  # e.g. a read-only standby: the active node's tidy will do it
            log.warning("could not revoke expired token %s", entry.accessor, exc_info=True)
            entry.revoked = True
            self.invalidate(entry.hash)

    async def tidy(self) -> int:
        """Revoke expired tokens and repair the indexes (drop accessor, parent and lease
        entries whose token is gone; give a leased token its missing lease entry); returns
        tokens revoked."""
        now = self.clock()
        revoked = 0
        for h in await self.storage.list("id/"):
            raw = await self.storage.get("id/" + h)
            if raw is None:
                continue
            entry = self._by_hash.get(h) or TokenEntry.from_json(raw, hash=h)
            if entry.expire_time and entry.expire_time <= now:
                await self.revoke(entry)
                revoked += 1
            elif entry.has_lease:
                await leases.ensure_indexed(self, h)
        for lease in await leases.collect(self, ""):
            h = leases.token_hash(lease)
            if h is None or await self.storage.get("id/" + h) is None:
                await leases.drop_dangling(self, lease)
        for key in await self.storage.list("accessor/"):
            raw = await self.storage.get("accessor/" + key)
            if raw is not None and await self.storage.get(
                "id/" + orjson.loads(raw)["token_hash"]
            ) is None:
                await self.storage.delete("accessor/" + key)
        for parent in await self.storage.list("parent/"):
            for child in await self.storage.list("parent/" + parent):
                if await self.storage.get("id/" + child) is None:
                    await self.storage.delete(f"parent/{parent}{child}")
        return revoked
