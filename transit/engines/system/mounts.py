"""`sys/mounts` and `sys/mounts/<path>` (spec ha-and-sys-api §4.8, transit-api §1.6)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from transit.engines.mounts import OPTIONAL_CONFIG, MountEntry
from transit.errors import UserError
from transit.fields import (
    MAX_DURATION_SECONDS,
    Field,
    FieldData,
    FieldType,
    parse_bool,
    parse_duration,
)
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.system.ports import NodeControl

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

SYS_ENTRY: dict[str, Any] = {
    "accessor": "system_00000000", "config": {"default_lease_ttl": 0, "max_lease_ttl": 0,
                                              "force_no_cache": False},
    "description": "system endpoints used for control, policy and debugging",
    "external_entropy_access": False, "local": False, "options": None, "plugin_version": "",
    "running_sha256": "", "running_plugin_version": "", "deprecation_status": "supported", "seal_wrap": True,
    "type": "system", "uuid": "00000000-0000-0000-0000-000000000000",
}


async def list_mounts(node: NodeControl, req: Request, d: FieldData) -> Response:
    data: dict[str, Any] = {e.path: e.describe() for e in node.mounts.entries()}
    data["sys/"] = SYS_ENTRY
    return Response(data=data, mirror_data=True)


async def read_mount(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    path = d.get("path")
    entry = node.mounts.get(path)
    if entry is None:
        if path.strip("/") == "sys":
            return Response(data=dict(SYS_ENTRY))
        raise UserError(f"No secret engine mount at {path.strip('/')}/")
    return Response(data=entry.describe())


async def create_mount(node: NodeControl, req: Request, d: FieldData) -> None:
    typ = d.get("type") or ""
    if not typ:
        raise UserError("backend type must be specified as a string")
    options = d.get("options")
    await node.mounts.mount(
        d.get("path"), typ, description=d.get("description"), config=_mount_config(d.get("config")),
        options=options, local=d.get("local"), seal_wrap=d.get("seal_wrap"),
    )
    return None


async def delete_mount(node: NodeControl, req: Request, d: FieldData) -> None:
    await node.mounts.unmount(d.get("path"))
    return None


# -- config values ------------------------------------------------------------------------

_TTL_NAMES = {"default_lease_ttl": "default", "max_lease_ttl": "max"}
_LIST_KEYS = ("audit_non_hmac_request_keys", "audit_non_hmac_response_keys",
              "passthrough_request_headers", "allowed_response_headers")


def _ttl(name: str, value: Any) -> int | None:
    """Seconds from a TTL value; None for "" (unchanged); 0 for "system" (the default)."""
    if value is None or value == "":
        return None
    if value == "system":
        return 0
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError):
        raise UserError(f'time: invalid duration "{value}"') from None
    if seconds > MAX_DURATION_SECONDS:  # Go's time.Duration (int64 nanoseconds) overflows
        raise UserError(f'time: invalid duration "{value}"')
    if seconds < 0:
        raise UserError(f"{_TTL_NAMES[name]} lease TTL cannot be negative")
    return seconds


def _str_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UserError(f'Field validation failed: error converting input for field "{name}"')


def _listing_visibility(value: Any) -> str:
    if value not in ("", "unauth", "hidden"):
        raise UserError(f"invalid listing_visibility {value}")
    return str(value)


def _mount_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Normalise a `config` block (mount or tune): TTLs as seconds, lists as lists."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name in _TTL_NAMES:
            seconds = _ttl(name, value)
            if seconds is not None:
                out[name] = seconds
        elif name == "force_no_cache":
            try:
                out[name] = parse_bool(value)
            except ValueError:
                raise UserError(f"invalid force_no_cache value {value!r}") from None
        elif name in _LIST_KEYS:
            out[name] = _str_list(name, value)
        elif name == "listing_visibility":
            out[name] = _listing_visibility(value)
    return out


mount_config = _mount_config  # also the config of sys/auth enable and tune (system/auth.py)


# -- tune ---------------------------------------------------------------------------------

TUNE_FIELDS: dict[str, Field] = {
    "path": Field(FieldType.STRING),
    "default_lease_ttl": Field(FieldType.ANY),
    "max_lease_ttl": Field(FieldType.ANY),
    "description": Field(FieldType.STRING),
    "options": Field(FieldType.MAP),
    "audit_non_hmac_request_keys": Field(FieldType.ANY),
    "audit_non_hmac_response_keys": Field(FieldType.ANY),
    "listing_visibility": Field(FieldType.STRING),
    "passthrough_request_headers": Field(FieldType.ANY),
    "allowed_response_headers": Field(FieldType.ANY),
    "force_no_cache": Field(FieldType.BOOL),
    "token_type": Field(FieldType.STRING),
    "plugin_version": Field(FieldType.STRING),
    "user_lockout_config": Field(FieldType.MAP),
}

UPGRADE_WARNING = (
    "Upgrading mount from version {old} to version {new}. This mount will be unavailable for "
    "a brief period and will resume service shortly."
)


def tune_view(entry_config: dict[str, Any], description: str,
              options: dict[str, Any] | None, system: tuple[int, int]) -> dict[str, Any]:
    """`system`: the server's (default_lease_ttl, max_lease_ttl), shown where the mount
    sets none."""
    data: dict[str, Any] = {
        "default_lease_ttl": entry_config.get("default_lease_ttl") or system[0],
        "max_lease_ttl": entry_config.get("max_lease_ttl") or system[1],
        "force_no_cache": bool(entry_config.get("force_no_cache", False)),
        "description": description,
    }
    if options is not None:
        data["options"] = options
    for key in OPTIONAL_CONFIG:
        if entry_config.get(key):
            data[key] = entry_config[key]
    return data


async def read_tune(node: NodeControl, req: Request, d: FieldData) -> Response:
    path = d.get("path").strip("/")
    system = (node.tokens.default_lease_ttl, node.tokens.max_lease_ttl)
    if path == "sys":
        return Response(data=tune_view({}, SYS_ENTRY["description"], None, system),
                        mirror_data=True)
    entry = node.mounts.get(path)
    if entry is None:
        raise UserError(f'cannot fetch sysview for path "{path}/"')
    return Response(data=tune_view(entry.config, entry.description, entry.options, system),
                    mirror_data=True)


def _parse_version(value: Any) -> int:
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        raise UserError(
            f'unable to parse options: strconv.ParseInt: parsing "{text}": invalid syntax'
        ) from None


def _tune_options(entry: MountEntry, raw: dict[str, Any], warnings: list[str]) -> tuple[
        dict[str, Any], bool]:
    """The entry's new options and whether the engine must be rebuilt (KV upgrade)."""
    new = dict(entry.options or {})
    for key, value in raw.items():
        new[key] = "" if value is None else str(value)
    if "version" not in raw or entry.type not in ("kv", "generic"):
        return new, False
    old_version = _parse_version((entry.options or {}).get("version") or "1")
    version = _parse_version(raw["version"])
    if version not in (1, 2):
        raise UserError(f"invalid version provided: {version}")
    if version < old_version:
        raise UserError(f"cannot downgrade mount from version {old_version}")
    new["version"] = str(version)
    if version == old_version:
        return new, False
    warnings.append(UPGRADE_WARNING.format(old=old_version, new=version))
    return new, True


async def write_tune(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    path = d.get("path").strip("/")
    entry = node.mounts.get(path)
    if entry is None:
        raise UserError(f'tune of path "{path}/" failed: no mount entry found')
    raw = {k: d.raw[k] for k in TUNE_FIELDS if k not in ("path", "options", "description")
           and k in d.raw}
    config = _mount_config(raw)
    config.pop("force_no_cache", None)  # not tunable in Vault: accepted and ignored
    default = config.get("default_lease_ttl", entry.config.get("default_lease_ttl", 0))
    maximum = config.get("max_lease_ttl", entry.config.get("max_lease_ttl", 0))
    if default and maximum and maximum < default:
        raise UserError(
            f"backend max lease TTL of {maximum} would be less than backend default lease TTL "
            f"of {default}"
        )
    warnings: list[str] = []
    options, reload = None, False
    if d.present("options"):
        options, reload = _tune_options(entry, d.get("options"), warnings)
    description = d.get("description") if "description" in d.raw else None
    await node.mounts.tune(path, description=description, config=config, options=options,
                        reload=reload)
    if not warnings:
        return None
    return Response(warnings=warnings)


# -- remount ------------------------------------------------------------------------------

REMOUNT_FIELDS: dict[str, Field] = {
    "from": Field(FieldType.STRING, ""),
    "to": Field(FieldType.STRING, ""),
}
_PROTECTED = ("sys/", "cubbyhole/", "identity/", "auth/token/")


async def remount(node: NodeControl, req: Request, d: FieldData) -> Response:
    src, dst = d.get("from").strip("/"), d.get("to").strip("/")
    if not src or not dst:
        raise UserError("both 'from' and 'to' path must be specified as a string")
    for protected in _PROTECTED:
        if (src + "/").startswith(protected):
            raise UserError(f'cannot remount "{src}/"')
    src_auth, dst_auth = src.startswith("auth/"), dst.startswith("auth/")
    if src_auth and not dst_auth:
        raise UserError(f'cannot remount auth mount to non-auth mount "{dst}/"')
    if dst_auth and not src_auth:
        raise UserError(f'cannot remount non-auth mount to auth mount "{dst}/"')
    if src_auth:
        # an auth mount: its tokens are revoked first (Vault revokes the source's leases)
        if node.auth_mounts.get(src[len("auth/"):]) is None:
            raise UserError(f'no matching mount at "{src}/"')
        await node.revoke_mount_tokens(src + "/")
        await node.auth_mounts.remount(src[len("auth/"):], dst[len("auth/"):])
    else:
        await node.mounts.remount(src, dst)
    migration_id = str(uuid.uuid4())
    node.mounts.migrations[migration_id] = {
        "source_mount": src + "/", "target_mount": dst + "/", "status": "success",
        "source_namespace": "", "target_namespace": "",
    }
    resp = Response(data={"migration_id": migration_id}, mirror_data=True)
    resp.add_warning(
        "Mount move has been queued. Progress will be reported in Vault's server log, tagged "
        "with the returned migration_id"
    )
    return resp


REMOUNT_STATUS_FIELDS: dict[str, Field] = {"migration_id": Field(FieldType.STRING, "")}


async def remount_status(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    """`GET sys/remount/status/<migration_id>` (polled by `vault secrets move`)."""
    migration_id = d.get("migration_id")
    info = node.mounts.migrations.get(migration_id)
    if info is None:
        return None
    return Response(data={"migration_id": migration_id, "migration_info": dict(info)})
