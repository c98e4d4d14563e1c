"""The storage contract every backend implements, and a prefix-scoped view of one."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    """Async key/value storage with Vault's list semantics.

    Keys are `/`-separated paths without a leading slash. `list(prefix)` returns the
    immediate children under `prefix` (which is "" or ends with "/"): leaf names as-is,
    sub-folders with a trailing "/", sorted, without duplicates. A missing key reads as None;
    deleting a missing key is not an error.
    """

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str) -> list[str]: ...


class StorageView:
    """A backend seen through a fixed key prefix (a mount's own corner of storage)."""

    __slots__ = ("_backend", "prefix")

    def __init__(self, backend: Backend, prefix: str) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self._backend = backend
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        return await self._backend.get(self.prefix + key)

    async def put(self, key: str, value: bytes) -> None:
        await self._backend.put(self.prefix + key, value)

    async def delete(self, key: str) -> None:
        await self._backend.delete(self.prefix + key)

    async def list(self, prefix: str) -> list[str]:
        return await self._backend.list(self.prefix + prefix)

    async def clear(self) -> None:
        """Delete every key under this view (used when a mount is removed)."""
        stack = [""]
        while stack:
            folder = stack.pop()
            for child in await self.list(folder):
                if child.endswith("/"):
                    stack.append(folder + child)
                else:
                    await self.delete(folder + child)
