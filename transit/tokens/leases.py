"""Token leases: Vault's lease view of the service tokens (`sys/leases/*`), and its index.

Vault keeps a lease for every service token created through a request (token creation,
logins, response wrapping; `TokenEntry.has_lease`). Its ID is the token's creation path
joined with the salted token ID: `auth/approle/login/h<hex HMAC-SHA256>`. Here the token
entry already holds everything the lease holds (issue, expiry and last-renewal times,
renewable), so a lease is not stored twice; what is stored is an **index** of lease IDs,
so that listing a prefix and revoking one (`auth/approle/` = every token of that mount)
read only the leases under it, never every token:

    lease/<lease id>        b"1" (the key is the data), e.g. lease/auth/approle/login/h3f…

in the token store's storage (behind the barrier, beside `id/<hash>`). The token's hash is
the last segment of its lease ID, so an index entry leads to its token without a lookup.

One writer per entry: an index entry is written only in the same atomic commit that first
writes its token (`TokenStore._write_new`) and deleted only in the same commit that deletes
the token (`TokenStore._destroy`), so the two never disagree; the backfill for tokens stored
before the index existed (and `tidy`) adds or removes one with a commit guarded on the
versions of both keys. Renewals and use counts rewrite only `id/<hash>`. Nothing caches the
index (`transit/cluster/invalidate.py` ignores it): a performance standby lists its
replica, and every write is forwarded to the active node.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, Protocol

from transit.storage.base import Write
from transit.storage.update import update
from transit.tokens.entry import TokenEntry, rfc3339

INDEX = "lease/"
INDEX_VALUE = b"1"
# Stored once every token written before the index existed has its entry (the expiration
# manager's first scan on the active node writes it; `tidy` repairs either way anyway).
INDEXED_MARKER = "lease-index"
_SALTED = re.compile(r"h([0-9a-f]{64})", re.ASCII)


class TokenLookup(Protocol):
    """What the index needs of the token store (`TokenStore` satisfies it; this module sits
    below `transit/tokens/store.py` and `revocation.py`, which write and delete the index
    entries in their own commits)."""

    storage: Any  # the token store's StorageView (the storage Backend protocol)

    async def lookup_hash(self, token_hash: str) -> TokenEntry | None:
        """The live entry by salted hash, or None."""
        ...


def lease_id(entry: TokenEntry) -> str:
    """`path.Join(te.Path, saltedID)` as Vault computes it (Go's path.Clean), without a
    leading "/" or ".." (a storage key has neither; token paths never need them)."""
    joined = posixpath.normpath(posixpath.join(entry.path, "h" + entry.hash) if entry.path
                                else "h" + entry.hash)
    parts = [p for p in joined.split("/") if p not in ("", ".", "..")]
    return "/".join(parts)


def index_key(entry: TokenEntry) -> str:
    return INDEX + lease_id(entry)


def token_hash(lease: str) -> str | None:
    """The salted token hash a lease ID ends with, or None when it is not a token lease."""
    m = _SALTED.fullmatch(lease.rpartition("/")[2])
    return m.group(1) if m else None


def folder(prefix: str) -> str | None:
    """A LIST or revoke prefix as an index folder ("auth/approle" -> "auth/approle/"), or
    None when no lease ID can start with it (an empty, "." or ".." segment: such a key
    could not be stored, and must not reach a storage backend that maps keys to files)."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if prefix and any(p in ("", ".", "..") for p in prefix[:-1].split("/")):
        return None
    return prefix


async def find(store: TokenLookup, lease: str) -> TokenEntry | None:
    """The live token whose lease this is (None: unknown, revoked, expired, not a lease)."""
    h = token_hash(lease)
    if h is None:
        return None
    entry = await store.lookup_hash(h)
    if entry is None or not entry.has_lease or lease_id(entry) != lease:
        return None
    return entry


async def list_folder(store: TokenLookup, prefix: str) -> list[str]:
    """One level of lease IDs under `prefix` (Vault's `LIST sys/leases/lookup/<prefix>`)."""
    where = folder(prefix)
    if where is None:
        return []
    return await store.storage.list(INDEX + where)


async def collect(store: TokenLookup, prefix: str) -> list[str]:
    """Every lease ID under `prefix` (a folder, "" = all), depth first: Vault's
    `logical.CollectKeys` over its lease view. Reads only the index under the prefix."""
    out: list[str] = []
    stack = [prefix]
    while stack:
        where = stack.pop()
        children = await store.storage.list(INDEX + where)
        for child in reversed(children):  # popped in listing order
            if child.endswith("/"):
                stack.append(where + child)
        out.extend(where + c for c in children if not c.endswith("/"))
    return out


def lookup_data(entry: TokenEntry, lease: str, now: float) -> dict[str, object]:
    """`sys/leases/lookup`'s data for a token lease (Vault's handleLeaseLookup)."""
    data: dict[str, object] = {
        "id": lease,
        "issue_time": rfc3339(entry.issue_time or float(entry.creation_time)),
        "expire_time": None,
        "last_renewal": None,
        "ttl": 0,
        "renewable": entry.lease_renewable(now),
    }
    if entry.last_renewal:
        data["last_renewal"] = rfc3339(entry.last_renewal)
    if entry.expire_time:
        data["expire_time"] = rfc3339(entry.expire_time)
        data["ttl"] = entry.lease_ttl(now)
    return data


async def ensure_indexed(store: TokenLookup, token_hash: str) -> bool:
    """Give a stored token that should have a lease its index entry (a token written before
    the index existed). Guarded on both keys: a token revoked meanwhile gets none. True if
    an entry was written."""
    raw = await store.storage.get("id/" + token_hash)
    if raw is None:
        return False
    entry = TokenEntry.from_json(raw, hash=token_hash)
    if not entry.has_lease:
        return False
    key, idx = "id/" + token_hash, index_key(entry)
    if await store.storage.get(idx) is not None:
        return False

    def change(values: dict[str, bytes | None]) -> tuple[list[Write], bool]:
        if values[key] is None or values[idx] is not None:
            return [], False
        return [Write(idx, INDEX_VALUE)], True

    return bool(await update(store.storage, [key, idx], change))


async def drop_dangling(store: TokenLookup, lease: str) -> bool:
    """Delete an index entry whose token is gone (guarded: never one a token has again)."""
    h = token_hash(lease)
    idx = INDEX + lease
    if h is None:  # not a key this server writes: nothing leads to it
        await store.storage.delete(idx)
        return True
    key = "id/" + h

    def change(values: dict[str, bytes | None]) -> tuple[list[Write], bool]:
        if values[key] is not None or values[idx] is None:
            return [], False
        return [Write(idx, None)], True

    return bool(await update(store.storage, [key, idx], change))
