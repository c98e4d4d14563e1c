"""The identity store in-process over in-memory storage: what a login does to identity
(spec auth-api §6.6), identity policies (§6.7), and that two stores over one storage (two
worker processes, or two nodes) never break uniqueness and converge by invalidation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from transit.errors import PermissionDenied, UserError
from transit.identity.store import IdentityStore
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend

MOUNTS = {"auth_userpass_1": ("auth/userpass/", "userpass", False),
          "auth_jwt_1": ("auth/jwt/", "jwt", False),
          "auth_local_1": ("auth/local/", "userpass", True)}


def make(backend: Any | None = None) -> tuple[IdentityStore, Any]:
    backend = InmemBackend() if backend is None else backend
    return IdentityStore(StorageView(backend, "sys/identity/"), mounts=MOUNTS.get), backend


def test_login_creates_then_reuses_entity_and_refreshes_alias_metadata() -> None:
    async def go() -> None:
        s, _ = make()
        eid, pols = await s.login_entity("auth_userpass_1", "userpass", "alice", {"a": "1"})
        assert pols == []
        view = await s.view()
        entity = view.entities[eid]
        assert entity["name"].startswith("entity_") and len(entity["name"]) == 15
        assert [a["name"] for a in entity["aliases"]] == ["alice"]
        assert entity["aliases"][0]["metadata"] == {"a": "1"}
        again, _ = await s.login_entity("auth_userpass_1", "userpass", "alice", {"a": "2"})
        assert again == eid
        assert (await s.view()).entities[eid]["aliases"][0]["metadata"] == {"a": "2"}
        # another mount: another entity (aliases are per mount)
        other, _ = await s.login_entity("auth_jwt_1", "jwt", "alice", {})
        assert other != eid

    asyncio.run(go())


def test_login_uses_a_pre_created_alias_and_refuses_a_disabled_entity() -> None:
    async def go() -> None:
        s, _ = make()
        created = await s.upsert_entity("", "svc", policies=["p1"])
        assert created is not None
        eid = created["id"]
        await s.upsert_alias("", "svc-login", "auth_userpass_1", eid, {})
        got, pols = await s.login_entity("auth_userpass_1", "userpass", "svc-login", None)
        assert (got, pols) == (eid, ["p1"])
        await s.upsert_entity(eid, "", disabled=True)
        with pytest.raises(PermissionDenied):
            await s.login_entity("auth_userpass_1", "userpass", "svc-login", {})

    asyncio.run(go())


def test_identity_policies_union_direct_parent_and_external_groups() -> None:
    async def go() -> None:
        s, _ = make()
        eid, _ = await s.login_entity("auth_jwt_1", "jwt", "bob", {})
        await s.upsert_entity(eid, "", policies=["ent"])
        child = await s.upsert_group("", "child", policies=["gchild"], member_entity_ids=[eid])
        assert child is not None
        await s.upsert_group("", "parent", policies=["gparent"],
                             member_group_ids=[child["id"]])
        ext = await s.upsert_group("", "ext", group_type="external", policies=["gext"])
        assert ext is not None
        await s.upsert_group_alias("", "admins", "auth_jwt_1", ext["id"])
        _, pols = await s.login_entity("auth_jwt_1", "jwt", "bob", {}, group_aliases=["admins"])
        assert pols == ["ent", "gchild", "gext", "gparent"]
        # no longer asserted: the entity leaves the external group on its next login
        _, pols = await s.login_entity("auth_jwt_1", "jwt", "bob", {}, group_aliases=[])
        assert pols == ["ent", "gchild", "gparent"]
        ctx = await s.context(eid)
        assert ctx is not None and {g["name"] for g in ctx.groups} == {"child", "parent"}

    asyncio.run(go())


def test_names_are_unique_across_two_stores_on_one_storage() -> None:
    async def go() -> None:
        a, backend = make()
        b, _ = make(backend)
        results = await asyncio.gather(
            *(st.upsert_entity("", "same") for st in (a, b, a, b)), return_exceptions=True)
        created = [r for r in results if isinstance(r, dict)]
        # the first creates; the others find the name taken and update that entity (204)
        assert len(created) == 1
        assert all(r is None or isinstance(r, dict) for r in results)
        ids = {e["id"] for e in (await make(backend)[0].view()).entities.values()}
        assert len(ids) == 1
        # concurrent first logins of one alias through two stores: one entity
        logins = await asyncio.gather(*(st.login_entity("auth_userpass_1", "userpass", "c", {})
                                        for st in (a, b, a, b)))
        assert len({eid for eid, _ in logins}) == 1

    asyncio.run(go())


def test_invalidation_keeps_another_store_fresh() -> None:
    async def go() -> None:
        a, backend = make()
        b, _ = make(backend)
        created = await a.upsert_entity("", "e1", policies=["x"])
        assert created is not None
        eid = created["id"]
        assert await b.identity_policies(eid) == ["x"]  # b loads everything on first use
        await a.upsert_entity(eid, "", policies=["y"])
        assert await b.identity_policies(eid) == ["x"]  # cached until told
        await b.invalidate("entity/" + eid)
        assert await b.identity_policies(eid) == ["y"]
        await a.delete_entity(eid)
        await b.invalidate("entity/" + eid)
        assert await b.context(eid) is None

    asyncio.run(go())


def test_delete_entity_leaves_groups_and_frees_name_and_aliases() -> None:
    async def go() -> None:
        s, backend = make()
        created = await s.upsert_entity("", "gone")
        assert created is not None
        eid = created["id"]
        await s.upsert_alias("", "al", "auth_userpass_1", eid, {})
        g = await s.upsert_group("", "grp", member_entity_ids=[eid])
        assert g is not None
        await s.delete_entity(eid)
        view = await s.view()
        assert view.groups[g["id"]]["member_entity_ids"] == []
        assert view.alias_by_factors("auth_userpass_1", "al") is None
        # name and alias are free again; the stored index has no leftovers
        assert await s.upsert_entity("", "gone") is not None
        keys = await backend.list("sys/identity/index/alias/")
        assert keys == []

    asyncio.run(go())


def test_merge_moves_aliases_and_deletes_the_source() -> None:
    async def go() -> None:
        s, _ = make()
        to, _ = await s.login_entity("auth_userpass_1", "userpass", "u", {})
        src, _ = await s.login_entity("auth_jwt_1", "jwt", "u", {})
        clash, _ = await s.login_entity("auth_userpass_1", "userpass", "v", {})
        with pytest.raises(UserError, match="2 errors occurred"):
            await s.merge(to, [clash], [])
        await s.merge(to, [src], [])
        view = await s.view()
        assert src not in view.entities
        assert view.entities[to]["merged_entity_ids"] == [src]
        moved = view.alias_by_factors("auth_jwt_1", "u")
        assert moved is not None and moved[1]["id"] == to
        assert moved[0]["merged_from_canonical_ids"] == [src]
        assert (await s.login_entity("auth_jwt_1", "jwt", "u", {}))[0] == to
        # keep the target's alias: the source's clashing alias is dropped
        keep = view.alias_by_factors("auth_userpass_1", "u")
        assert keep is not None
        await s.merge(to, [clash], [keep[0]["id"]])
        assert (await s.view()).alias_by_factors("auth_userpass_1", "v") is None

    asyncio.run(go())


def test_group_cycles_external_members_and_local_mount_aliases_are_refused() -> None:
    async def go() -> None:
        s, _ = make()
        a = await s.upsert_group("", "a")
        assert a is not None
        b = await s.upsert_group("", "b", member_group_ids=[a["id"]])
        assert b is not None
        with pytest.raises(UserError, match="cyclic relationship"):
            await s.upsert_group(a["id"], "", member_group_ids=[b["id"]])
        ext = await s.upsert_group("", "x", group_type="external")
        assert ext is not None
        with pytest.raises(UserError, match="member entities can't be set manually"):
            await s.upsert_group(ext["id"], "", member_entity_ids=[])
        with pytest.raises(UserError, match="is a local mount"):
            await s.upsert_group_alias("", "n", "auth_local_1", ext["id"])
        with pytest.raises(UserError, match="group type cannot be changed"):
            await s.upsert_group(ext["id"], "", group_type="internal")

    asyncio.run(go())


def test_context_keys_change_only_with_the_entity_and_its_groups() -> None:
    async def go() -> None:
        s, _ = make()
        e1 = (await s.upsert_entity("", "k1"))["id"]  # type: ignore[index]
        e2 = (await s.upsert_entity("", "k2"))["id"]  # type: ignore[index]
        first = await s.context(e1)
        await s.upsert_entity(e2, "", policies=["x"])  # another entity: e1's key stays
        again = await s.context(e1)
        assert first is not None and again is not None and again.key == first.key
        g = await s.upsert_group("", "kg", member_entity_ids=[e1])
        joined = await s.context(e1)
        assert joined is not None and joined.key != first.key
        s.unload()  # reloaded: never a key an earlier state had
        reloaded = await s.context(e1)
        assert reloaded is not None and reloaded.key not in (first.key, joined.key)
        assert g is not None and reloaded.groups[0]["id"] == g["id"]

    asyncio.run(go())
