"""Placeholder until this path group lands; see docs/dev/contracts.md §5."""

from typing import Any

from transit.errors import UnsupportedPath

POLICY_FIELDS: dict[str, Any] = {}
LEGACY_POLICY_FIELDS: dict[str, Any] = {}
CAPABILITIES_FIELDS: dict[str, Any] = {}


async def list_policies(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def read_policy(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def write_policy(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def delete_policy(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def list_policies_legacy(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def read_policy_legacy(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def write_policy_legacy(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def capabilities_self(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def capabilities(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()


async def capabilities_accessor(b: Any, req: Any, d: Any) -> None:
    raise UnsupportedPath()
