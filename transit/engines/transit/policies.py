"""The per-mount key store: named `Policy` objects over the mount's storage, with a cache.

Storage layout (Vault's): `policy/<name>` holds the policy with its live versions,
`archive/<name>` every version ever created (spec §2, the archive rule).

The cache maps name → Policy and serves reads only: the hot path is one dict lookup. Every
change goes through `modify` (DESIGN §7, one writer per entry): under a per-key lock of this
process, it re-reads the policy and its archive from storage (the primary, never the cache),
hands a fresh private copy to the change, and commits policy and archive together, guarded on
the versions it read, so a writer in another worker process or node that changed the key in
between makes this commit fail (`Conflict`) and the change is re-run on what is stored now.
Key material (`durable=True`) is acknowledged by storage only once the replicas have it, and
only then does the cache point at the new policy: a failed change, write or replication
leaves the cache as it was.

Every per-key dict here is bounded (`cache_size` keys, default `POLICY_CACHE_SIZE`): on insert
of a new key, the oldest eighth of the insertions is dropped (FIFO: a hit records nothing, so
`get` stays one dict probe). That loses nothing: an evicted policy is read from storage again;
a forgotten parse costs a parse; a forgotten loaded version costs one replication check; a
per-key lock is dropped only while nobody holds or awaits it. Cached policies are never
mutated (changes work on `clone`s), so nothing depends on which copy a caller holds.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, TypeVar

from transit import metrics
from transit.crypto.ciphertext import max_version
from transit.crypto.policy import Policy
from transit.errors import ForwardToActive, StorageError
from transit.storage.base import Write
from transit.storage.update import update

POLICY_PREFIX = "policy/"
ARCHIVE_PREFIX = "archive/"
POLICY_CACHE_SIZE = 4096  # keys per mount held in memory (a parsed key: ~2 KiB + ~0.3 KiB/version)

_V = TypeVar("_V")
_HIT = ("vault.cache.hit", "transit_key")
_MISS = ("vault.cache.miss", "transit_key")


def _put(cache: dict[str, _V], name: str, value: _V, limit: int) -> None:
    """`cache[name] = value`, first evicting the oldest eighth when a new name finds it full
    (in batches: CPython dicts keep deleted slots at the front until they resize)."""
    if name not in cache and len(cache) >= limit:
        for old in list(islice(cache, max(1, limit // 8))):
            del cache[old]
    cache[name] = value


class _Action:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


KEEP = _Action("KEEP")  # `modify` change result: write nothing
DELETE = _Action("DELETE")  # `modify` change result: delete the policy and its archive


def clone(p: Policy) -> Policy:
    """A private, mutable copy of a (cached, shared) policy.

    Cheap: `Policy.__deepcopy__` copies the containers and shares the immutable KeyEntries.
    """
    return copy.deepcopy(p)


class PolicyStore:
    """One mount's policies (contract: docs/dev/contracts.md §3)."""

    __slots__ = ("_storage", "_cache", "_locks", "_epoch", "_loaded_versions", "_parsed",
                 "cache_size")

    def __init__(self, storage: Any, *, cache_size: int = POLICY_CACHE_SIZE) -> None:
        self._storage = storage
        self.cache_size = cache_size
        self._cache: dict[str, Policy] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Bumped by every save/delete/invalidate. A load that straddles a change must not
        # put what it read into the cache (it may be older than the change).
        self._epoch = 0
        # name -> highest latest_version this process has loaded or written: a load that
        # finds a newer one confirms replication first (see `_load`)
        self._loaded_versions: dict[str, int] = {}
        # name -> (policy bytes, archive bytes, the Policy they parse to): the last ones this
        # process read or wrote, so a change re-reading unchanged bytes skips the parse
        # (milliseconds for a key with hundreds of versions); the Policy is never mutated
        self._parsed: dict[str, tuple[bytes, bytes | None, Policy]] = {}

    async def get(self, name: str) -> Policy | None:
        p = self._cache.get(name)
        if p is not None:
            metrics.incr(_HIT)
            return p
        metrics.incr(_MISS)
        return await self._load(name)

    async def get_for(
        self, name: str, tagged: Iterable[Any] = (), *, forward: bool = False,
        version: int = 0,
    ) -> Policy | None:
        """The policy, fresh enough for `vault:vN:` values in `tagged` (ciphertexts,
        signatures, HMACs) and for an explicit key `version`. A version newer than the cached
        key is never an error at this point: reload from storage; if still unknown and
        `forward` (a performance standby whose replica lags), the request goes to the active
        node (DESIGN §5) — and so does one for a key not known here at all: the replica may
        not have it yet, and the active node answers "not found" if it truly is not."""
        p = await self.get(name)
        if p is None:
            if forward:
                raise ForwardToActive(f"key {name} is not known here")
            return None
        needed = max(max_version(tagged), version or 0)
        if needed <= p.latest_version:
            return p
        self.invalidate(name)
        p = await self.get(name)
        if p is not None and needed > p.latest_version and forward:
            raise ForwardToActive(f"key {name} version {needed} is not known here yet")
        return p

    async def _load(self, name: str) -> Policy | None:
        epoch = self._epoch
        raw = await self._storage.get(POLICY_PREFIX + name)
        if raw is None:
            return None
        archive = await self._storage.get(ARCHIVE_PREFIX + name)
        p = _parse(name, raw, archive)
        _put(self._parsed, name, (raw, archive, p), self.cache_size)
        known = self._loaded_versions.get(name, 0)
        if p.latest_version > known:
            # A version this process has not used yet (a sibling worker or another node
            # wrote it): use it only once the replicas have it, as its writer does (§7).
            confirm = getattr(self._storage, "confirm_replicated", None)
            if confirm is not None:
                await confirm()
            _put(self._loaded_versions, name, p.latest_version, self.cache_size)
        if epoch == self._epoch:
            _put(self._cache, name, p, self.cache_size)
        return p

    async def modify(
        self, name: str, change: Callable[[Policy | None], Any], *, durable: bool = False
    ) -> tuple[Policy | None, Any]:
        """Read-modify-write of one key against storage (see the module docstring).

        `change(current)` gets a private Policy freshly read from storage (None if there is
        no such key) and returns `(action, result)`: a Policy to store (usually `current`,
        changed), `KEEP` or `DELETE`. It may raise to abort (nothing written) and may be
        called more than once (when another writer got there first), so it must depend only
        on `current`. It may be a coroutine function. Returns (the stored policy or None,
        result)."""
        keys = [POLICY_PREFIX + name, ARCHIVE_PREFIX + name]

        async def attempt(values: dict[str, bytes | None]) -> tuple[list[Write], Any]:
            raw, archive = values[keys[0]], values[keys[1]]
            current = None
            if raw is not None:
                seen = self._parsed.get(name)
                if seen is not None and seen[0] == raw and seen[1] == archive:
                    current = clone(seen[2])
                else:
                    current = _parse(name, raw, archive)
                    _put(self._parsed, name, (raw, archive, clone(current)), self.cache_size)
            out = change(current)
            if inspect.isawaitable(out):
                out = await out
            action, result = out
            if action is KEEP:
                return [], (current, result)
            if action is DELETE:
                return [Write(keys[0], None), Write(keys[1], None)], (None, result)
            assert isinstance(action, Policy) and action.name == name
            # archive first: a file backend that crashes in between keeps the old policy
            data, archive_data = action.dumps(), action.dumps_archive()
            written[name] = (data, archive_data, action)
            return [Write(keys[1], archive_data), Write(keys[0], data)], (action, result)

        written: dict[str, tuple[bytes, bytes | None, Policy]] = {}

        async with self.lock(name):
            self._epoch += 1  # a concurrent load must not cache what this write changes
            try:
                stored, result = await update(self._storage, keys, attempt, durable=durable)
            finally:
                self._epoch += 1
            if name in written and written[name][2] is stored:
                _put(self._parsed, name, written[name], self.cache_size)
            if stored is None:
                self._cache.pop(name, None)
                self._parsed.pop(name, None)
                self._loaded_versions.pop(name, None)  # a new key of this name starts at v1
            else:
                if not durable and stored.latest_version > self._loaded_versions.get(name, 0):
                    confirm = getattr(self._storage, "confirm_replicated", None)
                    if confirm is not None:  # a version someone else wrote
                        await confirm()
                _put(self._cache, name, stored, self.cache_size)
                _put(self._loaded_versions, name, max(self._loaded_versions.get(name, 0),
                                                      stored.latest_version), self.cache_size)
            return stored, result

    async def list(self) -> list[str]:
        """Sorted names from storage; a name with "/" shows as its folder (e.g. "import/")."""
        return sorted(await self._storage.list(POLICY_PREFIX))

    def lock(self, name: str) -> asyncio.Lock:
        """The lock serialising this process's writes of one key (readers never take it);
        across processes the guarded commit of `modify` does the same."""
        lk = self._locks.get(name)
        if lk is None:
            if len(self._locks) >= self.cache_size:
                self._drop_idle_locks()
            lk = self._locks[name] = asyncio.Lock()
        return lk

    def _drop_idle_locks(self) -> None:
        """Forget up to an eighth of the locks, oldest first, that nobody holds or awaits
        (a lock that is held, or just handed to a waiter, stays). Were one dropped in use
        anyway, the guarded commit of `modify` would still serialise the writers."""
        want = max(1, self.cache_size // 8)
        idle = [k for k, lk in self._locks.items()
                if not lk.locked() and not getattr(lk, "_waiters", None)]
        for k in idle[:want]:
            del self._locks[k]

    def invalidate(self, name: str | None = None) -> None:
        """Drop one cached policy, or all of them (e.g. storage changed under us)."""
        self._epoch += 1
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    def cached(self, name: str) -> Policy | None:
        """The cached policy, without touching storage (for tests and diagnostics)."""
        return self._cache.get(name)


def _parse(name: str, raw: bytes, archive: bytes | None) -> Policy:
    try:
        return Policy.loads(raw, archive)
    except Exception as exc:  # corrupt or foreign data: a 500, not a traceback
        raise StorageError(f"error loading policy {name}: {exc}") from exc
