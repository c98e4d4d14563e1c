"""The token store: service tokens kept in the barrier, keyed by a salted hash.

Storage layout (inside the view the core hands us, `sys/token/` of the barrier):

    salt                          32 random bytes: the HMAC-SHA256 key for every hash below
    id/<hash(token)>              TokenEntry JSON (no token id in it)
    accessor/<hash(accessor)>     {"accessor", "token_hash"}
    parent/<hash(parent)>/<hash(child)>   the revoke-tree index
    lease/<lease id>              the lease index (transit/tokens/leases.py)
    roles/<name>                  token roles

The token itself never reaches storage. `TokenStore` is built in layers, each on the one
before: its state, salt and cache (transit/tokens/cached.py), lookups (transit/tokens/
lookup.py), revocation (transit/tokens/revocation.py); this module adds what creates and
spends tokens: creation (with its indexes, in one commit), use counting and renewal. Expired
tokens are revoked when looked up and, on the active node, in the background
(transit/tokens/expiration.py), which `expiry` is told about every token this process writes.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from transit.errors import InternalError, PermissionDenied, UserError
from transit.storage.base import Write
from transit.storage.update import update
from transit.tokens import leases
from transit.tokens.entry import BATCH, SERVICE, TokenEntry
from transit.tokens.revocation import TokenRevocation

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
WRAPPING_POLICY = "response-wrapping"


def random_id(n: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_token(prefix: str = "hvs.") -> str:
    """`hvs.` + 24 random base62 characters (`hvb.` for batch tokens)."""
    return prefix + random_id()


class TokenStore(TokenRevocation):
    """The token store (see the module docstring); `TokenStore(storage)` then `setup()`."""

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
