"""`identity/entity*` and `identity/entity-alias*` handlers (spec auth-api §6.1, §6.2)."""

from __future__ import annotations

from typing import Any

from transit.engines.identity.views import (
    LIST_ALIAS_KEYS,
    alias_data,
    entity_data,
    entity_list_info,
)
from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType
from transit.identity import inputs
from transit.identity.store import IdentityStore
from transit.identity.txn import entity_name_key
from transit.logical import Request, Response

ENTITY_FIELDS: dict[str, Field] = {
    "id": Field(FieldType.STRING, ""),
    "name": Field(FieldType.STRING, ""),
    "metadata": Field(FieldType.ANY, None),
    "policies": Field(FieldType.ANY, None),
    "disabled": Field(FieldType.BOOL, False),
}
BATCH_DELETE_FIELDS: dict[str, Field] = {"entity_ids": Field(FieldType.ANY, None)}
MERGE_FIELDS: dict[str, Field] = {
    "from_entity_ids": Field(FieldType.ANY, None),
    "to_entity_id": Field(FieldType.STRING, ""),
    "force": Field(FieldType.BOOL, False),
    "conflicting_alias_ids_to_keep": Field(FieldType.ANY, None),
}
ALIAS_FIELDS: dict[str, Field] = {
    "id": Field(FieldType.STRING, ""),
    "name": Field(FieldType.STRING, ""),
    "mount_accessor": Field(FieldType.STRING, ""),
    "canonical_id": Field(FieldType.STRING, ""),
    "entity_id": Field(FieldType.STRING, ""),  # Vault's deprecated name for canonical_id
    "custom_metadata": Field(FieldType.ANY, None),
}


def _sent(d: FieldData, name: str) -> bool:
    """Present in the body, JSON null included (Vault's GetOk has no nil check)."""
    return name in d.raw


# -- entities ------------------------------------------------------------------------------


async def write_entity(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    policies = inputs.policies(d.raw["policies"]) if _sent(d, "policies") else None
    metadata = None
    if _sent(d, "metadata"):
        metadata = inputs.kv_pairs(d.raw["metadata"])
    disabled = d.get("disabled") if d.present("disabled") else None
    created = await s.upsert_entity(d.get("id"), d.get("name"), policies=policies,
                                    metadata=metadata, disabled=disabled)
    return Response(data=created) if created is not None else None


async def read_entity_id(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    entity_id = d.get("id")
    if not entity_id:
        raise UserError("missing entity id")
    view = await s.view()
    e = view.entities.get(entity_id)
    return Response(data=entity_data(view, s.mounts, e)) if e is not None else None


async def read_entity_name(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    name = d.get("name")
    if not name:
        raise UserError("missing entity name")
    view = await s.view()
    e = view.entity_by_name(name)
    return Response(data=entity_data(view, s.mounts, e)) if e is not None else None


async def delete_entity_id(s: IdentityStore, req: Request, d: FieldData) -> None:
    if not d.get("id"):
        raise UserError("missing entity id")
    await s.delete_entity(d.get("id"))
    return None


async def delete_entity_name(s: IdentityStore, req: Request, d: FieldData) -> None:
    name = d.get("name")
    if not name:
        raise UserError("missing entity name")
    entity_id = await s.read(entity_name_key(name))
    if entity_id:
        await s.delete_entity(entity_id)
    return None


async def _list_entities(s: IdentityStore, by_id: bool) -> Response | None:
    view = await s.view()
    entities = sorted(view.entities.values(), key=lambda e: e["id"] if by_id else e["name"])
    if not entities:
        return None
    if not by_id:
        return Response(data={"keys": [e["name"] for e in entities]})
    return Response(data={
        "keys": [e["id"] for e in entities],
        "key_info": {e["id"]: entity_list_info(s.mounts, e) for e in entities},
    })


async def list_entity_ids(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    return await _list_entities(s, True)


async def list_entity_names(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    return await _list_entities(s, False)


async def batch_delete(s: IdentityStore, req: Request, d: FieldData) -> None:
    ids = inputs.string_list(d.raw.get("entity_ids"), "entity_ids")
    if not ids:
        raise UserError("missing entity ids to delete")
    for entity_id in dict.fromkeys(ids):
        await s.delete_entity(entity_id)
    return None


async def merge(s: IdentityStore, req: Request, d: FieldData) -> None:
    to_id = d.get("to_entity_id")
    if not to_id:
        raise UserError("missing entity id to merge to")
    from_ids = inputs.string_list(d.raw.get("from_entity_ids"), "from_entity_ids")
    if not from_ids:
        raise UserError("missing entity ids to merge from")
    keep = inputs.string_list(d.raw.get("conflicting_alias_ids_to_keep"),
                              "conflicting_alias_ids_to_keep")
    await s.merge(to_id, from_ids, keep)
    return None


# -- entity aliases --------------------------------------------------------------------------


async def write_alias(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    # omitted (or null): the alias's custom_metadata is emptied, as Vault does
    custom = inputs.custom_metadata(d.raw.get("custom_metadata"))
    canonical = d.get("canonical_id") or d.get("entity_id")
    out = await s.upsert_alias(d.get("id"), d.get("name"), d.get("mount_accessor"), canonical,
                               custom)
    return Response(data=out) if out is not None else None


async def read_alias(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    if not d.get("id"):
        raise UserError("missing alias id")
    view = await s.view()
    found = view.alias(d.get("id"))
    if found is None:
        return None
    return Response(data=alias_data(s.mounts, found[0], namespace=True))


async def delete_alias(s: IdentityStore, req: Request, d: FieldData) -> None:
    if not d.get("id"):
        raise UserError("missing alias ID")
    await s.delete_alias(d.get("id"))
    return None


async def list_aliases(s: IdentityStore, req: Request, d: FieldData) -> Response | None:
    view = await s.view()
    found: list[tuple[str, Any]] = []
    for e in view.entities.values():
        for a in e.get("aliases") or []:
            found.append((a["id"], a))
    if not found:
        return None
    found.sort(key=lambda x: x[0])
    info = {}
    for aid, a in found:
        entry = alias_data(s.mounts, a)
        info[aid] = {k: entry[k] for k in LIST_ALIAS_KEYS if k in entry}
    return Response(data={"keys": [aid for aid, _ in found], "key_info": info})
