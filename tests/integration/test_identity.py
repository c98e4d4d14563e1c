"""The identity engine over real HTTP with real hvac (spec auth-api §6): every
`client.secrets.identity` method for entities, entity aliases, groups, group aliases and
lookups; malformed input on every write path; identity policies and ACL templating for a
token that carries an entity (via a token role's `entity_alias`)."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import hvac
import pytest
import requests

from tests.helpers import ServerProcess

FALLBACK_TOKEN_ACCESSOR = "auth_token_00000000"


def _n(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ident(client: hvac.Client) -> Any:
    return client.secrets.identity


@pytest.fixture(scope="module")
def accessor(server: ServerProcess) -> str:
    """The token auth mount's accessor (from sys/auth where it exists)."""
    r = server.request("GET", "sys/auth")
    if r.status_code == 200:
        return str(r.json()["data"]["token/"]["accessor"])
    return FALLBACK_TOKEN_ACCESSOR


def _errors(r: requests.Response) -> list[str]:
    return list(r.json()["errors"])


# -- entities ------------------------------------------------------------------------------


def test_entity_crud_with_hvac(ident: Any) -> None:
    name = _n("ent")
    created = ident.create_or_update_entity(name=name, metadata={"app": "a1"},
                                            policies=["p1", "p2"])
    assert created["data"]["name"] == name and created["data"]["aliases"] is None
    eid = created["data"]["id"]
    data = ident.read_entity(eid)["data"]
    assert data["metadata"] == {"app": "a1"} and data["policies"] == ["p1", "p2"]
    assert data["namespace_id"] == "root" and data["disabled"] is False
    assert data["aliases"] == [] and data["group_ids"] == [] and data["merged_entity_ids"] is None
    # update by id (204) and by name
    assert ident.update_entity(eid, policies=["p3"]).status_code == 204
    assert ident.create_or_update_entity(name=name, entity_id=eid,
                                         disabled=True).status_code == 204
    by_name = ident.read_entity_by_name(name)["data"]
    assert by_name["id"] == eid and by_name["policies"] == ["p3"] and by_name["disabled"]
    # name lookups ignore case, as Vault's
    assert ident.read_entity_by_name(name.upper())["data"]["id"] == eid
    listed = ident.list_entities()["data"]
    assert eid in listed["keys"] and listed["key_info"][eid]["name"] == name
    assert eid in ident.list_entities(method="GET")["data"]["keys"]
    assert name in ident.list_entities_by_name()["data"]["keys"]
    assert ident.delete_entity(eid).status_code == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_entity(eid)
    assert ident.delete_entity(eid).status_code == 204  # deleting nothing is fine


def test_entity_by_name_creates_then_updates(ident: Any) -> None:
    name = _n("byname")
    first = ident.create_or_update_entity_by_name(name=name, policies=["a"])
    assert first["data"]["name"] == name
    assert ident.create_or_update_entity_by_name(name=name, metadata={"k": "v"}).status_code == 204
    assert ident.read_entity_by_name(name)["data"]["metadata"] == {"k": "v"}
    assert ident.delete_entity_by_name(name).status_code == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_entity_by_name(name)


def test_entity_batch_delete_and_name_conflicts(server: ServerProcess, ident: Any) -> None:
    a = ident.create_or_update_entity(name=_n("bd"))["data"]["id"]
    b = ident.create_or_update_entity(name=_n("bd"))["data"]
    r = server.request("POST", "identity/entity/batch-delete",
                       json={"entity_ids": [a, "unknown-id"]})
    assert r.status_code == 204
    assert server.request("GET", f"identity/entity/id/{a}").status_code == 404
    # renaming onto a taken name
    r = server.request("POST", f"identity/entity/id/{b['id']}", json={"name": "x-" + a})
    assert r.status_code == 204
    c = ident.create_or_update_entity(name=_n("bd"))["data"]
    r = server.request("POST", f"identity/entity/id/{c['id']}", json={"name": "x-" + a})
    assert (r.status_code, _errors(r)) == (400, ["entity name is already in use"])


# -- entity aliases ----------------------------------------------------------------------------


def test_entity_alias_crud_with_hvac(ident: Any, accessor: str) -> None:
    eid = ident.create_or_update_entity(name=_n("al"))["data"]["id"]
    name = _n("alias")
    made = ident.create_or_update_entity_alias(name=name, canonical_id=eid,
                                               mount_accessor=accessor)["data"]
    assert made["canonical_id"] == eid
    aid = made["id"]
    alias = ident.read_entity_alias(aid)["data"]
    assert alias["mount_accessor"] == accessor and alias["name"] == name
    assert alias["mount_type"] == "token" and alias["mount_path"] == "auth/token/"
    assert alias["namespace_id"] == "root" and alias["local"] is False
    entity = ident.read_entity(eid)["data"]
    assert [a["id"] for a in entity["aliases"]] == [aid]
    assert ident.list_entities()["data"]["key_info"][eid]["aliases"][0]["id"] == aid
    renamed = _n("alias")
    out = ident.update_entity_alias(aid, name=renamed, canonical_id=eid,
                                    mount_accessor=accessor)
    assert out["data"] == {"canonical_id": eid, "id": aid}
    listed = ident.list_entity_aliases()["data"]
    assert listed["key_info"][aid]["name"] == renamed
    assert ident.lookup_entity(alias_id=aid)["data"]["id"] == eid
    assert ident.lookup_entity(alias_name=renamed, alias_mount_accessor=accessor)[
        "data"]["id"] == eid
    # one alias per mount per entity
    with pytest.raises(hvac.exceptions.InvalidRequest,
                       match="Alias already exists for requested entity and mount accessor"):
        ident.create_or_update_entity_alias(name=_n("other"), canonical_id=eid,
                                            mount_accessor=accessor)
    assert ident.delete_entity_alias(aid).status_code == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_entity_alias(aid)


def test_entity_alias_without_canonical_id_makes_an_entity(server: ServerProcess,
                                                           accessor: str) -> None:
    name = _n("solo")
    r = server.request("POST", "identity/entity-alias",
                       json={"name": name, "mount_accessor": accessor,
                             "custom_metadata": {"team": "blue"}})
    assert r.status_code == 200, r.text
    eid, aid = r.json()["data"]["canonical_id"], r.json()["data"]["id"]
    entity = server.request("GET", f"identity/entity/id/{eid}").json()["data"]
    assert entity["name"].startswith("entity_")
    assert entity["aliases"][0]["custom_metadata"] == {"team": "blue"}
    # re-posting the same is a no-op (204); leaving custom_metadata out clears it (200)
    same = {"name": name, "mount_accessor": accessor, "custom_metadata": {"team": "blue"}}
    assert server.request("POST", "identity/entity-alias", json=same).status_code == 204
    r = server.request("POST", "identity/entity-alias",
                       json={"name": name, "mount_accessor": accessor})
    assert r.status_code == 200 and r.json()["data"] == {"canonical_id": eid, "id": aid}
    alias = server.request("GET", f"identity/entity-alias/id/{aid}").json()["data"]
    assert alias["custom_metadata"] == {}


def test_merge_entities_with_hvac(ident: Any, accessor: str) -> None:
    to = ident.create_or_update_entity(name=_n("to"))["data"]["id"]
    src = ident.create_or_update_entity(name=_n("from"))["data"]["id"]
    aid = ident.create_or_update_entity_alias(name=_n("m"), canonical_id=src,
                                              mount_accessor=accessor)["data"]["id"]
    gid = ident.create_or_update_group(name=_n("mg"), member_entity_ids=[src])["data"]["id"]
    assert ident.merge_entities(from_entity_ids=[src], to_entity_id=to).status_code == 204
    merged = ident.read_entity(to)["data"]
    assert merged["merged_entity_ids"] == [src]
    assert [a["id"] for a in merged["aliases"]] == [aid]
    assert merged["aliases"][0]["merged_from_canonical_ids"] == [src]
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_entity(src)
    assert ident.read_group(gid)["data"]["member_entity_ids"] is None
    # a clash on one mount
    other = ident.create_or_update_entity(name=_n("clash"))["data"]["id"]
    ident.create_or_update_entity_alias(name=_n("c"), canonical_id=other,
                                        mount_accessor=accessor)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="same mount accessor"):
        ident.merge_entities(from_entity_ids=[other], to_entity_id=to)


# -- groups ---------------------------------------------------------------------------------------


def test_group_crud_members_and_parents_with_hvac(ident: Any) -> None:
    eid = ident.create_or_update_entity(name=_n("gm"))["data"]["id"]
    child = ident.create_or_update_group(name=_n("child"), policies=["cp"],
                                         member_entity_ids=[eid], metadata={"t": "1"})["data"]
    parent_name = _n("parent")
    parent = ident.create_or_update_group(name=parent_name,
                                          member_group_ids=[child["id"]])["data"]
    got = ident.read_group(child["id"])["data"]
    assert got["member_entity_ids"] == [eid] and got["parent_group_ids"] == [parent["id"]]
    assert got["type"] == "internal" and got["alias"] == {} and got["metadata"] == {"t": "1"}
    assert ident.read_group_by_name(parent_name)["data"]["member_group_ids"] == [child["id"]]
    entity = ident.read_entity(eid)["data"]
    assert entity["direct_group_ids"] == [child["id"]]
    assert entity["inherited_group_ids"] == [parent["id"]]
    # update (204); hvac sends member lists as null, which empties them, as Vault does
    assert ident.update_group(child["id"], name=child["name"],
                              policies=["cp2"]).status_code == 204
    assert ident.read_group(child["id"])["data"]["member_entity_ids"] is None
    listed = ident.list_groups()["data"]
    assert listed["key_info"][parent["id"]]["name"] == parent_name
    assert parent_name in ident.list_groups_by_name()["data"]["keys"]
    assert ident.lookup_group(name=parent_name)["data"]["id"] == parent["id"]
    assert ident.lookup_group(name=_n("none")).status_code == 204
    assert ident.delete_group(child["id"]).status_code == 204
    assert ident.read_group(parent["id"])["data"]["member_group_ids"] is None


def test_group_by_name_and_external_group_aliases_with_hvac(ident: Any, accessor: str) -> None:
    name = _n("ext")
    made = ident.create_or_update_group_by_name(name=name, group_type="external",
                                                policies=["ep"])
    gid = made["data"]["id"]
    assert ident.create_or_update_group_by_name(name=name, group_type="external",
                                                metadata={"a": "b"}).status_code == 204
    alias_name = _n("ga")
    ga = ident.create_or_update_group_alias(name=alias_name, mount_accessor=accessor,
                                            canonical_id=gid)["data"]
    assert ga["canonical_id"] == gid
    read = ident.read_group_alias(ga["id"])["data"]
    assert read["name"] == alias_name and read["mount_type"] == "token"
    assert ident.read_group(gid)["data"]["alias"]["id"] == ga["id"]
    assert ga["id"] in ident.list_group_aliases()["data"]["keys"]
    assert ident.lookup_group(alias_id=ga["id"])["data"]["id"] == gid
    assert ident.lookup_group(alias_name=alias_name, alias_mount_accessor=accessor)[
        "data"]["name"] == name
    renamed = _n("ga")
    ident.update_group_alias(ga["id"], name=renamed, mount_accessor=accessor, canonical_id=gid)
    assert ident.read_group_alias(ga["id"])["data"]["name"] == renamed
    assert ident.delete_group_alias(ga["id"]).status_code == 204
    assert ident.read_group(gid)["data"]["alias"] == {}
    assert ident.delete_group_by_name(name).status_code == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_group_by_name(name)


# -- malformed input on every write path -----------------------------------------------------

BAD_WRITES: list[tuple[str, Any, int, str]] = [
    ("entity", {"policies": ["ROOT"]}, 400, "policies cannot contain root"),
    ("entity", {"metadata": [1]}, 400, 'invalid key pair "1"'),
    ("entity", {"metadata": {"a": {"b": 1}}}, 400, "error converting input"),
    ("entity", {"disabled": "maybe"}, 400, "Field validation failed"),
    ("entity", {"id": "nope"}, 400, "entity not found from id"),
    ("entity", ["not", "an", "object"], 400, "failed to parse JSON input"),
    ("entity/id/nope", {"name": "x"}, 400, "entity not found from id"),
    ("entity/name/n-{u}", {"policies": [{"a": 1}]}, 400, "error converting input"),
    ("entity/batch-delete", {}, 400, "missing entity ids to delete"),
    ("entity/merge", {}, 400, "missing entity id to merge to"),
    ("entity/merge", {"to_entity_id": "x"}, 400, "missing entity ids to merge from"),
    ("entity/merge", {"to_entity_id": "x", "from_entity_ids": ["y"]}, 400,
     "entity id to merge to is invalid"),
    ("entity-alias", {}, 400, "'id' or 'mount_accessor' and 'name' must be provided"),
    ("entity-alias", {"name": "a", "mount_accessor": "nope"}, 400,
     'invalid mount accessor "nope"'),
    ("entity-alias", {"name": "a", "mount_accessor": "{acc}", "canonical_id": "nope"}, 400,
     "invalid canonical ID"),
    ("entity-alias", {"name": "a-{u}", "mount_accessor": "{acc}",
                      "custom_metadata": {"k": ""}}, 500,
     "custom_metadata validation failed: length of value"),
    ("entity-alias", {"name": "a", "mount_accessor": "{acc}", "custom_metadata": "x"}, 400,
     'invalid key pair "x"'),
    ("entity-alias/id/nope", {"name": "zz"}, 400, "invalid alias ID provided"),
    ("group", {"type": "x"}, 400, 'invalid group type "x"'),
    ("group", {"name": "g-{u}", "policies": "a,root"}, 400, "policies cannot contain root"),
    ("group", {"name": "g-{u}", "member_entity_ids": ["nope"]}, 500, 'invalid entity ID "nope"'),
    ("group", {"name": "g-{u}", "member_group_ids": ["nope"]}, 500,
     'invalid member group ID "nope"'),
    ("group", {"name": "g-{u}", "type": "external", "member_entity_ids": ["x"]}, 400,
     "member entities can't be set manually for external groups"),
    ("group", {"name": "g-{u}", "type": "external", "member_group_ids": []}, 400,
     "member groups can't be set for external groups"),
    ("group", {"name": "g-{u}", "metadata": "nokey"}, 400, 'invalid key pair "nokey"'),
    ("group/id/nope", {"name": "q"}, 400, "invalid group ID"),
    ("group/name/g-{u}", {"member_entity_ids": [{}]}, 400, "error converting input"),
    ("group-alias", {}, 400, "missing alias name"),
    ("group-alias", {"name": "x"}, 400, "missing mount_accessor"),
    ("group-alias", {"name": "x", "mount_accessor": "nope"}, 400,
     'invalid mount accessor "nope"'),
    ("group-alias", {"name": "x", "mount_accessor": "{acc}", "canonical_id": "nope"}, 400,
     "invalid group ID given in 'canonical_id'"),
    ("group-alias/id/nope", {"name": "y"}, 400, "invalid group alias ID"),
    ("lookup/entity", {}, 400, "query parameter not supplied"),
    ("lookup/entity", {"name": "a", "id": "b"}, 400, "query parameter conflict"),
    ("lookup/entity", {"alias_name": "x"}, 400,
     "both 'alias_name' and 'alias_mount_accessor' needs to be set"),
    ("lookup/group", {"alias_mount_accessor": "x"}, 400,
     "both 'alias_name' and 'alias_mount_accessor' needs to be set"),
    ("lookup/group", {"id": "a", "alias_id": "b"}, 400, "query parameter conflict"),
]


def _fill(value: Any, u: str, acc: str) -> Any:
    if isinstance(value, str):
        return value.replace("{u}", u).replace("{acc}", acc)
    if isinstance(value, list):
        return [_fill(v, u, acc) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, u, acc) for k, v in value.items()}
    return value


@pytest.mark.parametrize("path, body, status, error", BAD_WRITES)
def test_malformed_writes_are_refused_with_vaults_text(
    server: ServerProcess, accessor: str, path: str, body: Any, status: int, error: str,
) -> None:
    u = uuid.uuid4().hex[:8]
    before = server.request("LIST", "identity/entity/id")
    r = server.request("POST", "identity/" + _fill(path, u, accessor),
                       json=_fill(body, u, accessor))
    assert r.status_code == status, r.text
    assert error in r.json()["errors"][0]
    after = server.request("LIST", "identity/entity/id")
    assert before.json().get("data", {}).get("keys") == after.json().get("data", {}).get(
        "keys")  # nothing half-written
    if "{u}" in path or "{u}" in str(body):  # names stay free
        assert server.request("GET", f"identity/group/name/g-{u}").status_code == 404


def test_identity_requires_a_token(server: ServerProcess) -> None:
    r = server.request("POST", "identity/entity", json={"name": "x"}, token="")
    assert (r.status_code, _errors(r)) == (403, ["permission denied"])


# -- identity policies and templating on tokens --------------------------------------------


def _entity_token(server: ServerProcess, ident: Any, accessor: str, *, metadata: dict[str, str],
                  policies: list[str]) -> tuple[str, str]:
    """(entity id, token) of a fresh entity, its token made through a token role's
    entity_alias (Vault's way to give a token an entity without an auth method)."""
    name = _n("svc")
    eid = ident.create_or_update_entity(name=name, metadata=metadata,
                                        policies=policies)["data"]["id"]
    ident.create_or_update_entity_alias(name=name, canonical_id=eid, mount_accessor=accessor)
    role = _n("role")
    r = server.request("POST", f"auth/token/roles/{role}",
                       json={"allowed_entity_aliases": ["svc-*"], "orphan": True})
    assert r.status_code == 204, r.text
    r = server.request("POST", f"auth/token/create/{role}",
                       json={"entity_alias": name, "policies": ["default"]})
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["entity_id"] == eid
    return eid, r.json()["auth"]["client_token"]


def test_templated_policy_gives_each_app_its_own_transit_key(
    server: ServerProcess, client: hvac.Client, ident: Any, mount: str, accessor: str,
) -> None:
    policy = _n("own-key")
    client.sys.create_or_update_acl_policy(policy, f"""
path "{mount}/encrypt/{{{{identity.entity.metadata.app}}}}" {{
  capabilities = ["update"]
}}
""")
    app_a, app_b = _n("app"), _n("app")
    for key in (app_a, app_b):
        client.secrets.transit.create_key(key, mount_point=mount)
    eid, token = _entity_token(server, ident, accessor, metadata={"app": app_a},
                               policies=[policy])
    app = server.client(token)
    plaintext = base64.b64encode(b"hello").decode()
    out = app.secrets.transit.encrypt_data(app_a, plaintext, mount_point=mount)
    assert out["data"]["ciphertext"].startswith("vault:v1:")
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.transit.encrypt_data(app_b, plaintext, mount_point=mount)
    caps = server.request("POST", "sys/capabilities-self", token=token,
                          json={"paths": [f"{mount}/encrypt/{app_a}",
                                          f"{mount}/encrypt/{app_b}"]}).json()["data"]
    assert caps[f"{mount}/encrypt/{app_a}"] == ["update"]
    assert caps[f"{mount}/encrypt/{app_b}"] == ["deny"]
    # the default policy's templated paths: the token reads its own entity only
    assert app.secrets.identity.read_entity(eid)["data"]["id"] == eid
    # metadata changes apply to the next request; a missing value matches nothing
    ident.update_entity(eid, metadata={"other": "x"})
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.transit.encrypt_data(app_a, plaintext, mount_point=mount)


def test_group_policies_apply_per_request_and_disabled_or_deleted_entity_is_refused(
    server: ServerProcess, client: hvac.Client, ident: Any, mount: str, accessor: str,
) -> None:
    key = _n("k")
    client.secrets.transit.create_key(key, mount_point=mount)
    policy = _n("grp")
    client.sys.create_or_update_acl_policy(
        policy, f'path "{mount}/encrypt/{key}" {{ capabilities = ["update"] }}')
    eid, token = _entity_token(server, ident, accessor, metadata={}, policies=[])
    body = {"plaintext": base64.b64encode(b"x").decode()}
    assert server.request("POST", f"{mount}/encrypt/{key}", json=body,
                          token=token).status_code == 403
    parent_name = _n("p")
    parent = ident.create_or_update_group(name=parent_name, policies=[policy])["data"]["id"]
    ident.create_or_update_group(name=_n("c"), member_entity_ids=[eid])
    child = ident.lookup_entity(entity_id=eid)["data"]["direct_group_ids"][0]
    ident.update_group(parent, name=parent_name, member_group_ids=[child], policies=[policy])
    r = server.request("POST", f"{mount}/encrypt/{key}", json=body, token=token)
    assert r.status_code == 200, r.text
    look = server.request("GET", "auth/token/lookup-self", token=token).json()["data"]
    assert look["identity_policies"] == [policy] and look["entity_id"] == eid
    ident.update_entity(eid, disabled=True)
    r = server.request("POST", f"{mount}/encrypt/{key}", json=body, token=token)
    assert (r.status_code, _errors(r)) == (403, ["permission denied"])
    ident.update_entity(eid, disabled=False)
    assert server.request("POST", f"{mount}/encrypt/{key}", json=body,
                          token=token).status_code == 200
    ident.delete_entity(eid)
    r = server.request("POST", f"{mount}/encrypt/{key}", json=body, token=token)
    assert (r.status_code, _errors(r)) == (403, ["permission denied"])


def test_token_role_entity_alias_rules(server: ServerProcess, ident: Any) -> None:
    role = _n("role")
    server.request("POST", f"auth/token/roles/{role}", json={"allowed_entity_aliases": ["ok-*"]})
    r = server.request("POST", f"auth/token/create/{role}", json={"entity_alias": "bad"})
    assert (r.status_code, _errors(r)) == (400, ["invalid 'entity_alias' value"])
    r = server.request("POST", "auth/token/create", json={"entity_alias": "ok-1"})
    assert (r.status_code, _errors(r)) == (
        400, ["'entity_alias' is only allowed in combination with token role"])
    alias = _n("ok")
    r = server.request("POST", f"auth/token/create/{role}", json={"entity_alias": alias})
    assert r.status_code == 200, r.text
    eid = r.json()["auth"]["entity_id"]
    # the same alias again: the same entity
    r = server.request("POST", f"auth/token/create/{role}", json={"entity_alias": alias})
    assert r.json()["auth"]["entity_id"] == eid
    ident.update_entity(eid, disabled=True)
    r = server.request("POST", f"auth/token/create/{role}", json={"entity_alias": alias})
    assert (r.status_code, _errors(r)) == (403, ["entity from given entity alias is disabled"])
