"""Helpers for the unit tests of the transit tools/hmac/sign/export/backup/byok handlers.

Each test builds a fresh `TransitBackend` on in-memory storage and drives it through
`backend.handle(Request(...))`, inside one `asyncio.run(go(new_backend()))` per test.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from transit.engines.transit.backend import TransitBackend
from transit.errors import TransitError
from transit.logical import READ, UPDATE, Request, Response
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend


def new_backend() -> TransitBackend:
    return TransitBackend(StorageView(InmemBackend(), "logical/x/"))


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


async def call(
    b: TransitBackend, path: str, data: dict[str, Any] | None = None, op: str = UPDATE
) -> Response | None:
    return await b.handle(Request(op, path, dict(data or {}), b.storage, "transit/"))


async def write(b: TransitBackend, path: str, data: dict[str, Any] | None = None) -> Any:
    """An update that must succeed; returns `data` of the response (or None for 204)."""
    resp = await call(b, path, data)
    return None if resp is None else resp.data


async def read(b: TransitBackend, path: str, data: dict[str, Any] | None = None) -> Any:
    resp = await call(b, path, data, READ)
    return None if resp is None else resp.data


async def fails(
    b: TransitBackend, path: str, data: dict[str, Any] | None = None, op: str = UPDATE,
    exc: type[TransitError] = TransitError,
) -> TransitError:
    """An operation that must raise `exc`; returns the exception for message checks."""
    with pytest.raises(exc) as info:
        await call(b, path, data, op)
    return info.value


async def snapshot(b: TransitBackend) -> dict[str, bytes]:
    """Every stored key/value under the mount's view (to prove nothing was written)."""
    out: dict[str, bytes] = {}
    stack = [""]
    while stack:
        folder = stack.pop()
        for child in await b.storage.list(folder):
            if child.endswith("/"):
                stack.append(folder + child)
            else:
                value = await b.storage.get(folder + child)
                assert value is not None
                out[folder + child] = value
    return out
