"""Placeholder until this path group lands; see docs/dev/contracts.md §5."""

from typing import Any

from transit.errors import UnsupportedPath

UI_MOUNT_FIELDS: dict[str, Any] = {}


async def list_ui_mounts(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def read_ui_mount(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()
