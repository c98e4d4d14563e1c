"""`sys/internal/ui/mounts[/<path>]`: what the vault CLI's `kv` commands use to find a mount
and its KV version (options.version) — spec operations-api §9.

Both paths are unauthenticated in Vault's router: the core does not check the token's ACL
for them (transit/core.py, `SELF_CHECKED`); these handlers do, as Vault's do. A mount is
shown to a token that has any capability on any path under it (Vault's `hasMountAccess`),
so a least-privilege token with only `secret/data/app/*` passes `vault kv get`'s preflight
for `secret/`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transit.acl.policy import DENY
from transit.engines.system.mounts import SYS_ENTRY
from transit.errors import PermissionDenied
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.acl.acl import ACL
    from transit.engines.system.ports import NodeControl

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


# -- Vault's hasMountAccess ----------------------------------------------------------------


def _grants(perms: Any) -> bool:
    bits = perms.bits
    return bool(bits) and not bits & DENY


def _wildcard_reaches(parts: list[str], is_prefix: bool, mount: list[str]) -> bool:
    """Whether a `+` pattern (its segments, minus a trailing `*`) can match a path under
    the mount whose segments are `mount`."""
    for i, seg in enumerate(mount):
        if i >= len(parts):
            return False
        part, last = parts[i], i == len(parts) - 1
        if last and is_prefix and seg.startswith(part):
            return True
        if part != "+" and part != seg:
            return False
        if last:  # the pattern ends inside the mount's own path
            return not is_prefix and i == len(mount) - 1
    return True  # the pattern goes on below the mount path


def has_mount_access(acl: ACL, mount_path: str) -> bool:
    """Vault's `hasMountAccess`: any capability (not deny) on the mount path or on any path
    under it, by an exact, a prefix (`*`) or a segment-wildcard (`+`) rule."""
    if acl.root:
        return True
    if "deny" not in acl.capabilities(mount_path):
        return True
    for table in (acl._exact, acl._prefix):
        for pattern, perms in table.items():
            if pattern.startswith(mount_path) and _grants(perms):
                return True
    segments = mount_path.rstrip("/").split("/")
    return any(_grants(w.perms) and _wildcard_reaches(w.parts, w.is_prefix, segments)
               for w in acl._wildcards)


async def _acl(node: NodeControl, req: Request) -> ACL | None:
    """The caller's ACL; None without a token; PermissionDenied for an unknown token."""
    if req.token is None:
        if req.client_token:
            raise PermissionDenied()
        return None
    return await node.policies.acl_for_token(req.token)  # with identity (issue 17)


def _unauth_view(entry: dict[str, Any]) -> dict[str, Any]:
    return {"description": entry.get("description", ""), "options": entry.get("options"),
            "type": entry.get("type", "")}


async def list_ui_mounts(node: NodeControl, req: Request, d: FieldData) -> Response:
    acl = await _acl(node, req)
    secret: dict[str, Any] = {}
    auth: dict[str, Any] = {}
    if acl is None:  # no token: the mounts tuned listing_visibility="unauth" only
        for e in node.mounts.entries():
            if e.config.get("listing_visibility") == "unauth":
                secret[e.path] = _unauth_view(e.describe())
        for e in node.auth_mounts.entries():
            if e.config.get("listing_visibility") == "unauth":
                auth[e.path] = _unauth_view(e.describe())
        return Response(data={"secret": secret, "auth": auth})
    for e in node.mounts.entries():
        if has_mount_access(acl, e.path):
            secret[e.path] = _ui(e.describe())
    if has_mount_access(acl, "sys/"):
        secret["sys/"] = _ui(SYS_ENTRY)
    if has_mount_access(acl, "auth/token/"):
        auth["token/"] = dict(TOKEN_AUTH_ENTRY)
    for e in node.auth_mounts.entries():
        if has_mount_access(acl, "auth/" + e.path):
            auth[e.path] = _ui(e.describe())
    return Response(data={"secret": secret, "auth": auth})


async def read_ui_mount(node: NodeControl, req: Request, d: FieldData) -> Response:
    path = d.get("path").strip("/")
    denied = PermissionDenied(
        "preflight capability check returned 403, please ensure client's policies grant "
        f'access to path "{path}/"'
    )
    if path == "sys" or path.startswith("sys/"):
        data, mount = {**_ui(SYS_ENTRY), "path": "sys/"}, "sys/"
    elif path.startswith("auth/"):
        if path == "auth/token" or path.startswith("auth/token/"):
            data, mount = {**TOKEN_AUTH_ENTRY, "path": "token/"}, "auth/token/"
        else:
            routed_auth = node.auth_mounts.route(path[len("auth/"):])
            if routed_auth is None:
                raise denied
            entry = routed_auth[0]
            mount = "auth/" + entry.path  # shown as "userpass/", checked as auth/userpass/
            data = {**_ui(entry.describe()), "path": entry.path}
    else:
        routed = node.mounts.route(path) if path else None
        if routed is None:
            raise denied  # no such mount: the same answer, so mounts cannot be enumerated
        entry = routed[0]
        data, mount = {**_ui(entry.describe()), "path": entry.path}, entry.path
    acl = await _acl(node, req)
    if acl is None:
        raise PermissionDenied()
    if not has_mount_access(acl, mount):
        raise denied
    return Response(data=data)
