"""Group and group-alias writes (Vault's identity_store_groups.go, _group_aliases.go), and
the external-group membership a login asserts through group aliases."""

from __future__ import annotations

from typing import Any

from transit.errors import InternalError, UserError
from transit.identity import model
from transit.identity.entities import EntityWrites
from transit.identity.model import EXTERNAL, INTERNAL, Record
from transit.identity.txn import (
    Retry,
    ekey,
    gkey,
    group_alias_id_key,
    group_alias_key,
    group_name_key,
)

MAX_MEMBER_ENTITIES = 512


class GroupWrites(EntityWrites):
    """The writes of groups and their aliases."""

    async def upsert_group(
        self, group_id: str, name: str, *, by_name: bool = False, group_type: str | None = None,
        policies: list[str] | None = None, metadata: dict[str, str] | None = None,
        member_entity_ids: list[str] | None = None, member_group_ids: list[str] | None = None,
    ) -> Record | None:
        """`POST group` / `group/id/:id` / `group/name/:name`: {"id", "name"} of a new
        group, None for an update. Member lists, when given, replace the stored ones."""

        async def plan() -> Record | None:
            target = group_id
            current = await self.read(gkey(group_id)) if group_id else None
            if group_id and current is None:
                raise UserError("invalid group ID")
            if by_name and not target:
                holder = await self.read(group_name_key(name))
                if holder:
                    target = holder
                    current = await self.read(gkey(target))
                    if current is None:
                        raise Retry()
            creating = current is None
            gtype = (current or {}).get("type", "")
            if group_type:
                if gtype and group_type != gtype:
                    raise UserError("group type cannot be changed")
                gtype = group_type
            gtype = gtype or INTERNAL
            if gtype not in (INTERNAL, EXTERNAL):
                raise UserError(f'invalid group type "{gtype}"')
            if name:
                holder = await self.read(group_name_key(name))
                if holder and (creating or holder != target):
                    raise UserError("group name is already in use")
            if member_entity_ids is not None:
                if gtype == EXTERNAL:
                    raise UserError("member entities can't be set manually for external groups")
                if len(member_entity_ids) > MAX_MEMBER_ENTITIES:
                    raise UserError("member entity IDs exceeding the limit of 512")
            if member_group_ids is not None and gtype == EXTERNAL:
                raise UserError("member groups can't be set for external groups")
            if creating:
                target = target or model.new_id()
            for eid in member_entity_ids or []:
                if await self.read(ekey(eid)) is None:
                    raise InternalError(f'invalid entity ID "{eid}"')
            view = await self.view()
            for mid in member_group_ids or []:
                if mid == target:
                    raise InternalError(f'member group ID "{mid}" is same as the ID of the group')
                if await self.read(gkey(mid)) is None:
                    raise InternalError(f'invalid member group ID "{mid}"')
                if target in view.descendants(mid):
                    raise UserError(f'cyclic relationship detected for member group ID "{mid}"')
            old_name = (current or {}).get("name", "")
            new_name = name or old_name or model.default_name("group")
            keys = [gkey(target), group_name_key(new_name)]
            if old_name:
                keys.append(group_name_key(old_name))

            def change(v: dict[str, Any]) -> tuple[dict[str, Any], Record | None]:
                rec = v[gkey(target)]
                if rec != current:
                    raise Retry()
                holder = v[group_name_key(new_name)]
                if holder not in (None, target):
                    raise UserError("group name is already in use")
                rec = model.new_group(target, new_name, gtype) if rec is None else model.clone(rec)
                writes: dict[str, Any] = {}
                if old_name and old_name.lower() != new_name.lower():
                    writes[group_name_key(old_name)] = None
                writes[group_name_key(new_name)] = target
                rec["name"] = new_name
                if policies is not None:
                    rec["policies"] = policies
                if metadata is not None:
                    rec["metadata"] = metadata or None
                if member_entity_ids is not None:
                    rec["member_entity_ids"] = list(dict.fromkeys(member_entity_ids))
                if member_group_ids is not None:
                    rec["member_group_ids"] = list(dict.fromkeys(member_group_ids))
                rec["modify_index"] = rec.get("modify_index", 0) + 1
                rec["last_update_time"] = model.now()
                writes[gkey(target)] = rec
                return writes, {"id": target, "name": new_name} if creating else None

            return await self.txn(keys, change)

        result: Record | None = await self.planned(plan)
        return result

    async def delete_group(self, group_id: str) -> None:
        """Delete a group and its alias; it leaves the member lists of its parents."""

        async def plan() -> None:
            current = await self.read(gkey(group_id))
            if current is None:
                return
            view = await self.view()
            parents = sorted(view.parents.get(group_id, ()))
            keys = [gkey(group_id), group_name_key(current["name"])]
            alias = current.get("alias")
            if alias:
                keys += [group_alias_key(alias["mount_accessor"], alias["name"]),
                         group_alias_id_key(alias["id"])]
            keys += [gkey(p) for p in parents]

            def change(v: dict[str, Any]) -> tuple[dict[str, Any], None]:
                if v[gkey(group_id)] != current:
                    raise Retry()
                writes: dict[str, Any] = {gkey(group_id): None}
                if v[group_name_key(current["name"])] == group_id:
                    writes[group_name_key(current["name"])] = None
                if alias:
                    writes[group_alias_key(alias["mount_accessor"], alias["name"])] = None
                    writes[group_alias_id_key(alias["id"])] = None
                for p in parents:
                    parent = v[gkey(p)]
                    if parent is not None and group_id in (parent.get("member_group_ids") or []):
                        parent = model.clone(parent)
                        parent["member_group_ids"].remove(group_id)
                        writes[gkey(p)] = parent
                return writes, None

            await self.txn(keys, change)

        await self.planned(plan)

    # -- group aliases -----------------------------------------------------------------------
    async def upsert_group_alias(self, alias_id: str, name: str, accessor: str,
                                 canonical_id: str) -> Record:
        """`POST group-alias` / `group-alias/id/:id` → {"canonical_id", "id"}. Without a
        canonical_id a new external group is made for the alias (as Vault does)."""

        async def plan() -> Record:
            old_gid = ""
            old: Record | None = None
            if alias_id:
                old_gid = await self.read(group_alias_id_key(alias_id)) or ""
                group = await self.read(gkey(old_gid)) if old_gid else None
                old = (group or {}).get("alias")
                if old is None or old["id"] != alias_id:
                    raise UserError("invalid group alias ID")
            new_name = name or (old or {}).get("name", "")
            new_acc = accessor or (old or {}).get("mount_accessor", "")
            if not new_name:
                raise UserError("missing alias name")
            if not new_acc:
                raise UserError("missing mount_accessor")
            _path, _type, local = self.mount(new_acc)
            if local:
                raise UserError(f'mount accessor "{new_acc}" is a local mount')
            holder = await self.read(group_alias_key(new_acc, new_name))
            aid = alias_id or model.new_id()
            if holder and holder != aid:
                raise UserError("combination of mount and group alias name is already in use")
            gid = canonical_id or old_gid
            target = await self.read(gkey(gid)) if gid else None
            if gid and target is None:
                raise UserError("invalid group ID given in 'canonical_id'")
            if target is not None and target.get("type") != EXTERNAL:
                raise UserError("alias can't be set on an internal group")
            creating_group = target is None
            gid = gid or model.new_id()
            gname = (target or {}).get("name") or model.default_name("group")
            replaced = (target or {}).get("alias")
            keys = [gkey(gid), group_alias_key(new_acc, new_name), group_alias_id_key(aid),
                    group_name_key(gname)]
            if old is not None:
                keys += [gkey(old_gid), group_alias_key(old["mount_accessor"], old["name"])]
            if replaced and replaced["id"] != aid:
                keys += [group_alias_key(replaced["mount_accessor"], replaced["name"]),
                         group_alias_id_key(replaced["id"])]

            def change(v: dict[str, Any]) -> tuple[dict[str, Any], Record]:
                if v[gkey(gid)] != target or v[group_alias_key(new_acc, new_name)] != holder:
                    raise Retry()
                writes: dict[str, Any] = {}
                if creating_group:
                    if v[group_name_key(gname)] is not None:
                        raise Retry()
                    rec = model.new_group(gid, gname, EXTERNAL)
                    writes[group_name_key(gname)] = gid
                else:
                    rec = model.clone(v[gkey(gid)])
                if old is not None:
                    if old_gid != gid:
                        prev = model.clone(v[gkey(old_gid)])
                        prev["alias"] = None
                        writes[gkey(old_gid)] = prev
                    if (old["mount_accessor"], old["name"]) != (new_acc, new_name):
                        writes[group_alias_key(old["mount_accessor"], old["name"])] = None
                if replaced and replaced["id"] != aid:
                    writes[group_alias_key(replaced["mount_accessor"], replaced["name"])] = None
                    writes[group_alias_id_key(replaced["id"])] = None
                t = model.now()
                base = old if old is not None else {"id": aid, "creation_time": t,
                                                    "metadata": None,
                                                    "merged_from_canonical_ids": None}
                rec["alias"] = dict(base, name=new_name, mount_accessor=new_acc,
                                    canonical_id=gid, last_update_time=t)
                rec["modify_index"] = rec.get("modify_index", 0) + 1
                writes[gkey(gid)] = rec
                writes[group_alias_key(new_acc, new_name)] = aid
                writes[group_alias_id_key(aid)] = gid
                return writes, {"canonical_id": gid, "id": aid}

            result: Record = await self.txn(keys, change)
            return result

        out: Record = await self.planned(plan)
        return out

    async def delete_group_alias(self, alias_id: str) -> None:
        async def plan() -> None:
            gid = await self.read(group_alias_id_key(alias_id))
            if not gid:
                return
            group = await self.read(gkey(gid))
            alias = (group or {}).get("alias")
            keys = [gkey(gid), group_alias_id_key(alias_id)]
            if alias:
                keys.append(group_alias_key(alias["mount_accessor"], alias["name"]))

            def change(v: dict[str, Any]) -> tuple[dict[str, Any], None]:
                if v[gkey(gid)] != group:
                    raise Retry()
                writes: dict[str, Any] = {group_alias_id_key(alias_id): None}
                if group is not None and alias and alias["id"] == alias_id:
                    rec = model.clone(group)
                    rec["alias"] = None
                    writes[gkey(gid)] = rec
                    writes[group_alias_key(alias["mount_accessor"], alias["name"])] = None
                return writes, None

            await self.txn(keys, change)

        await self.planned(plan)

    async def sync_external_groups(self, entity_id: str, accessor: str,
                                   names: list[str]) -> None:
        """A login's group aliases: the entity joins each external group whose alias on
        `accessor` it asserts and leaves those whose alias it no longer asserts."""
        view = await self.view()
        wanted = set(names)
        for gid, group in list(view.groups.items()):
            alias = group.get("alias")
            if group.get("type") != EXTERNAL or not alias or alias["mount_accessor"] != accessor:
                continue
            member = entity_id in (group.get("member_entity_ids") or [])
            if member == (alias["name"] in wanted):
                continue
            join = not member

            def change(v: dict[str, Any], gid: str = gid, join: bool = join
                       ) -> tuple[dict[str, Any], None]:
                rec = v[gkey(gid)]
                if rec is None:
                    return {}, None
                members = list(rec.get("member_entity_ids") or [])
                if (entity_id in members) == join:
                    return {}, None
                rec = model.clone(rec)
                rec["member_entity_ids"] = (members + [entity_id] if join
                                            else [m for m in members if m != entity_id])
                rec["modify_index"] = rec.get("modify_index", 0) + 1
                return {gkey(gid): rec}, None

            await self.txn([gkey(gid)], change)
