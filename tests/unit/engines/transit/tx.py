"""Helpers for driving a TransitBackend in-process (no HTTP), without pytest-asyncio: a test
runs its scenario with `asyncio.run(go())`."""

from __future__ import annotations

from typing import Any

from transit.engines.transit.backend import TransitBackend
from transit.logical import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from transit.storage.base import StorageView
from transit.storage.inmem import InmemBackend

__all__ = ["CREATE", "DELETE", "LIST", "READ", "UPDATE", "Env", "CountingStorage"]


class CountingStorage:
    """A Backend wrapper that counts calls and can be told to fail writes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self.fail_puts = False
        self.fail_put_prefix = ""

    async def get(self, key: str) -> bytes | None:
        self.calls.append(("get", key))
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes) -> None:
        self.calls.append(("put", key))
        if self.fail_puts and key.startswith(self.fail_put_prefix):
            raise OSError("disk on fire")
        await self.inner.put(key, value)

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        await self.inner.delete(key)

    async def list(self, prefix: str) -> list[str]:
        self.calls.append(("list", prefix))
        return await self.inner.list(prefix)

    async def get_versioned(self, key: str) -> Any:
        self.calls.append(("get_versioned", key))
        return await self.inner.get_versioned(key)

    async def commit(self, writes: Any, expect: Any = None, *, durable: bool = False) -> None:
        for w in writes:
            self.calls.append(("put" if w.value is not None else "delete", w.key))
            if self.fail_puts and w.value is not None and w.key.startswith(self.fail_put_prefix):
                raise OSError("disk on fire")
        await self.inner.commit(writes, expect, durable=durable)


class Env:
    """One transit mount over in-memory storage; `call` goes through the route table."""

    def __init__(self, physical: Any = None) -> None:
        self.physical = physical if physical is not None else InmemBackend()
        self.counting = CountingStorage(self.physical)
        self.storage = StorageView(self.counting, "logical/x/")
        self.b = TransitBackend(self.storage)

    async def setup(self) -> Env:
        await self.b.setup()
        return self

    async def call(self, op: str, path: str, data: dict[str, Any] | None = None) -> Response | None:
        return await self.b.handle(Request(op, path, dict(data or {}), self.storage, "transit/"))

    async def write(self, path: str, data: dict[str, Any] | None = None) -> Response | None:
        return await self.call(UPDATE, path, data)

    async def read(self, path: str, data: dict[str, Any] | None = None) -> Response | None:
        return await self.call(READ, path, data)

    async def stored(self, prefix: str = "") -> list[str]:
        """Every key stored under the mount (recursively), sorted."""
        out: list[str] = []
        stack = [prefix]
        while stack:
            folder = stack.pop()
            for child in await self.physical.list("logical/x/" + folder):
                if child.endswith("/"):
                    stack.append(folder + child)
                else:
                    out.append(folder + child)
        return sorted(out)
