"""The token auth method over real HTTP with hvac (spec ha-and-sys-api §4.10)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import hvac
import pytest

from tests.helpers import ServerProcess

AUTH_KEYS = ["client_token", "accessor", "policies", "token_policies", "metadata",
             "lease_duration", "renewable", "entity_id", "token_type", "orphan",
             "mfa_requirement", "num_uses"]
LOOKUP_KEYS = {"accessor", "creation_time", "creation_ttl", "display_name", "entity_id",
               "expire_time", "explicit_max_ttl", "id", "meta", "num_uses", "orphan", "path",
               "policies", "ttl", "type"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _errors(r: object) -> list[str]:
    return r.json()["errors"]  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def creator_policy(server: ServerProcess) -> Iterator[str]:
    """A policy that may create child tokens (and nothing about sudo)."""
    name = _name("tokcreate")
    text = 'path "auth/token/create" { capabilities = ["update"] }\n'
    text += 'path "auth/token/revoke-orphan" { capabilities = ["update"] }\n'
    assert server.request("PUT", f"sys/policies/acl/{name}", json={"policy": text}).status_code == 204
    yield name
    server.request("DELETE", f"sys/policies/acl/{name}")


# --- create ---------------------------------------------------------------------------------


def test_create_returns_vaults_auth_block(client: hvac.Client) -> None:
    resp = client.auth.token.create(policies=["default"], meta={"app": "web"}, ttl="1h")
    auth = resp["auth"]
    assert set(auth) == set(AUTH_KEYS)
    assert re.fullmatch(r"hvs\.[A-Za-z0-9]{24}", auth["client_token"])
    assert len(auth["accessor"]) == 24
    assert auth["policies"] == ["default"] and auth["token_policies"] == ["default"]
    assert auth["metadata"] == {"app": "web"} and auth["lease_duration"] == 3600
    assert auth["renewable"] is True and auth["orphan"] is False
    assert auth["token_type"] == "service" and auth["mfa_requirement"] is None
    assert auth["entity_id"] == "" and auth["num_uses"] == 0
    assert resp["data"] is None and resp["lease_id"] == "" and resp["wrap_info"] is None
    assert resp["mount_type"] == "token"


def test_create_defaults_and_warnings(client: hvac.Client) -> None:
    resp = client.auth.token.create(policies=["no-such-policy"])
    assert resp["auth"]["lease_duration"] == 768 * 3600
    assert resp["auth"]["policies"] == ["default", "no-such-policy"]
    assert resp["auth"]["metadata"] is None
    assert 'Policy "no-such-policy" does not exist' in resp["warnings"]
    root_child = client.auth.token.create()["auth"]  # inherits root: a non-expiring root token
    assert root_child["policies"] == ["root"] and root_child["lease_duration"] == 0
    assert root_child["renewable"] is False


def test_create_orphan_and_no_parent(client: hvac.Client, server: ServerProcess) -> None:
    orphan = client.auth.token.create_orphan(policies=["default"])["auth"]
    assert orphan["orphan"] is True
    np = client.auth.token.create(policies=["default"], no_parent=True)["auth"]
    assert np["orphan"] is True
    data = client.auth.token.lookup(np["client_token"])["data"]
    assert data["orphan"] is True and data["path"] == "auth/token/create"


def test_create_with_custom_id_display_name_and_num_uses(client: hvac.Client, server: ServerProcess) -> None:
    custom = _name("custom")
    resp = client.auth.token.create(id=custom, policies=["default"], display_name="My App",
                                    num_uses=2)
    assert resp["auth"]["client_token"] == custom
    assert any("custom ID" in w for w in resp["warnings"])
    data = client.auth.token.lookup(custom)["data"]
    assert data["display_name"] == "token-My-App" and data["num_uses"] == 2
    # each request spends a use; the last one revokes the token
    assert server.request("GET", "auth/token/lookup-self", token=custom).status_code == 200
    assert server.request("GET", "auth/token/lookup-self", token=custom).status_code == 200
    r = server.request("GET", "auth/token/lookup-self", token=custom)
    assert r.status_code == 403 and _errors(r) == ["permission denied"]


def test_child_policies_must_be_a_subset(server: ServerProcess, creator_policy: str) -> None:
    root = server.client()
    parent = root.auth.token.create(policies=[creator_policy], ttl="10m")["auth"]["client_token"]
    r = server.request("POST", "auth/token/create", json={"policies": ["ops-elsewhere"]},
                       token=parent)
    assert r.status_code == 400 and _errors(r) == ["child policies must be subset of parent"]
    r = server.request("POST", "auth/token/create", json={"no_parent": True}, token=parent)
    assert r.status_code == 400
    assert _errors(r) == ["root or sudo privileges required to create orphan token"]
    r = server.request("POST", "auth/token/create", json={"period": "1h"}, token=parent)
    assert _errors(r) == ["root or sudo privileges required to create periodic token"]
    r = server.request("POST", "auth/token/create", json={"id": "mine"}, token=parent)
    assert _errors(r) == ["root or sudo privileges required to specify token id"]
    child = server.request("POST", "auth/token/create", json={"policies": [creator_policy]},
                           token=parent)
    assert child.status_code == 200, child.text
    auth = child.json()["auth"]
    assert auth["policies"] == sorted(["default", creator_policy])
    assert auth["lease_duration"] <= 600  # never outlives its parent
    r = server.request("POST", "auth/token/revoke-orphan", json={"token": auth["client_token"]},
                       token=parent)
    assert r.status_code == 400
    assert _errors(r) == ["root or sudo privileges required to revoke and orphan"]


# --- lookup ---------------------------------------------------------------------------------


def test_lookup_self_root(client: hvac.Client) -> None:
    data = client.auth.token.lookup_self()["data"]
    assert LOOKUP_KEYS <= set(data)
    assert data["id"] == "root" and data["policies"] == ["root"] and data["expire_time"] is None
    assert data["ttl"] == 0 and data["orphan"] is True and data["path"] == "auth/token/root"
    assert data["display_name"] == "root" and data["type"] == "service"


def test_lookup_shapes(client: hvac.Client, server: ServerProcess) -> None:
    auth = client.auth.token.create(policies=["default"], ttl="30m", explicit_max_ttl="2h")["auth"]
    data = client.auth.token.lookup(auth["client_token"])["data"]
    assert LOOKUP_KEYS | {"issue_time", "renewable"} <= set(data)
    assert data["id"] == auth["client_token"] and data["accessor"] == auth["accessor"]
    assert data["creation_ttl"] == 1800 and 1790 <= data["ttl"] <= 1800
    assert data["explicit_max_ttl"] == 7200 and data["renewable"] is True
    assert RFC3339.match(data["expire_time"]) and RFC3339.match(data["issue_time"])
    assert data["meta"] is None and data["num_uses"] == 0 and data["orphan"] is False
    # lookup-self: GET as the token itself; the default policy grants only "read", so POST
    # (update) is denied as in Vault, while root may use either verb
    r = server.request("GET", "auth/token/lookup-self", token=auth["client_token"])
    assert r.status_code == 200 and r.json()["data"]["id"] == auth["client_token"]
    r = server.request("POST", "auth/token/lookup-self", token=auth["client_token"])
    assert r.status_code == 403
    r = server.request("POST", "auth/token/lookup-self")
    assert r.status_code == 200 and r.json()["data"]["id"] == "root"
    by_acc = client.auth.token.lookup_accessor(auth["accessor"])["data"]
    assert by_acc["id"] == "" and by_acc["accessor"] == auth["accessor"]
    assert auth["accessor"] in client.auth.token.list_accessors()["data"]["keys"]


def test_lookup_bad_tokens(server: ServerProcess) -> None:
    r = server.request("POST", "auth/token/lookup", json={"token": "hvs.doesnotexist000000000"})
    assert r.status_code == 403 and _errors(r) == ["bad token"]
    r = server.request("GET", "auth/token/lookup-self", token="hvs.doesnotexist000000000")
    assert r.status_code == 403 and _errors(r) == ["permission denied"]
    r = server.request("POST", "auth/token/lookup-accessor", json={"accessor": "nope"})
    assert r.status_code == 400 and _errors(r) == ["invalid accessor"]
    r = server.request("POST", "auth/token/lookup-accessor", json={})
    assert r.status_code == 400 and _errors(r) == ["missing accessor"]


def test_expired_token_is_denied(server: ServerProcess) -> None:
    tok = server.client().auth.token.create(policies=["default"], ttl="1s")["auth"]["client_token"]
    time.sleep(2.1)
    r = server.request("GET", "auth/token/lookup-self", token=tok)
    assert r.status_code == 403 and _errors(r) == ["permission denied"]


# --- renew ----------------------------------------------------------------------------------


def test_renew_paths(client: hvac.Client, server: ServerProcess) -> None:
    auth = client.auth.token.create(policies=["default"], ttl="10m")["auth"]
    tok = auth["client_token"]
    renewed = client.auth.token.renew(tok, increment="20m")
    assert renewed["auth"]["lease_duration"] == 1200 and renewed["auth"]["client_token"] == tok
    assert set(renewed["auth"]) == set(AUTH_KEYS)
    own = server.client(tok).auth.token.renew_self(increment=300)
    assert own["auth"]["lease_duration"] == 300
    by_acc = client.auth.token.renew_accessor(auth["accessor"], increment="1h")
    assert by_acc["auth"]["client_token"] == "" and by_acc["auth"]["lease_duration"] == 3600
    data = client.auth.token.lookup(tok)["data"]
    assert 3590 <= data["ttl"] <= 3600 and "last_renewal_time" in data


def test_renew_limits(client: hvac.Client, server: ServerProcess) -> None:
    capped = client.auth.token.create(policies=["default"], ttl="10m", explicit_max_ttl="15m")
    r = client.auth.token.renew(capped["auth"]["client_token"], increment="1h")
    assert 890 <= r["auth"]["lease_duration"] <= 900 and "capped" in r["warnings"][0]
    periodic = client.auth.token.create(policies=["default"], period="5m")["auth"]
    r = client.auth.token.renew(periodic["client_token"], increment="1h")
    assert r["auth"]["lease_duration"] == 300
    fixed = client.auth.token.create(policies=["default"], ttl="5m", renewable=False)["auth"]
    r = server.request("POST", "auth/token/renew", json={"token": fixed["client_token"]})
    assert r.status_code == 400 and _errors(r) == ["lease is not renewable"]
    r = server.request("POST", "auth/token/renew-self", json={})
    assert r.status_code == 400 and _errors(r) == ["invalid lease ID"]  # root: no lease
    r = server.request("POST", "auth/token/renew", json={"token": "hvs.gone000000000000000000"})
    assert r.status_code == 400 and _errors(r) == ["token not found"]


# --- revoke ---------------------------------------------------------------------------------


def test_revoke_paths(client: hvac.Client, server: ServerProcess) -> None:
    def make(parent: str | None = None) -> dict:
        c = server.client(parent) if parent else client
        return c.auth.token.create(policies=["default"], ttl="1h")["auth"]  # type: ignore[no-any-return]

    a = make()
    a_kid = server.request("POST", "auth/token/create", json={}, token=a["client_token"])
    assert a_kid.status_code == 403  # default policy cannot create tokens
    # revoke: with children
    parent = client.auth.token.create(ttl="1h")["auth"]  # a root child
    kid = make(parent["client_token"])
    assert client.auth.token.revoke(parent["client_token"]).status_code == 204
    for t in (parent, kid):
        r = server.request("GET", "auth/token/lookup-self", token=t["client_token"])
        assert r.status_code == 403
    # revoke-orphan: children survive as orphans
    parent = client.auth.token.create(ttl="1h")["auth"]
    kid = make(parent["client_token"])
    assert client.auth.token.revoke_and_orphan_children(parent["client_token"]).status_code == 204
    assert client.auth.token.lookup(kid["client_token"])["data"]["orphan"] is True
    # revoke-accessor, revoke-self
    assert client.auth.token.revoke_accessor(a["accessor"]).status_code == 204
    assert server.request("GET", "auth/token/lookup-self", token=a["client_token"]).status_code == 403
    assert server.client(kid["client_token"]).auth.token.revoke_self().status_code == 204
    assert server.request("GET", "auth/token/lookup-self", token=kid["client_token"]).status_code == 403
    # unknown token: nothing to do
    r = server.request("POST", "auth/token/revoke", json={"token": "hvs.unknown00000000000000"})
    assert r.status_code == 204
    r = server.request("POST", "auth/token/revoke-accessor", json={"accessor": "nope"})
    assert r.status_code == 400 and _errors(r) == ["invalid accessor"]
    r = server.request("POST", "auth/token/revoke-orphan", json={"token": "hvs.unknown0000000000000"})
    assert r.status_code == 400 and _errors(r) == ["token to revoke not found"]


def test_tidy(client: hvac.Client) -> None:
    r = client.auth.token.tidy()
    assert r.status_code == 202
    assert "Tidy operation successfully started" in r.json()["warnings"][0]


# --- roles ----------------------------------------------------------------------------------


def test_roles_crud_and_create_against_role(client: hvac.Client, server: ServerProcess) -> None:
    role = _name("role")
    r = client.auth.token.create_or_update_role(role, allowed_policies=["dev", "ops"],
                                                orphan=True, token_period="1h")
    assert r.status_code == 204
    data = client.auth.token.read_role(role)["data"]
    assert data["name"] == role and data["allowed_policies"] == ["dev", "ops"]
    assert data["orphan"] is True and data["token_period"] == 3600 and data["period"] == 3600
    assert data["renewable"] is True and data["token_type"] == "default-service"
    assert role in client.auth.token.list_roles()["data"]["keys"]
    auth = client.auth.token.create(role_name=role)["auth"]
    assert auth["policies"] == ["default", "dev", "ops"] and auth["orphan"] is True
    assert auth["lease_duration"] == 3600
    info = client.auth.token.lookup(auth["client_token"])["data"]
    assert info["role"] == role and info["period"] == 3600
    assert info["path"] == f"auth/token/create/{role}"
    r = server.request("POST", f"auth/token/create/{role}", json={"policies": ["admin"]})
    assert r.status_code == 400 and "must be subset of the role's allowed policies" in _errors(r)[0]
    assert client.auth.token.delete_role(role).status_code == 204
    assert server.request("GET", f"auth/token/roles/{role}").status_code == 404
    r = server.request("POST", f"auth/token/create/{role}", json={})
    assert r.status_code == 400 and _errors(r) == [f"unknown role {role}"]


# --- bad input ------------------------------------------------------------------------------

WRITE_PATHS = ["create", "create-orphan", "create/somerole", "roles/somerole", "lookup",
               "lookup-self", "lookup-accessor", "renew", "renew-self", "renew-accessor",
               "revoke", "revoke-self", "revoke-accessor", "revoke-orphan", "tidy"]


@pytest.mark.parametrize("path", WRITE_PATHS)
def test_malformed_json_is_400(server: ServerProcess, path: str) -> None:
    r = server.request("POST", f"auth/token/{path}", data="{not json",
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert _errors(r)[0].startswith("failed to parse JSON input")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("create", {"ttl": "soon"}),
        ("create", {"num_uses": "many"}),
        ("create", {"renewable": "perhaps"}),
        ("create", {"meta": "not-a-map"}),
        ("create", {"policies": {"a": 1}}),
        ("create", {"no_parent": [1]}),
        ("create-orphan", {"explicit_max_ttl": "x"}),
        ("roles/somerole", {"orphan": "maybe"}),
        ("roles/somerole", {"token_period": "x"}),
        ("lookup", {"token": {"a": 1}}),
        ("renew", {"token": "t", "increment": "x"}),
        ("renew-self", {"increment": [1]}),
        ("renew-accessor", {"accessor": "a", "increment": "x"}),
        ("revoke", {"token": ["x"]}),
        ("lookup-accessor", {"accessor": {"x": 1}}),
    ],
)
def test_wrong_types_are_400(server: ServerProcess, path: str, body: dict) -> None:
    r = server.request("POST", f"auth/token/{path}", json=body)
    assert r.status_code == 400, r.text
    assert "error converting input" in _errors(r)[0] or "expected" in _errors(r)[0]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("create", {"num_uses": -1}, "number of uses cannot be negative"),
        ("create", {"type": "weird"}, "invalid 'token_type' value"),
        ("create", {"policies": ["response-wrapping"]}, 'cannot assign policy "response-wrapping"'),
        ("create", {"type": "batch", "period": "1h"}, 'batch tokens cannot have "period" set'),
        ("lookup", {}, None),  # falls back to the caller's own token: 200
        ("renew", {}, "missing token ID"),
        ("revoke", {}, "missing token ID"),
        ("revoke-orphan", {}, "missing token ID"),
        ("renew-accessor", {}, "missing accessor"),
        ("revoke-accessor", {}, "missing accessor"),
        ("roles/somerole", {"token_type": "weird"}, "invalid 'token_type' value"),
        ("roles/somerole", {"path_suffix": "a/../b"}, "path cannot contain parent references"),
    ],
)
def test_invalid_values(server: ServerProcess, path: str, body: dict, message: str | None) -> None:
    r = server.request("POST", f"auth/token/{path}", json=body)
    if message is None:
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400, r.text
    assert message in _errors(r)[0]


def test_no_token_or_unknown_token_is_403(server: ServerProcess) -> None:
    for token in ("", "hvs.unknown00000000000000"):
        r = server.request("POST", "auth/token/create", json={}, token=token)
        assert r.status_code == 403 and _errors(r) == ["permission denied"]


def test_limited_use_token_can_revoke_itself(client: hvac.Client, server: ServerProcess) -> None:
    tok = client.auth.token.create(policies=["default"], num_uses=3)["auth"]["client_token"]
    assert server.request("POST", "auth/token/revoke-self", token=tok).status_code == 204
    assert server.request("GET", "auth/token/lookup-self", token=tok).status_code == 403


@pytest.mark.parametrize("field", ["num_uses", "explicit_max_ttl", "ttl"])
def test_integers_beyond_64_bits_are_400(server, field) -> None:
    """2^64 does not fit Go's int (or a duration): 400, never a 500, and no token made."""
    r = server.request("POST", "auth/token/create", json={field: 2**64})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"errors"}
