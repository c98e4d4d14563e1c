"""In-memory storage: a dict plus a sorted key index (dev server, tests).

get/put/delete on an existing key are O(1) dict operations; only creating or removing a key
touches the sorted index (a bisect + list insert), so `list(prefix)` is a bisect and a scan of
just the keys under that prefix instead of the whole store.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence

from transit.errors import Conflict
from transit.storage.base import Versioned, Write, version_of


class InmemBackend:
    """Volatile `Backend`. Not shared between processes; lost on exit."""

    __slots__ = ("_data", "_keys")

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._keys: list[str] = []  # sorted; same members as _data

    async def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    async def put(self, key: str, value: bytes) -> None:
        if type(value) is not bytes:  # bytearray/memoryview: take an immutable copy
            value = bytes(value)
        if key not in self._data:
            insort(self._keys, key)
        self._data[key] = value

    async def delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            keys = self._keys
            del keys[bisect_left(keys, key)]

    async def get_versioned(self, key: str) -> Versioned:
        value = self._data.get(key)
        return Versioned(value, version_of(value))

    async def commit(
        self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
        durable: bool = False,
    ) -> None:
        """Guarded writes (see `Backend`). Atomic: nothing here awaits between the checks
        and the writes. `durable` is a no-op (nothing to replicate; nothing is durable)."""
        for key, version in (expect or {}).items():
            if version_of(self._data.get(key)) != version:
                raise Conflict(f"{key!r} changed since it was read")
        for w in writes:
            if w.value is None:
                await self.delete(w.key)
            else:
                await self.put(w.key, w.value)

    async def list(self, prefix: str) -> list[str]:
        keys = self._keys
        n = len(prefix)
        out: list[str] = []
        last = None
        # Keys sharing a prefix are contiguous in sorted order, and so are the keys of one
        # sub-folder, so children come out sorted and duplicates are adjacent.
        for i in range(bisect_left(keys, prefix), len(keys)):
            key = keys[i]
            if not key.startswith(prefix):
                break
            slash = key.find("/", n)
            child = key[n:] if slash < 0 else key[n : slash + 1]
            if child != last:
                out.append(child)
                last = child
        return out

    def __len__(self) -> int:
        return len(self._data)
