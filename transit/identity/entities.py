"""Entity and entity-alias writes (Vault's identity_store_entities.go, _aliases.go) and what
a login does to identity (Vault's CreateOrFetchEntity)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transit.errors import InternalError, PermissionDenied, UserError
from transit.identity import model
from transit.identity.model import Record
from transit.identity.txn import (
    IdentityStorage,
    Retry,
    alias_id_key,
    alias_key,
    aliases_of,
    ekey,
    entity_name_key,
    gkey,
)

# (mount path, mount type, local) of a mount accessor, or None when no mount has it.
MountInfo = tuple[str, str, bool]
MountResolver = Callable[[str], MountInfo | None]


def _no_mounts(accessor: str) -> MountInfo | None:
    return None


class EntityWrites(IdentityStorage):
    """The writes of entities and their aliases."""

    mounts: MountResolver = staticmethod(_no_mounts)

    def mount(self, accessor: str) -> MountInfo:
        info = self.mounts(accessor)
        if info is None:
            raise UserError(f'invalid mount accessor "{accessor}"')
        return info

    # -- entities ----------------------------------------------------------------------------
    async def upsert_entity(
        self, entity_id: str, name: str, *, policies: list[str] | None = None,
        metadata: dict[str, str] | None = None, disabled: bool | None = None,
    ) -> Record | None:
        """`POST entity` / `entity/id/:id` / `entity/name/:name`: the new entity's
        {"aliases", "id", "name"} when one was created, None for an update."""

        async def plan() -> Record | None:
            current = await self.read(ekey(entity_id)) if entity_id else None
            if entity_id and current is None:
                raise UserError("entity not found from id")
            target = entity_id
            if name:
                by_name = await self.read(entity_name_key(name))
                if by_name and not target:
                    target = by_name
                    current = await self.read(ekey(target))
                    if current is None:
                        raise Retry()
                elif by_name and by_name != target:
                    raise UserError("entity name is already in use")
            creating = not target
            if creating:
                target = model.new_id()
            old_name = current["name"] if current is not None else ""
            new_name = name or old_name or model.default_name("entity")
            keys = [ekey(target), entity_name_key(new_name)]
            if old_name:
                keys.append(entity_name_key(old_name))

            def change(v: dict[str, Any]) -> tuple[dict[str, Any], Record | None]:
                rec = v[ekey(target)]
                if creating:
                    if rec is not None:
                        raise Retry()
                    rec = model.new_entity(target, new_name)
                elif rec is None or rec["name"] != old_name:
                    raise Retry()
                else:
                    rec = model.clone(rec)
                holder = v[entity_name_key(new_name)]
                if holder not in (None, target):
                    raise UserError("entity name is already in use")
                writes: dict[str, Any] = {}
                if old_name and old_name.lower() != new_name.lower():
                    writes[entity_name_key(old_name)] = None
                writes[entity_name_key(new_name)] = target
                rec["name"] = new_name
                if policies is not None:
                    rec["policies"] = policies
                if metadata is not None:
                    rec["metadata"] = metadata or None
                if disabled is not None:
                    rec["disabled"] = disabled
                rec["last_update_time"] = model.now()
                writes[ekey(target)] = rec
                return writes, ({"aliases": None, "id": target, "name": new_name}
                                if creating else None)

            return await self.txn(keys, change)

        result: Record | None = await self.planned(plan)
        return result

    async def delete_entity(self, entity_id: str) -> None:
        """Delete an entity, its aliases, and its membership of every group."""

        async def plan() -> None:
            current = await self.read(ekey(entity_id))
            if current is None:
                return
            view = await self.view()
            groups = sorted(view.member_of.get(entity_id, ()))
            keys = [ekey(entity_id), entity_name_key(current["name"])]
            for a in aliases_of(current):
                keys += [alias_key(a["mount_accessor"], a["name"]), alias_id_key(a["id"])]
            keys += [gkey(g) for g in groups]

            def change(v: dict[str, Any]) -> tuple[dict[str, Any], None]:
                rec = v[ekey(entity_id)]
                if rec is None:
                    return {}, None
                if rec != current:
                    raise Retry()
                writes: dict[str, Any] = {ekey(entity_id): None}
                if v[entity_name_key(rec["name"])] == entity_id:
                    writes[entity_name_key(rec["name"])] = None
                for a in aliases_of(rec):
                    if v[alias_key(a["mount_accessor"], a["name"])] == a["id"]:
                        writes[alias_key(a["mount_accessor"], a["name"])] = None
                    writes[alias_id_key(a["id"])] = None
                for g in groups:
                    group = v[gkey(g)]
                    if group is not None and entity_id in (group.get("member_entity_ids") or []):
                        group = model.clone(group)
                        group["member_entity_ids"].remove(entity_id)
                        group["modify_index"] = group.get("modify_index", 0) + 1
                        writes[gkey(g)] = group
                return writes, None

            await self.txn(keys, change)

        await self.planned(plan)

    async def merge(self, to_id: str, from_ids: list[str], keep: list[str]) -> None:
        """`entity/merge`: move the aliases of `from_ids` to `to_id`, delete the others."""

        async def plan() -> None:
            to = await self.read(ekey(to_id))
            if to is None:
                raise UserError("entity id to merge to is invalid")
            if len(from_ids) > 1 and len(keep) > 1:
                raise UserError("aliases conflicts cannot be resolved with multiple from entity "
                                "ids - merge one entity at a time")
            sources: list[Record] = []
            for fid in sorted(set(from_ids)):
                if fid == to_id:
                    raise UserError("to_entity_id should not be present in from_entity_ids")
                rec = await self.read(ekey(fid))
                if rec is None:
                    raise UserError("entity id to merge from is invalid")
                sources.append(rec)
            if not keep:
                _check_clashes(to, sources)
            view = await self.view()
            keys = [ekey(to_id)]
            for src in sources:
                keys += [ekey(src["id"]), entity_name_key(src["name"])]
                keys += [gkey(g) for g in sorted(view.member_of.get(src["id"], ()))]
                for a in aliases_of(src):
                    keys += [alias_key(a["mount_accessor"], a["name"]), alias_id_key(a["id"])]
            for a in aliases_of(to):
                keys += [alias_key(a["mount_accessor"], a["name"]), alias_id_key(a["id"])]

            def change(v: dict[str, Any]) -> tuple[dict[str, Any], None]:
                target = v[ekey(to_id)]
                if target != to or any(v[ekey(s["id"])] != s for s in sources):
                    raise Retry()
                target = model.clone(target)
                writes: dict[str, Any] = {}
                for src in sources:
                    for fa in aliases_of(src):
                        moved = model.clone(fa)
                        clash = [ta for ta in target["aliases"]
                                 if ta["mount_accessor"] == fa["mount_accessor"]]
                        drop_from = False
                        for ta in clash:
                            if ta["id"] in keep:
                                drop_from = True
                            elif fa["id"] in keep:
                                target["aliases"].remove(ta)
                                _drop_alias(writes, ta)
                            else:
                                raise UserError(
                                    "conflicting mount accessors in following alias IDs and "
                                    "neither were present in conflicting_alias_ids_to_keep: "
                                    f"{fa['id']}, {ta['id']}")
                        if drop_from:
                            _drop_alias(writes, fa)
                            continue
                        moved["canonical_id"] = to_id
                        moved["merged_from_canonical_ids"] = [
                            *(fa.get("merged_from_canonical_ids") or []), src["id"]]
                        moved["last_update_time"] = model.now()
                        target["aliases"].append(moved)
                        writes[alias_id_key(fa["id"])] = to_id
                        writes[alias_key(fa["mount_accessor"], fa["name"])] = fa["id"]
                    target["merged_entity_ids"] = [
                        *(target.get("merged_entity_ids") or []),
                        *(src.get("merged_entity_ids") or []), src["id"]]
                    writes[ekey(src["id"])] = None
                    if v[entity_name_key(src["name"])] == src["id"]:
                        writes[entity_name_key(src["name"])] = None
                    for g in sorted(view.member_of.get(src["id"], ())):
                        group = writes.get(gkey(g), v[gkey(g)])
                        if group is not None and src["id"] in (group.get("member_entity_ids")
                                                                or []):
                            group = model.clone(group)
                            group["member_entity_ids"].remove(src["id"])
                            writes[gkey(g)] = group
                target["last_update_time"] = model.now()
                writes[ekey(to_id)] = target
                return writes, None

            await self.txn(keys, change)

        await self.planned(plan)

    # -- entity aliases ----------------------------------------------------------------------
    async def upsert_alias(
        self, alias_id: str, name: str, accessor: str, canonical_id: str,
        custom_metadata: dict[str, str] | None,
    ) -> Record | None:
        """`POST entity-alias` / `entity-alias/id/:id`: {"canonical_id", "id"} when an alias
        was created or changed, None when the update changed nothing."""
        if not alias_id and not (accessor and name):
            raise UserError("'id' or 'mount_accessor' and 'name' must be provided")
        if accessor:
            self.mount(accessor)

        async def plan() -> Record | None:
            aid = alias_id
            if aid:
                if await self.read(alias_id_key(aid)) is None:
                    raise UserError("invalid alias ID provided")
            else:
                aid = await self.read(alias_key(accessor, name)) or ""
            if not aid:
                return await self._create_alias(name, accessor, canonical_id, custom_metadata)
            return await self._update_alias(aid, name, accessor, canonical_id, custom_metadata)

        result: Record | None = await self.planned(plan)
        return result

    async def _create_alias(self, name: str, accessor: str, canonical_id: str,
                            custom: dict[str, str] | None) -> Record:
        creating_entity = not canonical_id
        eid = canonical_id or model.new_id()
        entity = None
        if canonical_id:
            entity = await self.read(ekey(canonical_id))
            if entity is None:
                raise UserError("invalid canonical ID")
        aid = model.new_id()
        ename = entity["name"] if entity is not None else model.default_name("entity")
        keys = [ekey(eid), alias_key(accessor, name), alias_id_key(aid), entity_name_key(ename)]

        def change(v: dict[str, Any]) -> tuple[dict[str, Any], Record]:
            if v[alias_key(accessor, name)] is not None:
                raise Retry()
            rec = v[ekey(eid)]
            writes: dict[str, Any] = {}
            if creating_entity:
                if rec is not None or v[entity_name_key(ename)] is not None:
                    raise Retry()
                rec = model.new_entity(eid, ename)
                writes[entity_name_key(ename)] = eid
            elif rec is None:
                raise UserError("invalid canonical ID")
            else:
                rec = model.clone(rec)
            if any(a["mount_accessor"] == accessor for a in rec["aliases"]):
                raise UserError("Alias already exists for requested entity and mount accessor")
            alias = model.new_alias(aid, eid, accessor, name)
            alias["custom_metadata"] = custom
            rec["aliases"].append(alias)
            writes[ekey(eid)] = rec
            writes[alias_key(accessor, name)] = aid
            writes[alias_id_key(aid)] = eid
            return writes, {"canonical_id": eid, "id": aid}

        result: Record = await self.txn(keys, change)
        return result

    async def _update_alias(self, aid: str, name: str, accessor: str, canonical_id: str,
                            custom: dict[str, str] | None) -> Record | None:
        eid = await self.read(alias_id_key(aid))
        if not eid:
            raise Retry()
        entity = await self.read(ekey(eid))
        old = next((a for a in aliases_of(entity) if a["id"] == aid), None)
        if entity is None or old is None:
            raise Retry()
        new_name = name or old["name"]
        new_acc = accessor or old["mount_accessor"]
        new_eid = canonical_id or eid
        keys = [ekey(eid), alias_id_key(aid), alias_key(old["mount_accessor"], old["name"]),
                alias_key(new_acc, new_name), ekey(new_eid)]

        def change(v: dict[str, Any]) -> tuple[dict[str, Any], Record | None]:
            if v[ekey(eid)] != entity or v[alias_id_key(aid)] != eid:
                raise Retry()
            holder = v[alias_key(new_acc, new_name)]
            if holder not in (None, aid):
                raise UserError("alias with combination of mount accessor and name already "
                                "exists")
            dest = v[ekey(new_eid)]
            if dest is None:
                raise UserError("invalid canonical ID")
            src = model.clone(entity)
            dest = src if new_eid == eid else model.clone(dest)
            alias = next(a for a in src["aliases"] if a["id"] == aid)
            src["aliases"].remove(alias)
            if any(a["mount_accessor"] == new_acc for a in dest["aliases"]):
                raise UserError("Alias cannot be updated as the given entity already has an "
                                "alias for this mount ")
            updated = dict(alias, name=new_name, mount_accessor=new_acc, canonical_id=new_eid,
                           custom_metadata=custom)
            changed = updated != alias
            if not changed:
                return {}, None
            updated["last_update_time"] = model.now()
            dest["aliases"].append(updated)
            writes: dict[str, Any] = {ekey(eid): src, ekey(new_eid): dest}
            if (new_acc, new_name) != (old["mount_accessor"], old["name"]):
                writes[alias_key(old["mount_accessor"], old["name"])] = None
            writes[alias_key(new_acc, new_name)] = aid
            writes[alias_id_key(aid)] = new_eid
            return writes, {"canonical_id": new_eid, "id": aid}

        result: Record | None = await self.txn(keys, change)
        return result

    async def delete_alias(self, alias_id: str) -> None:
        async def plan() -> None:
            eid = await self.read(alias_id_key(alias_id))
            if not eid:
                return
            entity = await self.read(ekey(eid))
            alias = next((a for a in aliases_of(entity) if a["id"] == alias_id), None)
            if alias is None:
                keys = [alias_id_key(alias_id)]
            else:
                keys = [ekey(eid), alias_id_key(alias_id),
                        alias_key(alias["mount_accessor"], alias["name"])]

            def change(v: dict[str, Any]) -> tuple[dict[str, Any], None]:
                if v[alias_id_key(alias_id)] != eid:
                    raise Retry()
                if alias is None:
                    return {alias_id_key(alias_id): None}, None
                if v[ekey(eid)] != entity:
                    raise Retry()
                rec = model.clone(entity)
                rec["aliases"] = [a for a in rec["aliases"] if a["id"] != alias_id]
                writes: dict[str, Any] = {ekey(eid): rec, alias_id_key(alias_id): None}
                _drop_alias(writes, alias, keep_id_index=True)
                return writes, None

            await self.txn(keys, change)

        await self.planned(plan)

    # -- logins ------------------------------------------------------------------------------
    async def fetch_login_entity(
        self, mount_accessor: str, alias_name: str, alias_metadata: dict[str, str] | None,
    ) -> str:
        """Vault's CreateOrFetchEntity: the id of the entity owning the alias
        (`mount_accessor`, `alias_name`), made (entity `entity_<8 hex>` plus alias) when
        there is none; the alias's metadata is refreshed (unless None). PermissionDenied when the entity
        is disabled (the login fails with 403)."""
        if not alias_name:
            raise InternalError("missing name in alias")
        keep = alias_metadata is None  # token roles' entity_alias: the metadata stays
        meta = dict(alias_metadata) if alias_metadata else None

        async def plan() -> str:
            aid = await self.read(alias_key(mount_accessor, alias_name))
            if not aid:
                created = await self._create_alias(alias_name, mount_accessor, "", None)
                eid = created["canonical_id"]
                aid = created["id"]
            else:
                eid = await self.read(alias_id_key(aid))
                if not eid:
                    raise Retry()

            def change(v: dict[str, Any]) -> tuple[dict[str, Any], str]:
                rec = v[ekey(eid)]
                alias = next((a for a in aliases_of(rec) if a["id"] == aid), None)
                if rec is None or alias is None:
                    raise Retry()
                if rec.get("disabled"):
                    raise PermissionDenied()
                if keep or (alias.get("metadata") or None) == meta:
                    return {}, eid
                rec = model.clone(rec)
                for a in rec["aliases"]:
                    if a["id"] == aid:
                        a["metadata"] = meta
                        a["last_update_time"] = model.now()
                return {ekey(eid): rec}, eid

            result: str = await self.txn([ekey(eid)], change)
            return result

        entity_id: str = await self.planned(plan)
        return entity_id


def _drop_alias(writes: dict[str, Any], alias: Record, *, keep_id_index: bool = False) -> None:
    writes[alias_key(alias["mount_accessor"], alias["name"])] = None
    if not keep_id_index:
        writes[alias_id_key(alias["id"])] = None


def _check_clashes(to: Record, sources: list[Record]) -> None:
    """Vault's merge pre-check: aliases on one mount in the target and a source."""
    seen: dict[str, str] = {}
    clashes: list[str] = []
    for src in sources:
        for ta in aliases_of(to):
            for fa in aliases_of(src):
                other = seen.get(fa["mount_accessor"])
                if other is not None and other != src["id"]:
                    raise UserError(f"mount accessor {fa['mount_accessor']} found in multiple "
                                    "fromEntities, merge should be done with one fromEntity at "
                                    "a time")
                seen[fa["mount_accessor"]] = src["id"]
                if ta["mount_accessor"] == fa["mount_accessor"]:
                    clashes.append(
                        f"mountAccessor: {ta['mount_accessor']}, toEntity ID: {to['id']}, "
                        f"fromEntity ID: {src['id']}, conflicting toEntity alias ID: "
                        f"{ta['id']}, conflicting fromEntity alias ID: {fa['id']}")
    if clashes:
        lines = ["toEntity and at least one fromEntity have aliases with the same mount "
                 "accessor, repeat the merge request specifying exactly one fromEntity, "
                 "clashes: ", *clashes]
        raise UserError(f"{len(lines)} errors occurred:\n"
                        + "".join(f"\t* {line}\n" for line in lines) + "\n")
