"""Placeholder until this path group lands; see docs/dev/contracts.md §5."""

from typing import Any

from transit.errors import UnsupportedPath



async def seal(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def rotate(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def key_status(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()
