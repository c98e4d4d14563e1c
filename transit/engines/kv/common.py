"""Shared KV helpers: time fields, JSON storage, per-path locks.

(Go's text forms: `transit.gocompat`.)
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import orjson

from transit.errors import UserError
from transit.gocompat import format_time_ns, is_digits

_LOCK_STRIPES = 64


def now_ns() -> int:
    return time.time_ns()


def format_time(ns: int) -> str:
    """A KV time field: Go's RFC3339Nano in UTC; "" for 0 (unset)."""
    return format_time_ns(ns) if ns else ""


def uint32(value: int) -> int:
    """Go's uint32(int) conversion (Vault stores max_versions as uint32)."""
    return value & 0xFFFFFFFF


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(raw: bytes | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def path_hash(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()


def parse_int_list(value: Any, field: str) -> list[int]:
    """Vault's TypeCommaIntSlice: a list (or comma string) of ints."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    out: list[int] = []
    for i, item in enumerate(items):
        if isinstance(item, bool):
            out.append(int(item))
            continue
        if isinstance(item, int):
            out.append(item)
            continue
        if isinstance(item, float) and item == int(item):
            out.append(int(item))
            continue
        if isinstance(item, str) and is_digits(item.strip().lstrip("+-")):
            out.append(int(item.strip()))
            continue
        raise UserError(
            f'Field validation failed: error converting input for field "{field}": '
            f"'[{i}]' cannot parse value as 'int': strconv.ParseInt: invalid syntax"
        )
    return out


class PathLocks:
    """Striped asyncio locks serialising read-modify-write of one KV path."""

    def __init__(self) -> None:
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]

    def lock(self, path: str) -> asyncio.Lock:
        return self._locks[hash(path) % _LOCK_STRIPES]
