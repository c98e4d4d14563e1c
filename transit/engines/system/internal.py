"""`sys/internal/ui/mounts[/<path>]`: what the vault CLI's `kv` commands use to find a mount
and its KV version (options.version), answered for every mount the caller can see."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transit.engines.fields import Field, FieldData, FieldType
from transit.engines.framework import Request, Response
from transit.engines.system.mounts import SYS_ENTRY
from transit.errors import PermissionDenied

if TYPE_CHECKING:
    from transit.engines.system.backend import SystemBackend

UI_MOUNT_FIELDS: dict[str, Field] = {"path": Field(FieldType.STRING, "")}

TOKEN_AUTH_ENTRY: dict[str, Any] = {
    "accessor": "auth_token_00000000",
    "config": {"default_lease_ttl": 0, "force_no_cache": False, "max_lease_ttl": 0,
               "token_type": "default-service"},
    "description": "token based credentials", "external_entropy_access": False, "local": False,
    "options": None, "plugin_version": "", "running_plugin_version": "", "running_sha256": "",
    "seal_wrap": False, "type": "token", "uuid": "00000000-0000-0000-0000-000000000001",
}


def _ui(entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(entry)
    out["running_sha256"] = out.pop("running_plugin_sha256", "")
    return out


async def list_ui_mounts(b: SystemBackend, req: Request, d: FieldData) -> Response:
    secret: dict[str, Any] = {e.path: _ui(e.describe()) for e in b.mounts.entries()}
    secret["sys/"] = _ui(SYS_ENTRY)
    return Response(data={"secret": secret, "auth": {"token/": dict(TOKEN_AUTH_ENTRY)}})


async def read_ui_mount(b: SystemBackend, req: Request, d: FieldData) -> Response:
    path = d.get("path").strip("/")
    if path == "sys" or path.startswith("sys/"):
        return Response(data={**_ui(SYS_ENTRY), "path": "sys/"})
    routed = b.mounts.route(path) if path else None
    if routed is None:
        raise PermissionDenied(
            "preflight capability check returned 403, please ensure client's policies grant "
            f'access to path "{path}/"'
        )
    entry = routed[0]
    return Response(data={**_ui(entry.describe()), "path": entry.path})
