"""`sys/mounts` and `sys/mounts/<path>` (spec ha-and-sys-api §4.8, transit-api §1.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transit.engines.fields import Field, FieldData, FieldType
from transit.engines.framework import Request, Response
from transit.errors import UnsupportedPath, UserError

if TYPE_CHECKING:
    from transit.engines.system.backend import SystemBackend

MOUNT_FIELDS = {
    "path": Field(FieldType.STRING),
    "type": Field(FieldType.STRING),
    "description": Field(FieldType.STRING, ""),
    "config": Field(FieldType.MAP, {}),
    "options": Field(FieldType.MAP),
    "local": Field(FieldType.BOOL, False),
    "seal_wrap": Field(FieldType.BOOL, False),
    "external_entropy_access": Field(FieldType.BOOL, False),
    "plugin_name": Field(FieldType.STRING, ""),
    "plugin_version": Field(FieldType.STRING, ""),
}

SYS_ENTRY = {
    "accessor": "system_00000000", "config": {"default_lease_ttl": 0, "max_lease_ttl": 0,
                                              "force_no_cache": False},
    "description": "system endpoints used for control, policy and debugging",
    "external_entropy_access": False, "local": False, "options": None, "plugin_version": "",
    "running_plugin_sha256": "", "running_plugin_version": "", "seal_wrap": True,
    "type": "system", "uuid": "00000000-0000-0000-0000-000000000000",
}


async def list_mounts(b: SystemBackend, req: Request, d: FieldData) -> Response:
    data: dict[str, Any] = {e.path: e.describe() for e in b.mounts.entries()}
    data["sys/"] = SYS_ENTRY
    return Response(data=data, mirror_data=True)


async def read_mount(b: SystemBackend, req: Request, d: FieldData) -> Response | None:
    path = d.get("path")
    entry = b.mounts.get(path)
    if entry is None:
        if path.strip("/") == "sys":
            return Response(data=dict(SYS_ENTRY))
        raise UserError(f"No secret engine mount at {path.strip('/')}/")
    return Response(data=entry.describe())


async def create_mount(b: SystemBackend, req: Request, d: FieldData) -> None:
    typ = d.get("type") or ""
    if not typ:
        raise UserError("backend type must be specified as a string")
    options = d.get("options")
    await b.mounts.mount(
        d.get("path"), typ, description=d.get("description"), config=d.get("config"),
        options=options, local=d.get("local"), seal_wrap=d.get("seal_wrap"),
    )
    return None


async def delete_mount(b: SystemBackend, req: Request, d: FieldData) -> None:
    await b.mounts.unmount(d.get("path"))
    return None


TUNE_FIELDS: dict[str, Field] = {"path": Field(FieldType.STRING)}
REMOUNT_FIELDS: dict[str, Field] = {}


async def read_tune(b: SystemBackend, req: Request, d: FieldData) -> None:
    raise UnsupportedPath()  # placeholder: tune arrives with the Vault-core issue


async def write_tune(b: SystemBackend, req: Request, d: FieldData) -> None:
    raise UnsupportedPath()


async def remount(b: SystemBackend, req: Request, d: FieldData) -> None:
    raise UnsupportedPath()
