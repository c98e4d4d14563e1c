"""The KV secrets engine, v1 (unversioned) and v2 (versioned), as Vault serves them."""

from __future__ import annotations

from typing import Any

from transit.engines.framework import Engine
from transit.engines.kv.backend import PATCH, KVv2Backend
from transit.engines.kv.v1 import KVv1Backend

__all__ = ["PATCH", "KVv1Backend", "KVv2Backend", "kv_factory", "kv_version"]


def kv_version(options: dict[str, Any] | None) -> int:
    """2 when the mount options ask for it ("2"), else 1 (Vault's default for `kv`)."""
    return 2 if str((options or {}).get("version", "")).strip() == "2" else 1


def kv_factory(storage: Any, options: dict[str, Any]) -> Engine:
    """`factory(storage_view, options)` for the `kv` and `generic` mount types."""
    if kv_version(options) == 2:
        return KVv2Backend(storage, options)
    return KVv1Backend(storage, options)
