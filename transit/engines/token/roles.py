"""`auth/token/roles` and `auth/token/roles/:role_name`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from transit.engines.token.common import string_list
from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType, remove_duplicates
from transit.logical import Request, Response
from transit.tokens.roles import TOKEN_TYPES, TokenRole

if TYPE_CHECKING:
    from transit.engines.token.common import TokenPort

ROLE_FIELDS: dict[str, Field] = {
    "role_name": Field(FieldType.STRING, ""),
    "allowed_policies": Field(FieldType.SLICE, []),
    "disallowed_policies": Field(FieldType.SLICE, []),
    "allowed_policies_glob": Field(FieldType.SLICE, []),
    "disallowed_policies_glob": Field(FieldType.SLICE, []),
    "allowed_entity_aliases": Field(FieldType.SLICE, []),
    "orphan": Field(FieldType.BOOL, False),
    "renewable": Field(FieldType.BOOL, True),
    "path_suffix": Field(FieldType.STRING, ""),
    "period": Field(FieldType.DURATION, 0),
    "token_period": Field(FieldType.DURATION, 0),
    "explicit_max_ttl": Field(FieldType.DURATION, 0),
    "token_explicit_max_ttl": Field(FieldType.DURATION, 0),
    "token_type": Field(FieldType.STRING, "default-service"),
    "token_no_default_policy": Field(FieldType.BOOL, False),
    "token_num_uses": Field(FieldType.INT, 0),
    "token_bound_cidrs": Field(FieldType.SLICE, []),
    "bound_cidrs": Field(FieldType.SLICE, []),
}
LIST_FIELDS: dict[str, Field] = {}
_PATH_SUFFIX = re.compile(r"[a-zA-Z0-9_.\-/]+\Z")


async def list_roles(b: TokenPort, req: Request, d: FieldData) -> Response:
    return Response(data={"keys": await b.tokens.roles.list()})


async def role_exists(b: TokenPort, req: Request, d: FieldData) -> bool:
    return await b.tokens.roles.get(d.get("role_name")) is not None


async def read_role(b: TokenPort, req: Request, d: FieldData) -> Response | None:
    role = await b.tokens.roles.get(d.get("role_name"))
    return Response(data=role.read_data()) if role is not None else None


async def delete_role(b: TokenPort, req: Request, d: FieldData) -> None:
    await b.tokens.roles.delete(d.get("role_name"))
    return None


async def write_role(b: TokenPort, req: Request, d: FieldData) -> Response | None:
    name = d.get("role_name").lower()
    existing = await b.tokens.roles.get(name)
    role = TokenRole(name=name) if existing is None else TokenRole.from_json(existing.to_json())
    resp = Response()

    for key in ("allowed_policies", "disallowed_policies"):
        if d.present(key):
            setattr(role, key, remove_duplicates(string_list(d.get(key), key)))
    for key in ("allowed_policies_glob", "disallowed_policies_glob"):
        if d.present(key):
            setattr(role, key, remove_duplicates(string_list(d.get(key), key)))
    if d.present("allowed_entity_aliases"):
        role.allowed_entity_aliases = remove_duplicates(
            string_list(d.get("allowed_entity_aliases"), "allowed_entity_aliases")
        )
    for key in ("orphan", "renewable", "token_no_default_policy"):
        if d.present(key):
            setattr(role, key, d.get(key))
    if d.present("token_bound_cidrs") or d.present("bound_cidrs"):
        key = "token_bound_cidrs" if d.present("token_bound_cidrs") else "bound_cidrs"
        role.token_bound_cidrs = string_list(d.get(key), key)

    if d.present("path_suffix"):
        suffix = d.get("path_suffix")
        if suffix and not _PATH_SUFFIX.fullmatch(suffix):
            raise UserError(
                "given role path suffix contains invalid characters; must match "
                r"^[a-zA-Z0-9_.\-/]+$"
            )
        role.path_suffix = suffix
    if ".." in role.path_suffix:
        raise UserError("error registering path suffix: path cannot contain parent references")

    for new, old, attr in (("token_period", "period", "period"),
                           ("token_explicit_max_ttl", "explicit_max_ttl", "explicit_max_ttl")):
        if d.present(new) and d.present(old):
            raise UserError(f'"{old}" and "{new}" cannot both be specified')
        key = new if d.present(new) else old if d.present(old) else ""
        if key:
            value = d.get(key)
            if value < 0:
                raise UserError(f'"{key}" must be positive')
            setattr(role, attr, value)
    if d.present("token_num_uses"):
        if d.get("token_num_uses") < 0:
            raise UserError("token_num_uses cannot be negative")
        role.token_num_uses = d.get("token_num_uses")
    if d.present("token_type"):
        tt = d.get("token_type").lower()
        if tt == "default":
            tt = "default-service"
        if tt not in TOKEN_TYPES:
            raise UserError(f"invalid 'token_type' value \"{d.get('token_type')}\"")
        role.token_type = tt
    if role.token_type == "batch":
        if not role.orphan:
            raise UserError("'token_type' cannot be 'batch' when role is set to generate non-orphan tokens")
        if role.period:
            raise UserError("'token_type' cannot be 'batch' when role is set to generate periodic tokens")
        if role.renewable:
            raise UserError("'token_type' cannot be 'batch' when role is set to generate renewable tokens")
        if role.explicit_max_ttl:
            raise UserError("'token_type' cannot be 'batch' when role is set to generate tokens with an explicit max TTL")

    await b.tokens.roles.put(role)
    return resp if resp.warnings else None
