"""The in-memory view of the identity store (Vault keeps the same in its MemDB).

Every record (entity, group) is indexed here as it is stored; the derived indexes (names,
alias factors, group membership, parent groups) are kept up to date incrementally by
`set_entity` / `set_group`. Reads, identity policies and ACL templating are served from
here; writes never trust it (transit/identity/store.py reads storage for them).
`generation` changes whenever anything here does; `stamps` say when each record last did
(a new load's generations stay above every earlier one: transit/identity/txn.py).
"""

from __future__ import annotations

from transit.identity.model import Record


class IdentityCache:
    __slots__ = ("entities", "entity_names", "aliases", "alias_factors", "groups",
                 "group_names", "group_aliases", "group_alias_factors", "member_of",
                 "parents", "stamps", "generation")

    def __init__(self) -> None:
        self.entities: dict[str, Record] = {}
        self.entity_names: dict[str, str] = {}  # lower-cased name -> entity id
        self.aliases: dict[str, str] = {}  # alias id -> entity id
        self.alias_factors: dict[tuple[str, str], str] = {}  # (accessor, name) -> alias id
        self.groups: dict[str, Record] = {}
        self.group_names: dict[str, str] = {}
        self.group_aliases: dict[str, str] = {}  # group alias id -> group id
        self.group_alias_factors: dict[tuple[str, str], str] = {}
        self.member_of: dict[str, set[str]] = {}  # entity id -> ids of groups listing it
        self.parents: dict[str, set[str]] = {}  # group id -> ids of groups listing it
        self.stamps: dict[str, int] = {}  # record id -> the generation it last changed at
        self.generation = 0

    # -- changes -----------------------------------------------------------------------------
    def set_entity(self, entity_id: str, record: Record | None) -> None:
        old = self.entities.pop(entity_id, None)
        if old is not None:
            if self.entity_names.get(old["name"].lower()) == entity_id:
                del self.entity_names[old["name"].lower()]
            for a in old.get("aliases") or []:
                if self.aliases.get(a["id"]) == entity_id:
                    del self.aliases[a["id"]]
                key = (a["mount_accessor"], a["name"])
                if self.alias_factors.get(key) == a["id"]:
                    del self.alias_factors[key]
        if record is not None:
            self.entities[entity_id] = record
            self.entity_names[record["name"].lower()] = entity_id
            for a in record.get("aliases") or []:
                self.aliases[a["id"]] = entity_id
                self.alias_factors[(a["mount_accessor"], a["name"])] = a["id"]
        self.generation += 1
        if record is None:
            self.stamps.pop(entity_id, None)
        else:
            self.stamps[entity_id] = self.generation

    def set_group(self, group_id: str, record: Record | None) -> None:
        old = self.groups.pop(group_id, None)
        if old is not None:
            if self.group_names.get(old["name"].lower()) == group_id:
                del self.group_names[old["name"].lower()]
            alias = old.get("alias")
            if alias:
                self.group_aliases.pop(alias["id"], None)
                key = (alias["mount_accessor"], alias["name"])
                if self.group_alias_factors.get(key) == alias["id"]:
                    del self.group_alias_factors[key]
            for eid in old.get("member_entity_ids") or []:
                self.member_of.get(eid, set()).discard(group_id)
            for gid in old.get("member_group_ids") or []:
                self.parents.get(gid, set()).discard(group_id)
        if record is not None:
            self.groups[group_id] = record
            self.group_names[record["name"].lower()] = group_id
            alias = record.get("alias")
            if alias:
                self.group_aliases[alias["id"]] = group_id
                self.group_alias_factors[(alias["mount_accessor"], alias["name"])] = alias["id"]
            for eid in record.get("member_entity_ids") or []:
                self.member_of.setdefault(eid, set()).add(group_id)
            for gid in record.get("member_group_ids") or []:
                self.parents.setdefault(gid, set()).add(group_id)
        self.generation += 1
        if record is None:
            self.stamps.pop(group_id, None)
        else:
            self.stamps[group_id] = self.generation

    # -- queries -----------------------------------------------------------------------------
    def entity_by_name(self, name: str) -> Record | None:
        eid = self.entity_names.get(name.lower())
        return self.entities.get(eid) if eid else None

    def alias(self, alias_id: str) -> tuple[Record, Record] | None:
        """(alias, its entity) for an alias id."""
        eid = self.aliases.get(alias_id)
        entity = self.entities.get(eid) if eid else None
        if entity is None:
            return None
        for a in entity.get("aliases") or []:
            if a["id"] == alias_id:
                return a, entity
        return None

    def alias_by_factors(self, accessor: str, name: str) -> tuple[Record, Record] | None:
        aid = self.alias_factors.get((accessor, name))
        return self.alias(aid) if aid else None

    def group_by_name(self, name: str) -> Record | None:
        gid = self.group_names.get(name.lower())
        return self.groups.get(gid) if gid else None

    def group_alias(self, alias_id: str) -> tuple[Record, Record] | None:
        gid = self.group_aliases.get(alias_id)
        group = self.groups.get(gid) if gid else None
        if group is None or not group.get("alias"):
            return None
        return group["alias"], group

    def group_alias_by_factors(self, accessor: str, name: str) -> tuple[Record, Record] | None:
        aid = self.group_alias_factors.get((accessor, name))
        return self.group_alias(aid) if aid else None

    def direct_groups(self, entity_id: str) -> list[str]:
        return sorted(g for g in self.member_of.get(entity_id, ()) if g in self.groups)

    def parent_groups(self, group_id: str) -> list[str]:
        return sorted(g for g in self.parents.get(group_id, ()) if g in self.groups)

    def ancestors(self, group_ids: list[str]) -> list[str]:
        """Every group above `group_ids` (not themselves), each once; cycles are harmless."""
        seen = set(group_ids)
        out: list[str] = []
        todo = list(group_ids)
        while todo:
            for parent in self.parent_groups(todo.pop()):
                if parent not in seen:
                    seen.add(parent)
                    out.append(parent)
                    todo.append(parent)
        return sorted(out)

    def descendants(self, group_id: str) -> set[str]:
        """Every group below `group_id` through member_group_ids (for cycle checks)."""
        seen: set[str] = set()
        todo = [group_id]
        while todo:
            g = self.groups.get(todo.pop())
            for child in (g or {}).get("member_group_ids") or []:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen
