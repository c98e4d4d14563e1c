"""`IdentityStore`: the node's identity store (one per node, like the token store).

Reads come from the in-memory view (transit/identity/cache.py), loaded once and kept fresh
by the invalidation feed (`invalidate`); writes are transactions over storage
(transit/identity/txn.py, entities.py, groups.py). What the request pipeline asks of it:
`context(entity_id)` — the entity's identity policies and what ACL templating needs,
memoised per cache generation — and `login_entity`, what a login does to identity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from transit.identity.entities import MountResolver
from transit.identity.groups import GroupWrites
from transit.identity.model import Record

_CONTEXT_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class IdentityContext:
    """An entity as a request sees it: identity policies and the ACL templating values."""

    # What the entity's ACL is cached by: its id and the stamps of the records it is made
    # of (the entity, every group containing it). Unchanged while those are, whatever else
    # changes in the store; never reused for other contents.
    key: tuple[Any, ...]
    generation: int  # the cache generation this context was computed at
    entity_id: str
    disabled: bool
    policies: tuple[str, ...]  # identity policies: entity ∪ every group's (sorted)
    entity: Record
    groups: tuple[Record, ...]  # every group containing the entity, direct or inherited


class IdentityStore(GroupWrites):
    def __init__(self, storage: Any, mounts: MountResolver | None = None) -> None:
        super().__init__(storage)
        if mounts is not None:
            self.mounts = mounts
        self._contexts: dict[str, IdentityContext] = {}

    async def context(self, entity_id: str) -> IdentityContext | None:
        """The entity's context, or None when no such entity exists (deleted)."""
        view = await self.view()
        ctx = self._contexts.get(entity_id)
        if ctx is not None and ctx.generation == view.generation:
            return ctx
        entity = view.entities.get(entity_id)
        if entity is None:
            return None
        direct = view.direct_groups(entity_id)
        group_ids = direct + [g for g in view.ancestors(direct) if g not in direct]
        groups = tuple(view.groups[g] for g in group_ids if g in view.groups)
        policies: set[str] = set(entity.get("policies") or [])
        for g in groups:
            policies.update(g.get("policies") or [])
        stamps = view.stamps
        key = (entity_id, stamps.get(entity_id, 0),
               *sorted((g["id"], stamps.get(g["id"], 0)) for g in groups))
        if ctx is not None and ctx.key == key:
            ctx = dataclasses.replace(ctx, generation=view.generation)
        else:
            ctx = IdentityContext(key, view.generation, entity_id,
                                  bool(entity.get("disabled")), tuple(sorted(policies)),
                                  entity, groups)
        if len(self._contexts) >= _CONTEXT_LIMIT:
            self._contexts.clear()
        self._contexts[entity_id] = ctx
        return ctx

    async def identity_policies(self, entity_id: str) -> list[str]:
        ctx = await self.context(entity_id)
        return list(ctx.policies) if ctx is not None else []

    async def login_entity(
        self, mount_accessor: str, mount_type: str, alias_name: str,
        alias_metadata: dict[str, str] | None, group_aliases: list[str] | None = None,
    ) -> tuple[str, list[str]]:
        """What a login does to identity (spec auth-api §6.6): create or reuse the entity
        owning alias (`mount_accessor`, `alias_name`), refresh the alias's metadata, and —
        when the method asserts group names (`group_aliases`, e.g. a JWT groups claim) —
        join/leave the external groups aliased on this mount. Returns (entity id, identity
        policies, sorted). Raises PermissionDenied (403) when the entity is disabled.
        `mount_type` is accepted for Vault's signature; the mount is known by its accessor."""
        entity_id = await self.fetch_login_entity(mount_accessor, alias_name, alias_metadata)
        if group_aliases is not None:
            await self.sync_external_groups(entity_id, mount_accessor, group_aliases)
        return entity_id, await self.identity_policies(entity_id)

    def unload(self) -> None:
        super().unload()
        self._contexts.clear()
