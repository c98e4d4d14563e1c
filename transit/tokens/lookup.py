"""Token lookups: by token string (the hot path), salted hash and accessor.

The hot path (`lookup`, on every request) is one dict hit on the token string plus an expiry
comparison; a miss computes the HMAC and reads `id/<hash>` once. Python dicts hash strings with
a keyed SipHash, so the dict probe leaks nothing useful about stored tokens; hashes are
compared with `hmac.compare_digest` where they are compared at all. An expired token found
here is revoked (`_expire`, transit/tokens/revocation.py). Keep this path free of extra calls,
awaits and attribute chains: it is the cost every request pays.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

import orjson

from transit import metrics
from transit.tokens.cached import TokenCache
from transit.tokens.entry import TokenEntry

_HIT = ("vault.cache.hit", "token")


class TokenLookups(TokenCache):
    """The live entry of a token, found by its string, salted hash or accessor."""

    if TYPE_CHECKING:
        async def _expire(self, entry: TokenEntry) -> None:
            """Revoke an expired entry found on lookup (`TokenRevocation._expire`)."""

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
