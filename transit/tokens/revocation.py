"""Token revocation: a token and its tree, lazy expiry, a mount's tokens, and `tidy`.

A revoke walks the revoke-tree index (`parent/<hash>/<child hash>`) depth first and destroys
leaves first, so an interrupted revoke leaves no orphans; each token's indexes and hooked data
(`revoke_hooks`: the wrapper's cubbyhole) go before its entry, which goes last together with
its lease index entry (transit/tokens/leases.py) in one commit. `tidy` revokes expired tokens
and repairs the accessor, parent and lease indexes.
"""

from __future__ import annotations

import logging

import orjson

from transit.storage.base import Write
from transit.storage.update import update
from transit.tokens import leases
from transit.tokens.entry import TokenEntry
from transit.tokens.lookup import TokenLookups

log = logging.getLogger("transit.tokens")


class TokenRevocation(TokenLookups):
    """Revoking tokens (with their descendants or orphaning them) and repairing the indexes."""

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
