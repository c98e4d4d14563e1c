"""The identity engine, always mounted at `identity/` (spec auth-api §6; Vault's
vault/identity_store*.go paths). This is its one route table; handlers live in
`entities.py` and `groups.py` and take the node's `IdentityStore` first — the engine's one
port. Identity paths have no existence check: every POST is an `update` for the ACL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from transit.engines.framework import Engine, Handler, Route
from transit.engines.identity import entities as ent
from transit.engines.identity import groups as grp
from transit.fields import FieldData
from transit.identity.store import IdentityStore
from transit.logical import DELETE, LIST, READ, UPDATE, Request

IdentityHandler = Callable[[IdentityStore, Request, FieldData], Awaitable[Any]]
ID = r"(?P<id>\w(?:(?:[\w\-.]+)?\w)?)"  # Vault's GenericNameRegex("id")


class IdentityBackend(Engine):
    mount_type = "identity"

    def __init__(self, store: IdentityStore) -> None:
        self.store = store

        def h(fn: IdentityHandler) -> Handler:
            return partial(fn, store)

        super().__init__([
            Route(r"entity", {UPDATE: h(ent.write_entity)}, ent.ENTITY_FIELDS),
            Route(r"entity/name/?", {LIST: h(ent.list_entity_names)}, {}),
            Route(r"entity/name/(?P<name>.+)",
                  {UPDATE: h(ent.write_entity), READ: h(ent.read_entity_name),
                   DELETE: h(ent.delete_entity_name)}, ent.ENTITY_FIELDS),
            Route(r"entity/id/?", {LIST: h(ent.list_entity_ids)}, {}),
            Route(f"entity/id/{ID}",
                  {UPDATE: h(ent.write_entity), READ: h(ent.read_entity_id),
                   DELETE: h(ent.delete_entity_id)}, ent.ENTITY_FIELDS),
            Route(r"entity/batch-delete", {UPDATE: h(ent.batch_delete)},
                  ent.BATCH_DELETE_FIELDS),
            Route(r"entity/merge/?", {UPDATE: h(ent.merge)}, ent.MERGE_FIELDS),
            Route(r"entity-alias", {UPDATE: h(ent.write_alias)}, ent.ALIAS_FIELDS),
            Route(r"entity-alias/id/?", {LIST: h(ent.list_aliases)}, {}),
            Route(f"entity-alias/id/{ID}",
                  {UPDATE: h(ent.write_alias), READ: h(ent.read_alias),
                   DELETE: h(ent.delete_alias)}, ent.ALIAS_FIELDS),
            Route(r"group", {UPDATE: h(grp.write_group)}, grp.GROUP_FIELDS),
            Route(r"group/id/?", {LIST: h(grp.list_group_ids)}, {}),
            Route(f"group/id/{ID}",
                  {UPDATE: h(grp.write_group_id), READ: h(grp.read_group_id),
                   DELETE: h(grp.delete_group_id)}, grp.GROUP_FIELDS),
            Route(r"group/name/?", {LIST: h(grp.list_group_names)}, {}),
            Route(r"group/name/(?P<name>.+)",
                  {UPDATE: h(grp.write_group_name), READ: h(grp.read_group_name),
                   DELETE: h(grp.delete_group_name)}, grp.GROUP_FIELDS),
            Route(r"group-alias", {UPDATE: h(grp.write_group_alias)}, grp.GROUP_ALIAS_FIELDS),
            Route(r"group-alias/id/?", {LIST: h(grp.list_group_aliases)}, {}),
            Route(f"group-alias/id/{ID}",
                  {UPDATE: h(grp.write_group_alias), READ: h(grp.read_group_alias),
                   DELETE: h(grp.delete_group_alias)}, grp.GROUP_ALIAS_FIELDS),
            Route(r"lookup/entity", {UPDATE: h(grp.lookup_entity)}, grp.LOOKUP_FIELDS),
            Route(r"lookup/group", {UPDATE: h(grp.lookup_group)}, grp.LOOKUP_FIELDS),
        ])

    async def invalidate(self, key: str) -> None:
        await self.store.invalidate(key)

    async def invalidate_all(self) -> None:
        await self.store.invalidate(None)
