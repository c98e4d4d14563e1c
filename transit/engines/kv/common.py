"""Shared KV helpers: Go-style time rendering, JSON storage, per-path locks.

(Go-style durations: `transit.goparse.format_duration`.)
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from transit.errors import UserError

_LOCK_STRIPES = 64


def now_ns() -> int:
    return time.time_ns()


def format_time(ns: int) -> str:
    """Go's RFC3339Nano in UTC ("2026-01-02T03:04:05.123456789Z"); "" for 0."""
    if not ns:
        return ""
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def uint32(value: int) -> int:
    """Go's uint32(int) conversion (Vault stores max_versions as uint32)."""
    return value & 0xFFFFFFFF


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(raw: bytes | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def path_hash(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()


def multierror(messages: list[str]) -> str:
    """hashicorp/go-multierror's rendering."""
    head = "1 error occurred:" if len(messages) == 1 else f"{len(messages)} errors occurred:"
    return head + "".join(f"\n\t* {m}" for m in messages) + "\n\n"


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
        if isinstance(item, str) and item.strip().lstrip("+-").isdigit():
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
