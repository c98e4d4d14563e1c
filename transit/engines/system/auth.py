"""`sys/auth`: list, enable, read, disable and tune auth method mounts (spec auth-api
§1.1-1.5). The table is `node.auth_mounts` (the MountTable machinery with `TableKind` AUTH,
stored at `core/auth`); the built-in `token/` is never in it and always listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transit import lockout
from transit.engines.mounts import normalize
from transit.engines.system.internal import TOKEN_AUTH_ENTRY
from transit.engines.system.mounts import TUNE_FIELDS, mount_config, tune_view
from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.system.ports import NodeControl

# Vault's mount token_type values.
TOKEN_TYPES = ("default-service", "default-batch", "service", "batch")
DEFAULT_TOKEN_TYPE = "default-service"
TOKEN_DESCRIPTION = "token based credentials"

ENABLE_FIELDS: dict[str, Field] = {
    "path": Field(FieldType.STRING),
    "type": Field(FieldType.STRING, ""),
    "description": Field(FieldType.STRING, ""),
    "config": Field(FieldType.MAP, {}),
    "options": Field(FieldType.MAP),
    "local": Field(FieldType.BOOL, False),
    "seal_wrap": Field(FieldType.BOOL, False),
    "external_entropy_access": Field(FieldType.BOOL, False),
    "plugin_name": Field(FieldType.STRING, ""),
    "plugin_version": Field(FieldType.STRING, ""),
}
AUTH_TUNE_FIELDS = TUNE_FIELDS


def token_entry() -> dict[str, Any]:
    """`token/` as `GET sys/auth` shows it (no deprecation_status, options null)."""
    return {**TOKEN_AUTH_ENTRY, "config": dict(TOKEN_AUTH_ENTRY["config"])}


def _is_token(path: str) -> bool:
    return normalize(path) == "token/"


def _token_type(value: Any) -> str:
    if value not in TOKEN_TYPES:
        raise UserError("invalid value for 'token_type'")
    return str(value)


async def list_auth(node: NodeControl, req: Request, d: FieldData) -> Response:
    data: dict[str, Any] = {e.path: e.describe() for e in node.auth_mounts.entries()}
    data["token/"] = token_entry()
    return Response(data=data, mirror_data=True)


async def read_auth(node: NodeControl, req: Request, d: FieldData) -> Response:
    path = normalize(d.get("path"))
    if path == "token/":
        return Response(data=token_entry(), mirror_data=True)
    entry = node.auth_mounts.get(path)
    if entry is None:
        raise UserError(f"No auth engine at {path}")
    return Response(data=entry.describe(), mirror_data=True)


async def enable_auth(node: NodeControl, req: Request, d: FieldData) -> None:
    typ = d.get("type") or d.get("plugin_name") or ""
    if not typ:
        raise UserError("backend type must be specified as a string")
    if typ == "token":
        raise UserError("token credential backend cannot be instantiated")
    path = normalize(d.get("path"))
    if path.startswith("token/") or path == "":
        raise UserError("path is already in use at token/")
    raw_config = d.get("config")
    config = mount_config(raw_config)
    config.pop("force_no_cache", None)
    token_type = raw_config.get("token_type")
    config["token_type"] = DEFAULT_TOKEN_TYPE if token_type in (None, "") else _token_type(
        token_type)
    default, maximum = config.get("default_lease_ttl", 0), config.get("max_lease_ttl", 0)
    if default and maximum and default > maximum:
        raise UserError("given default lease TTL greater than given max lease TTL")
    if raw_config.get("user_lockout_config") is not None:
        config["user_lockout_config"] = lockout.parse_config(raw_config["user_lockout_config"])
    options = d.get("options")
    await node.auth_mounts.mount(
        path, typ, description=d.get("description"), config=config,
        options={str(k): "" if v is None else str(v) for k, v in (options or {}).items()},
        local=d.get("local"), seal_wrap=d.get("seal_wrap"),
    )


async def disable_auth(node: NodeControl, req: Request, d: FieldData) -> None:
    """Unmount (its storage is wiped), then revoke every token it issued."""
    path = normalize(d.get("path"))
    if path == "token/":
        raise UserError("token credential backend cannot be disabled")
    entry = await node.auth_mounts.unmount(path)
    if entry is not None:
        await node.revoke_mount_tokens("auth/" + entry.path)
        await node.lockout.clear_mount(entry.accessor)


# -- tune (sys/auth/<path>/tune and sys/mounts/auth/<path>/tune) --------------------------


def _system(node: NodeControl) -> tuple[int, int]:
    return node.tokens.default_lease_ttl, node.tokens.max_lease_ttl


async def read_tune(node: NodeControl, req: Request, d: FieldData) -> Response:
    return read_auth_tune(node, d.get("path"))


def read_auth_tune(node: NodeControl, path: str) -> Response:
    path = normalize(path)
    if path == "token/":
        data = tune_view({}, TOKEN_DESCRIPTION, None, _system(node))
        data["token_type"] = DEFAULT_TOKEN_TYPE
        return Response(data=data, mirror_data=True)
    entry = node.auth_mounts.get(path)
    if entry is None:
        raise UserError(f'cannot fetch sysview for path "auth/{path}"')
    data = tune_view(entry.config, entry.description, entry.options or None, _system(node))
    data["token_type"] = entry.config.get("token_type") or DEFAULT_TOKEN_TYPE
    data.update(entry.config.get("user_lockout_config") or {})
    return Response(data=data, mirror_data=True)


async def write_tune(node: NodeControl, req: Request, d: FieldData) -> None:
    await write_auth_tune(node, d.get("path"), d)


async def write_auth_tune(node: NodeControl, path: str, d: FieldData) -> None:
    path = normalize(path)
    if path == "token/":
        if d.raw.get("token_type") not in (None, ""):
            raise UserError("'token_type' cannot be set for 'token' or 'ns_token' auth mounts")
        return  # the token store's own mount settings are not tunable here
    entry = node.auth_mounts.get(path)
    if entry is None:
        raise UserError(f'tune of path "auth/{path}" failed: no mount entry found')
    raw = {k: d.raw[k] for k in TUNE_FIELDS
           if k not in ("path", "options", "description", "token_type", "user_lockout_config")
           and k in d.raw}
    config = mount_config(raw)
    config.pop("force_no_cache", None)  # not tunable in Vault: accepted and ignored
    token_type = d.raw.get("token_type")
    if token_type not in (None, ""):
        config["token_type"] = _token_type(token_type)
    default = config.get("default_lease_ttl", entry.config.get("default_lease_ttl", 0))
    maximum = config.get("max_lease_ttl", entry.config.get("max_lease_ttl", 0))
    if default and maximum and maximum < default:
        raise UserError(
            f"backend max lease TTL of {maximum} would be less than backend default lease TTL "
            f"of {default}")
    if d.raw.get("user_lockout_config") is not None:
        config["user_lockout_config"] = lockout.parse_config(
            d.raw["user_lockout_config"], entry.config.get("user_lockout_config"))
    description = d.get("description") if "description" in d.raw else None
    await node.auth_mounts.tune(path, description=description, config=config)


# -- sys/locked-users (spec auth-api §1.8) ---------------------------------------------------

UNLOCK_FIELDS: dict[str, Field] = {
    "mount_accessor": Field(FieldType.STRING, ""),
    "alias_identifier": Field(FieldType.STRING, ""),
}


async def list_locked_users(node: NodeControl, req: Request, d: FieldData) -> Response:
    locked = await node.lockout.locked_users()
    accessors: list[dict[str, Any]] = [
        {"mount_accessor": acc, "counts": len(aliases), "alias_identifiers": sorted(aliases)}
        for acc, aliases in sorted(locked.items())]
    total = sum(len(aliases) for aliases in locked.values())
    by_namespace = [{"namespace_id": "root", "namespace_path": "", "counts": total,
                     "mount_accessors": accessors}] if accessors else []
    return Response(data={"by_namespace": by_namespace, "total": total})


async def unlock_user(node: NodeControl, req: Request, d: FieldData) -> None:
    accessor, alias = d.get("mount_accessor"), d.get("alias_identifier")
    if not accessor:
        raise UserError("missing mount_accessor")
    if not alias:
        raise UserError("missing alias_identifier")
    await node.lockout.unlock(accessor, alias)
