"""`identity/group*`, `identity/group-alias*` and `identity/lookup/*` handlers (spec auth-api
§6.3–6.5)."""

from __future__ import annotations

from typing import Any

from transit.engines.identity.views import (
    LIST_ALIAS_KEYS,
    entity_data,
    group_alias_data,
    group_data,
    group_list_info,
)
from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType
from transit.identity import inputs
from transit.identity.cache import IdentityCache
from transit.identity.model import Record
from transit.identity.store import IdentityStore
from transit.identity.txn import group_name_key
from transit.logical import Request, Response

GROUP_FIELDS: dict[str, Field] = {
    "id": Field(FieldType.STRING, ""),
    "name": Field(FieldType.STRING, ""),
    "type": Field(FieldType.STRING, ""),
    "metadata": Field(FieldType.ANY, None),
    "policies": Field(FieldType.ANY, None),
    "member_entity_ids": Field(FieldType.ANY, None),
    "member_group_ids": Field(FieldType.ANY, None),
}
GROUP_ALIAS_FIELDS: dict[str, Field] = {
    "id": Field(FieldType.STRING, ""),
    "name": Field(FieldType.STRING, ""),
    "mount_accessor": Field(FieldType.STRING, ""),
    "canonical_id": Field(FieldType.STRING, ""),
}
LOOKUP_FIELDS: dict[str, Field] = {
    "type": Field(FieldType.STRING, ""),
    "id": Field(FieldType.STRING, ""),
    "name": Field(FieldType.STRING, ""),
    "alias_id": Field(FieldType.STRING, ""),
    "alias_name": Field(FieldType.STRING, ""),
    "alias_mount_accessor": Field(FieldType.STRING, ""),
}


async def _write_group(s: IdentityStore, d: FieldData, group_id: str,
                       by_name: bool) -> Response | None:
    raw = d.raw
    out = await s.upsert_group(
        group_id, d.get("name"), by_name=by_name, group_type=d.get("type") or None,
        policies=inputs.policies(raw["policies"]) if "policies" in raw else None,
        metadata=inputs.kv_pairs(raw["metadata"]) if "metadata" in raw else None,
        member_entity_ids=(inputs.string_list(raw["member_entity_ids"], "member_entity_ids")
                           if "member_entity_ids" in raw else None),
        member_group_ids=(inputs.string_list(raw["member_group_ids"], "member_group_ids")
                          if "member_group_ids" in raw else None),
    )
    return Response(data=out) if out is not None else None


async def write_group(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    # without an id, a group of that name is updated (204), as Vault does
    return await _write_group(s, d, d.get("id"), not d.get("id"))


async def write_group_id(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    if not d.get("id"):
        raise UserError("empty group ID")
    return await _write_group(s, d, d.get("id"), False)


async def write_group_name(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    if not d.get("name"):
        raise UserError("empty group name")
    return await _write_group(s, d, "", True)


async def read_group_id(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    if not d.get("id"):
        raise UserError("empty group id")
    view = await s.view()
    g = view.groups.get(d.get("id"))
    return Response(data=group_data(view, s.mounts, g)) if g is not None else None


async def read_group_name(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    if not d.get("name"):
        raise UserError("empty group name")
    view = await s.view()
    g = view.group_by_name(d.get("name"))
    return Response(data=group_data(view, s.mounts, g)) if g is not None else None


async def delete_group_id(s: IdentityStore, req: Request, d: FieldData) -> None:
    if not d.get("id"):
        raise UserError("empty group ID")
    await s.delete_group(d.get("id"))
    return None


async def delete_group_name(s: IdentityStore, req: Request, d: FieldData) -> None:
    if not d.get("name"):
        raise UserError("empty group name")
    group_id = await s.read(group_name_key(d.get("name")))
    if group_id:
        await s.delete_group(group_id)
    return None


async def _list_groups(s: IdentityStore, by_id: bool) -> Response | None:
    view = await s.view()
    groups = sorted(view.groups.values(), key=lambda g: g["id"] if by_id else g["name"])
    if not groups:
        return None
    if not by_id:
        return Response(data={"keys": [g["name"] for g in groups]})
    return Response(data={
        "keys": [g["id"] for g in groups],
        "key_info": {g["id"]: group_list_info(view, s.mounts, g) for g in groups},
    })


async def list_group_ids(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    return await _list_groups(s, True)


async def list_group_names(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    return await _list_groups(s, False)


# -- group aliases ---------------------------------------------------------------------------


async def write_group_alias(s: IdentityStore, req: Request, d: FieldData) -> Response:
    out = await s.upsert_group_alias(d.get("id"), d.get("name"), d.get("mount_accessor"),
                                     d.get("canonical_id"))
    return Response(data=out)


async def read_group_alias(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    if not d.get("id"):
        raise UserError("missing group alias ID")
    view = await s.view()
    found = view.group_alias(d.get("id"))
    return Response(data=group_alias_data(s.mounts, found[0])) if found else None


async def delete_group_alias(s: IdentityStore, req: Request, d: FieldData) -> None:
    if not d.get("id"):
        raise UserError("missing group alias ID")
    await s.delete_group_alias(d.get("id"))
    return None


async def list_group_aliases(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    view = await s.view()
    aliases = sorted((g["alias"] for g in view.groups.values() if g.get("alias")),
                     key=lambda a: a["id"])
    if not aliases:
        return None
    info: dict[str, Any] = {}
    for a in aliases:
        full = group_alias_data(s.mounts, a)
        info[a["id"]] = {k: full[k] for k in LIST_ALIAS_KEYS}
    return Response(data={"keys": [a["id"] for a in aliases], "key_info": info})


# -- lookups -----------------------------------------------------------------------------------


def _query(d: FieldData) -> tuple[str, str, str, str, str]:
    """(id, name, alias_id, alias_name, alias_mount_accessor), validated as Vault does."""
    values = [d.get(k) for k in ("id", "name", "alias_id", "alias_name",
                                 "alias_mount_accessor")]
    given = sum(1 for v in values if v)
    alias_name, alias_acc = values[3], values[4]
    if given == 0:
        raise UserError("query parameter not supplied")
    if given == 1 and (alias_name or alias_acc):
        raise UserError("both 'alias_name' and 'alias_mount_accessor' needs to be set")
    if given > 1 and not (given == 2 and alias_name and alias_acc):
        raise UserError("query parameter conflict; please supply distinct set of query "
                        "parameters")
    return values[0], values[1], values[2], alias_name, alias_acc


def _find_entity(view: IdentityCache, d: FieldData) -> Record | None:
    eid, name, alias_id, alias_name, alias_acc = _query(d)
    if eid:
        return view.entities.get(eid)
    if name:
        return view.entity_by_name(name)
    found = view.alias(alias_id) if alias_id else view.alias_by_factors(alias_acc, alias_name)
    return found[1] if found else None


def _find_group(view: IdentityCache, d: FieldData) -> Record | None:
    gid, name, alias_id, alias_name, alias_acc = _query(d)
    if gid:
        return view.groups.get(gid)
    if name:
        return view.group_by_name(name)
    found = (view.group_alias(alias_id) if alias_id
             else view.group_alias_by_factors(alias_acc, alias_name))
    return found[1] if found else None


async def lookup_entity(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    view = await s.view()
    e = _find_entity(view, d)
    return Response(data=entity_data(view, s.mounts, e)) if e is not None else None


async def lookup_group(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    view = await s.view()
    g = _find_group(view, d)
    return Response(data=group_data(view, s.mounts, g)) if g is not None else None
