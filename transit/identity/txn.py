"""The storage side of the identity store: key layout, loading, and transactions.

Layout (inside the store's StorageView, behind the barrier):

    entity/<id>                      the entity, its aliases inside it
    group/<id>                       the group, its one alias inside it
    index/entity-name/<h(name)>      entity id      (names are unique ignoring case)
    index/alias/<h(accessor, name)>  alias id       ((mount accessor, alias name) is unique)
    index/alias-id/<alias id>        entity id
    index/group-name/<h(name)>       group id
    index/group-alias/<h(acc, name)> group alias id
    index/group-alias-id/<alias id>  group id

Every change is one `transit.storage.update.update` over every key it reads or writes: the
index entries make uniqueness hold across worker processes and nodes (a racing writer
conflicts and re-runs on what the other wrote). A change that finds storage moved under
an assumption it made before the transaction raises `Retry` and is re-planned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from transit.errors import Conflict
from transit.identity.cache import IdentityCache
from transit.identity.model import Record, digest
from transit.storage.base import Write
from transit.storage.update import update

PLAN_ATTEMPTS = 16
Values = dict[str, Any]
Change = Callable[[Values], tuple[dict[str, Any], Any]]


class Retry(Exception):
    """Storage moved under the plan of a change: plan it again."""


def ekey(entity_id: str) -> str:
    return "entity/" + entity_id


def gkey(group_id: str) -> str:
    return "group/" + group_id


def entity_name_key(name: str) -> str:
    return "index/entity-name/" + digest(name.lower())


def alias_key(accessor: str, name: str) -> str:
    return "index/alias/" + digest(accessor, name)


def alias_id_key(alias_id: str) -> str:
    return "index/alias-id/" + digest(alias_id)


def group_name_key(name: str) -> str:
    return "index/group-name/" + digest(name.lower())


def group_alias_key(accessor: str, name: str) -> str:
    return "index/group-alias/" + digest(accessor, name)


def group_alias_id_key(alias_id: str) -> str:
    return "index/group-alias-id/" + digest(alias_id)


class IdentityStorage:
    """Loading the cache from storage, keeping it fresh, and transactions."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.cache = IdentityCache()
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._resets = 0  # bumped by a full invalidation: a load running meanwhile restarts
        self._pending: set[str] | None = None  # records changed while a load runs

    # -- the cache ---------------------------------------------------------------------------
    async def view(self) -> IdentityCache:
        """The loaded cache (loaded on first use: everything, once per process). Records
        that change while it loads are read again before it is used, so a steady stream of
        writes never keeps it from finishing."""
        if self._loaded:
            return self.cache
        async with self._load_lock:
            while not self._loaded:
                resets = self._resets
                self._pending = set()
                cache = IdentityCache()
                # above every generation (and record stamp) the previous cache handed out
                cache.generation = self.cache.generation + 1
                for eid in await self._ids("entity/"):
                    cache.set_entity(eid, await self._get(ekey(eid)))
                for gid in await self._ids("group/"):
                    cache.set_group(gid, await self._get(gkey(gid)))
                while self._pending and resets == self._resets:
                    changed, self._pending = self._pending, set()
                    for key in sorted(changed):
                        _apply(cache, key, await self._get(key))
                if resets != self._resets:
                    continue
                self.cache = cache
                self._loaded = True
                self._pending = None
        return self.cache

    async def invalidate(self, key: str | None = None) -> None:
        """`key` (relative to the store's storage) changed elsewhere; None: anything may have."""
        if key is None:
            self.unload()
            return
        if not key.startswith(("entity/", "group/")):
            return  # index entries are only read by writes, from storage
        if not self._loaded:
            if self._pending is not None:
                self._pending.add(key)
            return
        _apply(self.cache, key, await self._get(key))

    def unload(self) -> None:
        """Forget everything (seal, or the feed may have missed changes)."""
        self._resets += 1
        self._loaded = False
        generation = self.cache.generation
        self.cache = IdentityCache()
        # generations only grow: caches keyed by one (templated ACLs) never see a reused one
        self.cache.generation = generation + 1

    async def _ids(self, prefix: str) -> list[str]:
        return [k for k in await self.storage.list(prefix) if not k.endswith("/")]

    async def _get(self, key: str) -> Any:
        raw = await self.storage.get(key)
        return orjson.loads(raw) if raw is not None else None

    async def read(self, key: str) -> Any:
        """One stored value, from storage (never the cache): for planning a write."""
        return await self._get(key)

    # -- writes ------------------------------------------------------------------------------
    async def txn(self, keys: Sequence[str], change: Change) -> Any:
        """Run `change(values)` over the stored `keys` (decoded JSON, None when absent); it
        returns ({key: new value or None to delete}, result). Commits guarded on what was
        read, then applies entity and group records to the cache. Returns the result."""
        keys = list(dict.fromkeys(keys))

        def run(raw: dict[str, bytes | None]) -> tuple[list[Write], Any]:
            values = {k: (orjson.loads(v) if v is not None else None) for k, v in raw.items()}
            writes, result = change(values)
            out = [Write(k, None if v is None else orjson.dumps(v)) for k, v in writes.items()]
            return out, (writes, result)

        writes, result = await update(self.storage, keys, run)
        for key, value in writes.items():
            if not key.startswith(("entity/", "group/")):
                continue
            if self._loaded:
                _apply(self.cache, key, value)
            elif self._pending is not None:  # a load is running: it reads this one again
                self._pending.add(key)
        return result

    async def planned(self, plan: Callable[[], Awaitable[Any]]) -> Any:
        """Run `plan()` (which reads storage, then calls `txn`) again while it raises Retry."""
        for _ in range(PLAN_ATTEMPTS):
            try:
                return await plan()
            except Retry:
                await asyncio.sleep(0)
        raise Conflict("too many concurrent identity changes; nothing was changed, retry")


def _apply(cache: IdentityCache, key: str, value: Record | None) -> None:
    """Put one stored record (None: deleted) into `cache`."""
    if key.startswith("entity/"):
        cache.set_entity(key[len("entity/"):], value)
    elif key.startswith("group/"):
        cache.set_group(key[len("group/"):], value)


def aliases_of(entity: Record | None) -> list[Record]:
    return list((entity or {}).get("aliases") or [])
