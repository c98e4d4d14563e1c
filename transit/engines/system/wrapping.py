"""Placeholder until this path group lands; see docs/dev/contracts.md §5."""

from typing import Any

from transit.errors import UnsupportedPath

TOKEN_FIELDS: dict[str, Any] = {}


async def wrap(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def unwrap(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def lookup(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def rewrap(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()
