"""`sys/policies/acl`, the legacy `sys/policy` and `sys/capabilities*` (spec ha-and-sys-api §4.9).

Handlers mirror Vault's logical_system.go: handlePoliciesList/Read/Set/Delete (the legacy
`sys/policy/...` form answers `rules` instead of `policy`, lists under both `keys` and
`policies`, and repeats its data at the top level) and handleCapabilities(/Accessor).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from transit.acl.store import ROOT
from transit.errors import InternalError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.system.ports import NodeControl

POLICY_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, ""),
    "policy": Field(FieldType.STRING, ""),
}
LEGACY_POLICY_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, ""),
    "policy": Field(FieldType.STRING, ""),
    "rules": Field(FieldType.STRING, ""),
}
CAPABILITIES_FIELDS: dict[str, Field] = {
    "token": Field(FieldType.STRING, ""),
    "accessor": Field(FieldType.STRING, ""),
    "path": Field(FieldType.SLICE, []),
    "paths": Field(FieldType.SLICE, []),
}


def _decode_policy(raw: str) -> str:
    """Vault accepts the policy text base64-encoded too (Go's StdEncoding; it skips CR/LF)."""
    compact = raw.replace("\r", "").replace("\n", "")
    if not compact:
        return raw
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return raw
    return decoded.decode("utf-8", errors="replace")


async def _policy_names(node: NodeControl) -> list[str]:
    return [*await node.policies.list(), ROOT]


# -- sys/policies/acl ------------------------------------------------------------------------


async def list_policies(node: NodeControl, req: Request, d: FieldData) -> Response:
    names = await _policy_names(node)
    if req.path.startswith("policy"):  # LIST sys/policy: the legacy shape
        return Response(data={"keys": names, "policies": names}, mirror_data=True)
    return Response(data={"keys": names})


async def read_policy(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    policy = await node.policies.get(d.get("name"))
    if policy is None:
        return None
    return Response(data={"name": policy.name, "policy": policy.raw})


async def _write(node: NodeControl, name: str, text: str, resp: Response | None) -> Response | None:
    if not name.strip():
        raise UserError("policy name must be provided in the URL")
    if not text:
        raise UserError("'policy' parameter not supplied or empty")
    await node.policies.put(name, _decode_policy(text))
    return resp


async def write_policy(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    return await _write(node, d.get("name"), d.get("policy"), None)


async def delete_policy(node: NodeControl, req: Request, d: FieldData) -> None:
    await node.policies.delete(d.get("name"))
    return None


# -- legacy sys/policy -----------------------------------------------------------------------


async def list_policies_legacy(node: NodeControl, req: Request, d: FieldData) -> Response:
    names = await _policy_names(node)
    return Response(data={"keys": names, "policies": names}, mirror_data=True)


async def read_policy_legacy(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    policy = await node.policies.get(d.get("name"))
    if policy is None:
        return None
    return Response(data={"name": policy.name, "rules": policy.raw}, mirror_data=True)


async def write_policy_legacy(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    text = d.get("policy")
    resp = None
    if not text:
        text = d.get("rules")
        resp = Response()
        resp.add_warning("'rules' is deprecated, please use 'policy' instead")
    return await _write(node, d.get("name"), text, resp)


# -- sys/capabilities* -----------------------------------------------------------------------


def _paths(d: FieldData) -> list[str]:
    paths = [str(p).strip() for p in d.get("paths")]
    if not paths:
        paths = [str(p).strip() for p in d.get("path")]  # the deprecated field
    if not paths:
        raise UserError("paths must be supplied")
    return paths


async def _capabilities_for(node: NodeControl, token: Any, paths: list[str]) -> Response:
    """Vault's Core.Capabilities for each path, plus `capabilities` when there is one path."""
    policies = list(getattr(token, "policies", None) or [])
    data: dict[str, Any] = {}
    acl = None
    if getattr(token, "entity_id", ""):  # identity policies and templating (issue 17)
        acl = await node.policies.acl_for_token(token)
    elif policies:
        acl = await node.policies.acl_for(policies)
    for path in paths:
        if not path:
            raise UserError("missing path")
        data[path] = ["deny"] if acl is None else acl.capabilities(path)
    if len(paths) == 1:
        data["capabilities"] = data[paths[0]]
    return Response(data=data)


async def capabilities_self(node: NodeControl, req: Request, d: FieldData) -> Response:
    paths = _paths(d)
    if req.token is None:
        raise InternalError("no token found")
    return await _capabilities_for(node, req.token, paths)


async def capabilities(node: NodeControl, req: Request, d: FieldData) -> Response:
    token_id = d.get("token")
    if not token_id:
        raise InternalError("no token found")
    paths = _paths(d)
    entry = await node.tokens.lookup(token_id)
    if entry is None:
        raise UserError("invalid token")
    return await _capabilities_for(node, entry, paths)


async def capabilities_accessor(node: NodeControl, req: Request, d: FieldData) -> Response:
    accessor = d.get("accessor")
    if not accessor:
        raise UserError("missing accessor")
    entry = await node.tokens.lookup_accessor(accessor)
    if entry is None:
        raise UserError("invalid accessor")
    return await _capabilities_for(node, entry, _paths(d))
