"""`backup/:name` and `restore[/:name]` (spec §4.18-4.19).

Vault returns these errors from the lock manager as plain errors, so almost all of them
are 500s (`InternalError`); hvac's own tests check for that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transit.crypto.policy import Policy
from transit.errors import InternalError, TransitError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort

BACKUP_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "Name of the key"),
}

RESTORE_FIELDS: dict[str, Field] = {
    "backup": Field(FieldType.STRING, "", "The output of the backup/ endpoint"),
    "name": Field(FieldType.STRING, "", "If set, the name of the restored key"),
    "force": Field(FieldType.BOOL, False, "Overwrite an existing key of that name"),
}


async def backup(b: TransitPort, req: Request, d: FieldData) -> Response:
    """Back up a key. Recording `backup_info` (as Vault does) is a write, so the backup is
    made from the policy as stored, never from this process's cache, which may be stale."""
    name = d.get("name")

    def record(current: Policy | None) -> tuple[Policy, str]:
        if current is None:
            raise InternalError(f'key "{name}" not found')
        return current, current.backup()

    _, blob = await b.policies.modify(name, record)
    return Response(data={"backup": blob})


async def restore(b: TransitPort, req: Request, d: FieldData) -> None:
    blob = d.get("backup")
    force = d.get("force")
    if not blob:
        raise UserError("'backup' must be supplied")
    # Like Vault, only the URL names the key: its optional capture always overrides a body
    # `name` (with "" when absent), so a body `name` is ignored.
    name = req.params.get("name", "")
    if "/" in name:
        raise InternalError("key names cannot be paths")
    try:
        p = Policy.restore(blob, name or None)
    except TransitError:
        raise
    except Exception as exc:  # a malformed backup is Vault's 500, never a traceback
        raise InternalError(str(exc)) from exc
    if "/" in p.name or not p.name:
        # the name inside the blob is the client's too: "import/wrapping-key" would replace
        # the mount's BYOK wrapping key
        raise InternalError("key names cannot be paths")

    def put(current: Policy | None) -> tuple[Policy, None]:
        if current is not None and not force:
            raise InternalError(f'key "{p.name}" already exists')
        return p, None

    await b.policies.modify(p.name, put, durable=True)
    return None
