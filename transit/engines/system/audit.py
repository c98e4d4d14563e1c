"""Placeholder until this path group lands; see docs/dev/contracts.md §5."""

from typing import Any

from transit.errors import UnsupportedPath

ENABLE_FIELDS: dict[str, Any] = {}
HASH_FIELDS: dict[str, Any] = {}


async def list_devices(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def enable_device(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def disable_device(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def audit_hash(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()
