"""The JSON shapes of identity objects as Vault's read handlers build them (spec §6.1–6.4)."""

from __future__ import annotations

from typing import Any

from transit.identity.cache import IdentityCache
from transit.identity.entities import MountResolver
from transit.identity.model import NAMESPACE, Record

# key_info of `LIST entity-alias/id` and `LIST group-alias/id`
LIST_ALIAS_KEYS = ("canonical_id", "custom_metadata", "local", "metadata", "mount_accessor",
                   "mount_path", "mount_type", "name")


def _mount_fields(mounts: MountResolver, accessor: str, out: dict[str, Any]) -> dict[str, Any]:
    info = mounts(accessor)
    if info is not None:
        out["mount_path"], out["mount_type"] = info[0], info[1]
    return out


def alias_data(mounts: MountResolver, a: Record, *, namespace: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "canonical_id": a["canonical_id"], "creation_time": a["creation_time"],
        "custom_metadata": a.get("custom_metadata"), "id": a["id"],
        "last_update_time": a["last_update_time"], "local": bool(a.get("local")),
        "merged_from_canonical_ids": a.get("merged_from_canonical_ids"),
        "metadata": a.get("metadata"), "mount_accessor": a["mount_accessor"],
        "name": a["name"],
    }
    if namespace:
        out["namespace_id"] = NAMESPACE
    return _mount_fields(mounts, a["mount_accessor"], out)


def entity_data(view: IdentityCache, mounts: MountResolver, e: Record) -> dict[str, Any]:
    direct = view.direct_groups(e["id"])
    inherited = [g for g in view.ancestors(direct) if g not in direct]
    return {
        "aliases": [alias_data(mounts, a) for a in e.get("aliases") or []],
        "creation_time": e["creation_time"], "direct_group_ids": direct,
        "disabled": bool(e.get("disabled")), "group_ids": direct + inherited, "id": e["id"],
        "inherited_group_ids": inherited, "last_update_time": e["last_update_time"],
        "merged_entity_ids": e.get("merged_entity_ids"), "metadata": e.get("metadata"),
        "name": e["name"], "namespace_id": NAMESPACE, "policies": list(e.get("policies") or []),
    }


def entity_list_info(mounts: MountResolver, e: Record) -> dict[str, Any]:
    info: dict[str, Any] = {"name": e["name"]}
    if e.get("aliases"):
        info["aliases"] = [
            _mount_fields(mounts, a["mount_accessor"], {
                "id": a["id"], "mount_accessor": a["mount_accessor"], "name": a["name"]})
            for a in e["aliases"]]
    return info


def group_alias_data(mounts: MountResolver, a: Record, *, full: bool = True) -> dict[str, Any]:
    """A group alias: `full` as `GET group-alias/id/:id` shows it, else as inside its group."""
    out: dict[str, Any] = {
        "canonical_id": a["canonical_id"], "creation_time": a["creation_time"], "id": a["id"],
        "last_update_time": a["last_update_time"],
        "merged_from_canonical_ids": a.get("merged_from_canonical_ids"),
        "metadata": a.get("metadata"), "mount_accessor": a["mount_accessor"],
        "mount_path": "", "mount_type": "", "name": a["name"],
    }
    if full:
        out.update(custom_metadata=a.get("custom_metadata"), local=False,
                   namespace_id=NAMESPACE)
    return _mount_fields(mounts, a["mount_accessor"], out)


def _members(view: IdentityCache, g: Record) -> list[str]:
    """The group's member entities that exist (one deleted on another node while this
    group was written elsewhere may linger in the stored list; it is not shown)."""
    return [m for m in g.get("member_entity_ids") or [] if m in view.entities]


def group_data(view: IdentityCache, mounts: MountResolver, g: Record) -> dict[str, Any]:
    alias = g.get("alias")
    members = [m for m in g.get("member_group_ids") or [] if m in view.groups]
    return {
        "alias": group_alias_data(mounts, alias, full=False) if alias else {},
        "creation_time": g["creation_time"], "id": g["id"],
        "last_update_time": g["last_update_time"],
        "member_entity_ids": _members(view, g) or None,
        "member_group_ids": members or None, "metadata": g.get("metadata"),
        "modify_index": g.get("modify_index", 0), "name": g["name"],
        "namespace_id": NAMESPACE, "parent_group_ids": view.parent_groups(g["id"]) or None,
        "policies": list(g.get("policies") or []) or None, "type": g["type"],
    }


def group_list_info(view: IdentityCache, mounts: MountResolver, g: Record) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": g["name"], "num_member_entities": len(_members(view, g)),
        "num_parent_groups": len(view.parent_groups(g["id"])),
    }
    alias = g.get("alias")
    if alias:
        info["alias"] = _mount_fields(mounts, alias["mount_accessor"], {
            "id": alias["id"], "mount_accessor": alias["mount_accessor"],
            "name": alias["name"]})
    return info
