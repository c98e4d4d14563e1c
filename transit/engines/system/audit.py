"""`sys/audit`, `sys/audit/:path` and `sys/audit-hash/:path` (spec ha-and-sys-api §4.11).

The routes need sudo (enforced by the ACL layer). Handlers reach the broker as `node.audit`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.system.ports import NodeControl

ENABLE_FIELDS: dict[str, Field] = {
    "path": Field(FieldType.STRING),
    "type": Field(FieldType.STRING, ""),
    "description": Field(FieldType.STRING, ""),
    "options": Field(FieldType.MAP, {}),
    "local": Field(FieldType.BOOL, False),
}

HASH_FIELDS: dict[str, Field] = {
    "path": Field(FieldType.STRING),
    "input": Field(FieldType.STRING, ""),
}


def kv_pairs(options: dict[str, Any]) -> dict[str, str]:
    """Vault's TypeKVPairs (a weak decode into map[string]string): scalars become strings,
    bools "1"/"0" like Go's mapstructure; anything nested is a validation error."""
    out: dict[str, str] = {}
    for key, value in options.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "1" if value else "0"
        elif isinstance(value, int):
            out[key] = str(value)
        elif isinstance(value, float):
            out[key] = str(int(value)) if value.is_integer() else repr(value)
        elif value is None:
            out[key] = ""
        else:
            raise UserError(
                f"Field validation failed: error converting input {options!r} for field "
                f'"options": \'{key}\' expected type \'string\', got unconvertible type '
                f"'{type(value).__name__}'"
            )
    return out


async def list_devices(node: NodeControl, req: Request, d: FieldData) -> Response:
    data = {e.path: e.describe() for e in node.audit.entries()}
    return Response(data=data, mirror_data=True)


async def enable_device(node: NodeControl, req: Request, d: FieldData) -> None:
    await node.audit.enable(
        d.get("path"), d.get("type") or "", kv_pairs(d.get("options") or {}),
        description=d.get("description") or "", local=d.get("local"),
    )
    return None


async def disable_device(node: NodeControl, req: Request, d: FieldData) -> None:
    await node.audit.disable(d.get("path"))
    return None


async def audit_hash(node: NodeControl, req: Request, d: FieldData) -> Response:
    value = d.get("input")
    if not value:
        raise UserError('the "input" parameter is empty')
    hashed = await node.audit.hash(d.get("path"), value)
    return Response(data={"hash": hashed}, mirror_data=True)
