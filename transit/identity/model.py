"""Entities, aliases and groups: their stored JSON and the shapes the API shows.

Records are plain dicts (decoded once from storage, never mutated in place once cached: a
change builds a copy). Times are RFC3339Nano strings, as Vault's API shows them.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
import time
import uuid
from typing import Any

from transit.gocompat import format_time_ns

INTERNAL = "internal"
EXTERNAL = "external"
NAMESPACE = "root"

Record = dict[str, Any]


def now() -> str:
    return format_time_ns(time.time_ns())


def new_id() -> str:
    return str(uuid.uuid4())


def default_name(kind: str) -> str:
    """`entity_<8 hex>` / `group_<8 hex>`, Vault's generated names."""
    return f"{kind}_{secrets.token_hex(4)}"


def digest(*parts: str) -> str:
    """A storage-safe key for an index entry over arbitrary names (any byte may be in a name)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def clone(record: Record) -> Record:
    return copy.deepcopy(record)


def new_entity(entity_id: str, name: str) -> Record:
    t = now()
    return {"id": entity_id, "name": name, "metadata": None, "policies": [], "disabled": False,
            "creation_time": t, "last_update_time": t, "merged_entity_ids": None, "aliases": []}


def new_alias(alias_id: str, entity_id: str, accessor: str, name: str) -> Record:
    t = now()
    return {"id": alias_id, "canonical_id": entity_id, "mount_accessor": accessor, "name": name,
            "metadata": None, "custom_metadata": None, "creation_time": t, "last_update_time": t,
            "local": False, "merged_from_canonical_ids": None}


def new_group(group_id: str, name: str, group_type: str) -> Record:
    t = now()
    return {"id": group_id, "name": name, "type": group_type, "policies": [], "metadata": None,
            "member_entity_ids": [], "member_group_ids": [], "creation_time": t,
            "last_update_time": t, "modify_index": 0, "alias": None}
