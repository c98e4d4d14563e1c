"""Mount-level configuration: `config/keys` and `cache-config` (spec §4.21).

Both live in the mount's storage as JSON (Vault's entries: `config/keys` =
`{"disable_upsert": bool}`, `config/cache` = `{"size": int}`) and are mirrored on the backend
(`b.disable_upsert`, `b.cache_size`) so the encrypt hot path never reads storage. A write
updates the mirror only after the storage write succeeded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from transit.errors import StorageError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort

KEYS_CONFIG_PATH = "config/keys"
CACHE_CONFIG_PATH = "config/cache"
MIN_CACHE_SIZE = 10

KEYS_CONFIG_FIELDS: dict[str, Field] = {
    "disable_upsert": Field(
        FieldType.BOOL, False, "Refuse to create keys on encrypt when they do not exist"
    ),
}

CACHE_CONFIG_FIELDS: dict[str, Field] = {
    "size": Field(FieldType.INT, 0, "Size of the policy cache; 0 means unlimited"),
}


async def _read_json(storage: Any, key: str) -> dict[str, Any]:
    raw = await storage.get(key)
    if raw is None:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StorageError(f"error reading {key}: {exc}") from None
    return value if isinstance(value, dict) else {}


async def load(b: TransitPort) -> None:
    """Read the stored mount configuration into `b` (at mount setup and after invalidation)."""
    keys_cfg = await _read_json(b.storage, KEYS_CONFIG_PATH)
    cache_cfg = await _read_json(b.storage, CACHE_CONFIG_PATH)
    b.disable_upsert = bool(keys_cfg.get("disable_upsert", False))
    size = cache_cfg.get("size", 0)
    b.cache_size = size if isinstance(size, int) and not isinstance(size, bool) else 0


async def read_keys_config(b: TransitPort, req: Request, d: FieldData) -> Response:
    return Response(data={"disable_upsert": b.disable_upsert})


async def write_keys_config(b: TransitPort, req: Request, d: FieldData) -> Response:
    # Like Vault, an absent disable_upsert writes the default (false).
    value = bool(d.get("disable_upsert"))
    await b.storage.put(KEYS_CONFIG_PATH, orjson.dumps({"disable_upsert": value}))
    b.disable_upsert = value
    return Response(data={"disable_upsert": value})


async def read_cache_config(b: TransitPort, req: Request, d: FieldData) -> Response:
    return Response(data={"size": b.cache_size})


async def write_cache_config(b: TransitPort, req: Request, d: FieldData) -> Response:
    size = d.get("size")
    if size != 0 and size < MIN_CACHE_SIZE:
        raise UserError(f"size must be 0 or a value greater or equal to {MIN_CACHE_SIZE}")
    await b.storage.put(CACHE_CONFIG_PATH, orjson.dumps({"size": size}))
    b.cache_size = size  # stored and reported; the policy cache itself is unbounded
    return Response(data={"size": size})
