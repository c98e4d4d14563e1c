"""The per-mount key store: named `Policy` objects over the mount's storage, with a cache.

Storage layout (Vault's): `policy/<name>` holds the policy with its live versions,
`archive/<name>` every version ever created (spec §2, the archive rule).

The cache maps name → Policy. Cached policies are treated as immutable: a mutation builds a
new Policy (`clone`), changes it, `save`s it, and only then does the cache point at it. So a
failed change or write leaves the cache as it was, and readers never need a lock: the hot path
is one dict lookup.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable
from typing import Any

from transit.crypto.policy import Policy
from transit.errors import ForwardToActive, StorageError

POLICY_PREFIX = "policy/"
ARCHIVE_PREFIX = "archive/"


def max_version(tagged: Iterable[Any]) -> int:
    """The highest N among `vault:vN:…` strings (anything else counts as 0)."""
    best = 0
    for value in tagged:
        if isinstance(value, str) and value.startswith("vault:v"):
            digits = value[7:value.find(":", 7)] if value.find(":", 7) > 0 else ""
            if digits.isdigit() and int(digits) > best:
                best = int(digits)
    return best


def clone(p: Policy) -> Policy:
    """A private, mutable copy of a (cached, shared) policy.

    Cheap: `Policy.__deepcopy__` copies the containers and shares the immutable KeyEntries.
    """
    return copy.deepcopy(p)


class PolicyStore:
    """One mount's policies (contract: docs/dev/contracts.md §3)."""

    __slots__ = ("_storage", "_cache", "_locks", "_epoch")

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self._cache: dict[str, Policy] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Bumped by every save/delete/invalidate. A load that straddles a change must not
        # put what it read into the cache (it may be older than the change).
        self._epoch = 0

    async def get(self, name: str) -> Policy | None:
        p = self._cache.get(name)
        if p is not None:
            return p
        return await self._load(name)

    async def get_for(
        self, name: str, tagged: Iterable[Any], *, forward: bool = False
    ) -> Policy | None:
        """The policy, fresh enough for `vault:vN:` values in `tagged` (ciphertexts,
        signatures, HMACs). A version newer than the cached key is never an error at this
        point: reload from storage; if still unknown and `forward` (a performance standby
        whose replica lags), the request goes to the active node (DESIGN §5)."""
        p = await self.get(name)
        if p is None:
            return None
        needed = max_version(tagged)
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
        try:
            p = Policy.loads(raw, archive)
        except Exception as exc:  # corrupt or foreign data: a 500, not a traceback
            raise StorageError(f"error loading policy {name}: {exc}") from exc
        if epoch == self._epoch:
            self._cache[name] = p
        return p

    async def save(self, policy: Policy) -> None:
        """Write archive then policy; the cache changes only once both writes succeeded."""
        name = policy.name
        archive = policy.dumps_archive()
        data = policy.dumps()
        self._epoch += 1
        # On failure the cache keeps the old policy, which still matches `policy/<name>`
        # (a new archive alone is harmless: the policy decides which versions are live).
        await self._storage.put(ARCHIVE_PREFIX + name, archive)
        await self._storage.put(POLICY_PREFIX + name, data)
        self._epoch += 1
        self._cache[name] = policy

    async def delete(self, name: str) -> None:
        """Remove the policy and its archive (no checks: the handler decides)."""
        self._epoch += 1
        try:
            await self._storage.delete(POLICY_PREFIX + name)
            await self._storage.delete(ARCHIVE_PREFIX + name)
        finally:
            self._cache.pop(name, None)
            self._epoch += 1

    async def list(self) -> list[str]:
        """Sorted names from storage; a name with "/" shows as its folder (e.g. "import/")."""
        return sorted(await self._storage.list(POLICY_PREFIX))

    def lock(self, name: str) -> asyncio.Lock:
        """The lock serialising read-modify-write of one key (readers never take it)."""
        lk = self._locks.get(name)
        if lk is None:
            lk = self._locks[name] = asyncio.Lock()
        return lk

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
