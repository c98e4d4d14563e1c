"""The AppRole auth method (spec auth-api §2) with real hvac against the session server:
every method of `client.auth.approle`, the single-field sub-paths, malformed input on every
write path, secret-ID TTL and use limits, CIDR binding, response-wrapped secret IDs, user
lockout, renewal, tidy, revoke-prefix of the mount's token leases, and an application that
logs in and encrypts under its own templated transit key path."""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from hvac.exceptions import Forbidden, InternalServerError, InvalidPath, InvalidRequest

from tests.helpers import ServerProcess

PLAINTEXT = base64.b64encode(b"per-app secret").decode()
NO_CONSTRAINT = "1 error occurred:\n\t* at least one constraint should be enabled on the role\n\n"


def _n(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ar(client: hvac.Client) -> Iterator[str]:
    path = _n("ar")
    client.sys.enable_auth_method("approle", path=path)
    yield path
    client.sys.disable_auth_method(path)


def _raw(server: ServerProcess, method: str, path: str, body: Any = None, token: str = "",
         source: str = "127.0.0.1") -> tuple[int, Any]:
    """One request from a chosen loopback source address (127.0.0.2 is 'outside')."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                      source_address=(source, 0))
    headers = {"X-Vault-Token": token} if token else {}
    conn.request(method, "/v1/" + path, body=json.dumps(body) if body is not None else None,
                 headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, (json.loads(raw) if raw else {})


def _login(server: ServerProcess, mount: str, role_id: str, secret_id: str | None = None,
           source: str = "127.0.0.1") -> tuple[int, Any]:
    return _raw(server, "POST", f"auth/{mount}/login",
                {"role_id": role_id, "secret_id": secret_id}, source=source)


def _errors(r: Any) -> list[str]:
    return list(r.json()["errors"])


def test_every_hvac_method(client: hvac.Client, server: ServerProcess, ar: str) -> None:
    """The 15 methods of hvac's `client.auth.approle`, in the order an operator uses them."""
    approle = client.auth.approle
    r = approle.create_or_update_approle(
        "Web", bind_secret_id=True, secret_id_bound_cidrs=["127.0.0.0/8"], secret_id_num_uses=5,
        secret_id_ttl="1h", enable_local_secret_ids=False, token_ttl="20m", token_max_ttl="1h",
        token_policies=["p2", "p1"], token_bound_cidrs=["127.0.0.1/32"],
        token_explicit_max_ttl="2h", token_no_default_policy=False, token_num_uses=0,
        token_period=0, token_type="service", mount_point=ar)
    assert r.status_code == 204
    approle.create_or_update_approle("batchy", token_type="default-batch", mount_point=ar)
    assert approle.list_roles(mount_point=ar)["data"]["keys"] == ["batchy", "web"]
    web = approle.read_role("WEB", mount_point=ar)["data"]
    assert web == {
        "bind_secret_id": True, "local_secret_ids": False,
        "secret_id_bound_cidrs": ["127.0.0.0/8"], "secret_id_num_uses": 5,
        "secret_id_ttl": 3600, "token_bound_cidrs": ["127.0.0.1"],
        "token_explicit_max_ttl": 7200, "token_max_ttl": 3600, "token_no_default_policy": False,
        "token_num_uses": 0, "token_period": 0, "token_policies": ["p1", "p2"],
        "token_type": "service", "token_ttl": 1200,
    }
    assert approle.read_role("batchy", mount_point=ar)["data"]["token_type"] == "batch"

    role_id = approle.read_role_id("web", mount_point=ar)["data"]["role_id"]
    assert len(role_id) == 36
    assert approle.update_role_id("web", "web-role-id", mount_point=ar).status_code == 204
    assert approle.read_role_id("web", mount_point=ar)["data"]["role_id"] == "web-role-id"
    anon = server.client("")
    with pytest.raises(InvalidRequest, match="invalid role or secret ID"):
        anon.auth.approle.login(role_id, "whatever", mount_point=ar)  # the old role_id is gone

    gen = approle.generate_secret_id("web", metadata={"team": "blue"},
                                     cidr_list=["127.0.0.1/32"],
                                     token_bound_cidrs=["127.0.0.1/32"], mount_point=ar)["data"]
    assert set(gen) == {"secret_id", "secret_id_accessor", "secret_id_num_uses",
                        "secret_id_ttl"}
    assert gen["secret_id_num_uses"] == 5 and gen["secret_id_ttl"] == 3600
    custom = approle.create_custom_secret_id("web", "my-own-secret-id", mount_point=ar)["data"]
    assert custom["secret_id"] == "my-own-secret-id"
    accessors = approle.list_secret_id_accessors("web", mount_point=ar)["data"]["keys"]
    assert sorted(accessors) == sorted([gen["secret_id_accessor"],
                                        custom["secret_id_accessor"]])

    info = approle.read_secret_id("web", gen["secret_id"], mount_point=ar)["data"]
    assert info["metadata"] == {"team": "blue"} and info["cidr_list"] == ["127.0.0.1/32"]
    assert info["token_bound_cidrs"] == ["127.0.0.1/32"] and info["secret_id_num_uses"] == 5
    assert info["secret_id_accessor"] == gen["secret_id_accessor"]
    assert info["expiration_time"] > info["creation_time"]
    by_accessor = approle.read_secret_id_accessor("web", gen["secret_id_accessor"],
                                                  mount_point=ar)["data"]
    assert by_accessor == info
    unknown = approle.read_secret_id("web", "no-such-secret-id", mount_point=ar)
    assert unknown.status_code == 204  # hvac hands back the Response
    with pytest.raises(InvalidPath):
        approle.read_secret_id_accessor("web", "no-such-accessor", mount_point=ar)

    resp = anon.auth.approle.login("web-role-id", gen["secret_id"], mount_point=ar)
    auth = resp["auth"]
    assert auth["metadata"] == {"role_name": "web", "team": "blue"}
    assert auth["policies"] == ["default", "p1", "p2"] and auth["lease_duration"] == 1200
    assert auth["token_type"] == "service" and auth["orphan"] is True
    me = anon.auth.token.lookup_self()["data"]  # hvac adopted the token
    assert me["display_name"] == ar and me["path"] == f"auth/{ar}/login"
    assert me["bound_cidrs"] == ["127.0.0.1"] and me["meta"]["role_name"] == "web"
    entity = client.secrets.identity.read_entity(auth["entity_id"])["data"]
    assert [(a["name"], a["mount_type"], a["metadata"]) for a in entity["aliases"]] == [
        ("web-role-id", "approle", {"role_name": "web", "team": "blue"})]
    used = approle.read_secret_id("web", gen["secret_id"], mount_point=ar)["data"]
    assert used["secret_id_num_uses"] == 4

    assert approle.destroy_secret_id("web", gen["secret_id"], mount_point=ar).status_code == 204
    assert approle.destroy_secret_id_accessor("web", custom["secret_id_accessor"],
                                              mount_point=ar).status_code == 204
    with pytest.raises(InvalidPath):
        approle.list_secret_id_accessors("web", mount_point=ar)
    with pytest.raises(InvalidRequest, match="invalid role or secret ID"):
        anon.auth.approle.login("web-role-id", "my-own-secret-id", mount_point=ar)
    assert approle.delete_role("web", mount_point=ar).status_code == 204
    assert approle.delete_role("web", mount_point=ar).status_code == 204
    with pytest.raises(InvalidPath):
        approle.read_role("web", mount_point=ar)
    assert approle.list_roles(mount_point=ar)["data"]["keys"] == ["batchy"]


def test_field_sub_paths(client: hvac.Client, server: ServerProcess, ar: str) -> None:
    """`role/:name/<field>`: GET shows one field, POST sets it, DELETE resets it."""
    base = f"auth/{ar}/role/svc"
    assert server.request("POST", base, json={}).status_code == 204
    cases: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
        # (sub-path, POST body, GET after POST, GET after DELETE)
        ("policies", {"token_policies": "b,a"}, {"token_policies": ["a", "b"]},
         {"token_policies": []}),
        ("secret-id-num-uses", {"secret_id_num_uses": 7}, {"secret_id_num_uses": 7},
         {"secret_id_num_uses": 0}),
        ("secret-id-ttl", {"secret_id_ttl": "5m"}, {"secret_id_ttl": 300},
         {"secret_id_ttl": 0}),
        ("token-num-uses", {"token_num_uses": 3}, {"token_num_uses": 3}, {"token_num_uses": 0}),
        ("token-ttl", {"token_ttl": "1m"}, {"token_ttl": 60}, {"token_ttl": 0}),
        ("token-max-ttl", {"token_max_ttl": "2m"}, {"token_max_ttl": 120},
         {"token_max_ttl": 0}),
        ("period", {"token_period": "1h"}, {"token_period": 3600}, {"token_period": 0}),
        ("secret-id-bound-cidrs", {"secret_id_bound_cidrs": "10.0.0.0/8"},
         {"secret_id_bound_cidrs": ["10.0.0.0/8"]}, {"secret_id_bound_cidrs": None}),
        ("token-bound-cidrs", {"token_bound_cidrs": "127.0.0.1"},
         {"token_bound_cidrs": ["127.0.0.1"]}, {"token_bound_cidrs": None}),
        ("bind-secret-id", {"bind_secret_id": False}, {"bind_secret_id": False},
         {"bind_secret_id": True}),
    ]
    for sub, body, after_post, after_delete in cases:
        if sub == "bind-secret-id":  # keep a constraint while the secret ID is off
            server.request("POST", f"{base}/token-bound-cidrs",
                           json={"token_bound_cidrs": "127.0.0.1"})
        r = server.request("POST", f"{base}/{sub}", json=body)
        assert r.status_code == 204, (sub, r.text)
        assert server.request("GET", f"{base}/{sub}").json()["data"] == after_post, sub
        assert server.request("DELETE", f"{base}/{sub}").status_code == 204
        assert server.request("GET", f"{base}/{sub}").json()["data"] == after_delete, sub
    # the legacy names are shown back while they were the last written
    server.request("POST", f"{base}/policies", json={"policies": "x"})
    server.request("POST", f"{base}/period", json={"period": 60})
    assert server.request("GET", f"{base}/policies").json()["data"] == {
        "policies": ["x"], "token_policies": ["x"]}
    role = client.auth.approle.read_role("svc", mount_point=ar)["data"]
    assert role["policies"] == ["x"] and role["period"] == 60 and role["token_period"] == 60
    r = server.request("GET", f"{base}/bound-cidr-list")
    assert r.json()["data"] == {"bound_cidr_list": None} and r.json()["warnings"]
    server.request("POST", f"{base}/bound-cidr-list", json={"bound_cidr_list": "10.1.0.0/16"})
    assert client.auth.approle.read_role("svc", mount_point=ar)["data"][
        "secret_id_bound_cidrs"] == ["10.1.0.0/16"]
    assert server.request("GET", f"{base}/local-secret-ids").json()["data"] == {
        "local_secret_ids": False}
    assert server.request("POST", f"{base}/local-secret-ids", json={}).status_code == 405
    # a missing role: GET 404, POST 404 unsupported path, DELETE 204
    assert server.request("GET", f"auth/{ar}/role/nope/token-ttl").status_code == 404
    r = server.request("POST", f"auth/{ar}/role/nope/token-ttl", json={"token_ttl": 1})
    assert r.status_code == 404 and _errors(r) == ["1 error occurred:\n\t* unsupported path\n\n"]
    assert server.request("DELETE", f"auth/{ar}/role/nope/token-ttl").status_code == 204


def test_malformed_writes(client: hvac.Client, server: ServerProcess, ar: str) -> None:
    """Every write path refuses bad input with Vault's status and text, writing nothing."""
    role = f"auth/{ar}/role/m"
    cases: list[tuple[str, dict[str, Any], int, str | None]] = [
        (role, {"token_type": "foo"}, 400, 'invalid \'token_type\' value "foo"'),
        (role, {"token_ttl": "2h", "token_max_ttl": "1h"}, 400,
         "'token_ttl' cannot be greater than 'token_max_ttl'"),
        (role, {"secret_id_num_uses": -1}, 400, "secret_id_num_uses cannot be negative"),
        (role, {"secret_id_num_uses": "x"}, 400, None),
        (role, {"secret_id_ttl": "soon"}, 400, None),
        (role, {"secret_id_ttl": -5}, 400, None),
        (role, {"bind_secret_id": "maybe"}, 400, None),
        (role, {"token_policies": {"a": 1}}, 400, None),
        (role, {"token_bound_cidrs": "bad"}, 400, None),
        (role, {"secret_id_bound_cidrs": {"a": 1}}, 400, None),
        (role, {"role_id": ""}, 400, "invalid role_id supplied, or failed to generate a role_id"),
        (role, {"role_id": ["x"]}, 400, None),
        (role, {"period": "10000h"}, 400, 'period of "10000h0m0s" is greater than the '
         'backend\'s maximum lease TTL of "768h0m0s"'),
        (role, {"bind_secret_id": False}, 500, NO_CONSTRAINT),
        (role, {"secret_id_bound_cidrs": "10.0.0.1"}, 500,
         "1 error occurred:\n\t* failed to validate CIDR blocks: invalid CIDR address: "
         "10.0.0.1\n\n"),
        (role, {"token_type": "batch", "token_num_uses": 2}, 400, None),
        (f"auth/{ar}/role/-bad", {}, 404, None),
        (f"auth/{ar}/role/" + "x" * 4097, {}, 400,
         "role_name is longer than maximum of 4096 bytes"),
    ]
    for path, body, status, message in cases:
        r = server.request("POST", path, json=body)
        assert r.status_code == status, (body, r.text)
        if message is not None:
            assert _errors(r) == [message], body
    with pytest.raises(InvalidPath):  # nothing half-written
        client.auth.approle.read_role("m", mount_point=ar)
    assert server.request("POST", role, data="{not json").status_code == 400

    assert server.request("POST", role, json={"token_ttl": 60}).status_code == 204
    before = client.auth.approle.read_role("m", mount_point=ar)["data"]
    sub_cases: list[tuple[str, dict[str, Any], int, str | None]] = [
        ("policies", {}, 400, "missing token_policies"),
        ("policies", {"token_policies": 5.5}, 204, None),
        ("secret-id-num-uses", {}, 400, "missing secret_id_num_uses"),
        ("secret-id-num-uses", {"secret_id_num_uses": -2}, 400,
         "secret_id_num_uses cannot be negative"),
        ("secret-id-num-uses", {"secret_id_num_uses": "x"}, 400, None),
        ("secret-id-ttl", {}, 400, "missing secret_id_ttl"),
        ("secret-id-ttl", {"secret_id_ttl": []}, 400, None),
        ("token-num-uses", {"token_num_uses": -1}, 400, "'token_num_uses' cannot be negative"),
        ("token-ttl", {}, 400, "missing token_ttl"),
        ("token-max-ttl", {"token_max_ttl": 10}, 400,
         "token_max_ttl should be greater than or equal to token_ttl"),
        ("period", {}, 400, "missing period"),
        ("period", {"token_period": "10000h"}, 400, None),
        ("bind-secret-id", {}, 400, "missing bind_secret_id"),
        ("bind-secret-id", {"bind_secret_id": False}, 500, NO_CONSTRAINT),
        ("secret-id-bound-cidrs", {"secret_id_bound_cidrs": ""}, 400,
         "missing bound_cidr_list"),
        ("secret-id-bound-cidrs", {"secret_id_bound_cidrs": "bad"}, 400,
         "failed to validate CIDR blocks: invalid CIDR address: bad"),
        ("token-bound-cidrs", {"token_bound_cidrs": "bad"}, 400, None),
        ("bound-cidr-list", {"bound_cidr_list": []}, 400, "missing bound_cidr_list"),
        ("bound-cidr-list", {"bound_cidr_list": "10.0.0.1"}, 400,
         "failed to validate CIDR blocks: invalid CIDR address: 10.0.0.1"),
        ("role-id", {}, 400, "missing role_id"),
        ("role-id", {"role_id": {"a": 1}}, 400, None),
    ]
    for sub, body, status, message in sub_cases:
        r = server.request("POST", f"{role}/{sub}", json=body)
        assert r.status_code == status, (sub, body, r.text)
        if message is not None:
            assert _errors(r) == [message], (sub, body)
        if status == 204:
            server.request("DELETE", f"{role}/{sub}")
    assert client.auth.approle.read_role("m", mount_point=ar)["data"] == before

    secret = f"{role}/secret-id"
    secret_cases: list[tuple[str, dict[str, Any], int, str | None]] = [
        (secret, {"metadata": "a=b=c"}, 400,
         "failed to parse metadata: failed to parse the input: invalid <key,value> format"),
        (secret, {"metadata": '{"a":""}'}, 400, 'failed to parse metadata: invalid value for '
         'key "a"'),
        (secret, {"metadata": {"a": "b"}}, 400, None),
        (secret, {"num_uses": -1}, 400, "num_uses cannot be negative"),
        (secret, {"num_uses": "x"}, 400, None),
        (secret, {"ttl": -1}, 400, None),
        (secret, {"cidr_list": "bad"}, 500,
         "1 error occurred:\n\t* failed to validate CIDR blocks: invalid CIDR address: bad\n\n"),
        (secret, {"cidr_list": {"a": 1}}, 400, None),
        (secret, {"token_bound_cidrs": "1.2.3.4"}, 500, None),
        (f"{role}/custom-secret-id", {}, 400, "missing secret_id"),
        (f"{role}/custom-secret-id", {"secret_id": ["x"]}, 400, None),
        (f"auth/{ar}/role/nope/secret-id", {}, 404, 'role "nope" does not exist'),
        (f"auth/{ar}/role/nope/custom-secret-id", {"secret_id": "x"}, 404,
         'role "nope" does not exist'),
        (f"{role}/secret-id/lookup", {}, 400, "missing secret_id"),
        (f"{role}/secret-id/destroy", {"secret_id": None}, 400, "missing secret_id"),
        (f"{role}/secret-id-accessor/lookup", {}, 400, "missing secret_id_accessor"),
        (f"{role}/secret-id-accessor/destroy", {}, 400, "missing secret_id_accessor"),
        (f"{role}/secret-id-accessor/destroy", {"secret_id_accessor": "nope"}, 500,
         '1 error occurred:\n\t* failed to find accessor entry for secret_id_accessor: '
         '"nope"\n\n'),
        (f"auth/{ar}/role/nope/secret-id/lookup", {"secret_id": "x"}, 500,
         '1 error occurred:\n\t* role "nope" does not exist\n\n'),
        (f"auth/{ar}/role/nope/secret-id-accessor/destroy", {"secret_id_accessor": "x"}, 500,
         None),
        (f"auth/{ar}/tidy/secret-id/", {}, 400, "cannot write to a path ending in '/'"),
    ]
    for path, body, status, message in secret_cases:
        r = server.request("POST", path, json=body)
        assert r.status_code == status, (path, body, r.text)
        if message is not None:
            assert _errors(r) == [message], (path, body)
    with pytest.raises(InvalidPath):  # no secret ID was stored by any of them
        client.auth.approle.list_secret_id_accessors("m", mount_point=ar)
    r = server.request("LIST", f"auth/{ar}/role/nope/secret-id")
    assert r.status_code == 400 and _errors(r) == ['role "nope" does not exist']
    r = server.request("POST", f"{role}/secret-id-accessor/lookup",
                       json={"secret_id_accessor": "nope"})
    assert r.status_code == 404 and r.json()["data"] == {
        "error": 'failed to find accessor entry for secret_id_accessor: "nope"'}
    # DELETE takes query parameters only (its body is ignored)
    r = server.request("DELETE", f"{role}/secret-id/destroy", json={"secret_id": "x"})
    assert r.status_code == 400 and _errors(r) == ["missing secret_id"]
    r = server.request("DELETE", f"{role}/secret-id/destroy", params={"secret_id": "x"})
    assert r.status_code == 204
    # a role without bind_secret_id issues no secret IDs
    server.request("POST", role, json={"token_bound_cidrs": "127.0.0.1", "bind_secret_id": False})
    r = server.request("POST", secret, json={})
    assert r.status_code == 400 and _errors(r) == ["bind_secret_id is not set on the role"]


def test_role_rules(client: hvac.Client, server: ServerProcess, ar: str) -> None:
    """role_id uniqueness, local_secret_ids only at creation, token_type adjustment and
    the mount max TTL warning; secret-ID limits may not exceed the role's."""
    base = f"auth/{ar}/role"
    assert server.request("POST", f"{base}/one", json={"role_id": "shared"}).status_code == 204
    r = server.request("POST", f"{base}/two", json={"role_id": "shared"})
    assert r.status_code == 500 and _errors(r) == [
        "1 error occurred:\n\t* role_id already in use\n\n"]
    with pytest.raises(InvalidPath):  # refused whole
        client.auth.approle.read_role("two", mount_point=ar)
    server.request("POST", f"{base}/two", json={})
    r = server.request("POST", f"{base}/two/role-id", json={"role_id": "shared"})
    assert r.status_code == 500
    r = server.request("POST", f"{base}/two", json={"local_secret_ids": True})
    assert r.status_code == 400 and _errors(r) == [
        "local_secret_ids can only be modified during role creation"]
    r = server.request("POST", f"{base}/loc", json={"local_secret_ids": True,
                                                    "token_type": "default-service",
                                                    "token_max_ttl": "10000h"})
    assert r.status_code == 200 and r.json()["warnings"] == [
        "default-service has no useful meaning; adjusting to service",
        "token_max_ttl is greater than the backend mount's maximum TTL value; issued tokens' "
        "max TTL value will be truncated"]
    loc = client.auth.approle.read_role("loc", mount_point=ar)["data"]
    assert loc["local_secret_ids"] is True and loc["token_type"] == "service"
    gen = client.auth.approle.generate_secret_id("loc", mount_point=ar)["data"]
    role_id = client.auth.approle.read_role_id("loc", mount_point=ar)["data"]["role_id"]
    assert _login(server, ar, role_id, gen["secret_id"])[0] == 200

    server.request("POST", f"{base}/lim", json={"secret_id_num_uses": 3, "secret_id_ttl": "1h"})
    for body, message in (({"num_uses": 0}, "num_uses cannot be higher than the role's "
                                            "secret_id_num_uses"),
                          ({"num_uses": 4}, "num_uses cannot be higher than the role's "
                                            "secret_id_num_uses"),
                          ({"ttl": 0}, "ttl cannot be longer than the role's secret_id_ttl"),
                          ({"ttl": "2h"}, "ttl cannot be longer than the role's secret_id_ttl")):
        r = server.request("POST", f"{base}/lim/secret-id", json=body)
        assert r.status_code == 400 and _errors(r) == [message], body
    r = server.request("POST", f"{base}/lim/secret-id", json={"ttl": "10m", "num_uses": 2})
    assert r.json()["data"]["secret_id_num_uses"] == 2 and r.json()["data"][
        "secret_id_ttl"] == 600
    server.request("POST", f"{base}/lim", json={"secret_id_ttl": "10000h"})
    r = server.request("POST", f"{base}/lim/secret-id", json={})
    assert r.json()["data"]["secret_id_ttl"] == 2764800  # capped at the mount's max


def test_login_errors_and_lockout(client: hvac.Client, server: ServerProcess, ar: str) -> None:
    """Vault's texts for a bad role_id or secret_id; five wrong secret IDs lock the role_id
    (even the right one is then 403); unknown role_ids are not counted."""
    approle = client.auth.approle
    approle.create_or_update_approle("app", mount_point=ar)
    role_id = approle.read_role_id("app", mount_point=ar)["data"]["role_id"]
    secret_id = approle.generate_secret_id("app", mount_point=ar)["data"]["secret_id"]
    login = f"auth/{ar}/login"

    def post(body: Any, token: str = "") -> tuple[int, Any]:
        r = server.request("POST", login, json=body, token=token)
        return r.status_code, (r.json() if r.content else None)

    assert post({}) == (500, {"errors": ["missing role_id"]})
    assert post({"role_id": "  "}) == (500, {"errors": ["missing role_id"]})
    status, body = post({"role_id": {"a": 1}})
    assert status == 500 and body["errors"][0].startswith("Field validation failed: ")
    assert post({"role_id": role_id}) == (400, {"errors": ["missing secret_id"]})
    assert post({"role_id": role_id, "secret_id": None}) == (400, {"errors": [
        "missing secret_id"]})
    assert server.request("GET", login, token="").status_code == 500  # the look-ahead first
    for _ in range(6):
        assert post({"role_id": "nope", "secret_id": "x"}) == (400, {"errors": [
            "invalid role or secret ID"]})
    status, body = post({"role_id": f" {role_id} ", "secret_id": f" {secret_id} "},
                        token="bogus-token")  # trimmed; a token on a login path is ignored
    assert status == 200 and body["auth"]["metadata"] == {"role_name": "app"}
    for _ in range(5):
        assert post({"role_id": role_id, "secret_id": "wrong"}) == (400, {"errors": [
            "invalid role or secret ID"]})
    assert post({"role_id": role_id, "secret_id": secret_id}) == (403, {"errors": [
        "permission denied"]})
    accessor = client.sys.list_auth_methods()["data"][f"{ar}/"]["accessor"]
    locked = server.request("GET", "sys/locked-users").json()["data"]
    mine = [a for ns in locked["by_namespace"] for a in ns["mount_accessors"]
            if a["mount_accessor"] == accessor]
    assert mine == [{"mount_accessor": accessor, "counts": 1, "alias_identifiers": [role_id]}]
    r = server.request("POST", f"sys/locked-users/{accessor}/unlock/{role_id}")
    assert r.status_code == 204
    assert post({"role_id": role_id, "secret_id": secret_id})[0] == 200


def test_secret_id_use_limit(client: hvac.Client, server: ServerProcess, ar: str) -> None:
    """A use-limited secret ID: each login spends one use, the last use deletes it, and
    concurrent logins never spend more uses than it has."""
    approle = client.auth.approle
    approle.create_or_update_approle("lim", mount_point=ar, token_ttl="5m")
    role_id = approle.read_role_id("lim", mount_point=ar)["data"]["role_id"]
    r = server.request("POST", f"auth/{ar}/role/lim/secret-id", json={"num_uses": 2})
    secret_id, accessor = r.json()["data"]["secret_id"], r.json()["data"]["secret_id_accessor"]
    assert _login(server, ar, role_id, secret_id)[0] == 200
    info = approle.read_secret_id_accessor("lim", accessor, mount_point=ar)["data"]
    assert info["secret_id_num_uses"] == 1
    assert info["last_updated_time"] > info["creation_time"]
    assert _login(server, ar, role_id, secret_id)[0] == 200
    status, body = _login(server, ar, role_id, secret_id)
    assert (status, body) == (400, {"errors": ["invalid role or secret ID"]})
    with pytest.raises(InvalidPath):  # the accessor went with it
        approle.read_secret_id_accessor("lim", accessor, mount_point=ar)

    # a fresh role: the failures count toward its lockout (5), so stay below that
    approle.create_or_update_approle("race", mount_point=ar, token_ttl="5m")
    race_id = approle.read_role_id("race", mount_point=ar)["data"]["role_id"]
    uses, attempts = 3, 7
    r = server.request("POST", f"auth/{ar}/role/race/secret-id", json={"num_uses": uses})
    racing = r.json()["data"]["secret_id"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=attempts) as pool:
        statuses = list(pool.map(lambda _: _login(server, ar, race_id, racing)[0],
                                 range(attempts)))
    assert sorted(statuses) == [200] * uses + [400] * (attempts - uses)


def test_secret_id_ttl_and_tidy(client: hvac.Client, server: ServerProcess, ar: str) -> None:
    """An expired secret ID no longer logs in (checked at login, not only by the tidy), and
    tidy/secret-id (202) removes it with its accessor."""
    approle = client.auth.approle
    approle.create_or_update_approle("short", mount_point=ar)
    role_id = approle.read_role_id("short", mount_point=ar)["data"]["role_id"]
    r = server.request("POST", f"auth/{ar}/role/short/secret-id", json={"ttl": 1})
    expiring = r.json()["data"]
    assert r.json()["data"]["secret_id_ttl"] == 1
    keep = approle.generate_secret_id("short", mount_point=ar)["data"]
    info = approle.read_secret_id("short", expiring["secret_id"], mount_point=ar)["data"]
    assert info["secret_id_ttl"] == 1 and info["expiration_time"] != "0001-01-01T00:00:00Z"
    deadline = time.monotonic() + 10
    while _login(server, ar, role_id, expiring["secret_id"])[0] == 200:
        assert time.monotonic() < deadline, "the secret ID never expired"
        time.sleep(0.25)
    status, body = _login(server, ar, role_id, expiring["secret_id"])
    assert (status, body) == (400, {"errors": ["invalid role or secret ID"]})

    r = server.request("POST", f"auth/{ar}/tidy/secret-id", json={})
    assert r.status_code == 202 and r.json()["warnings"] == [
        "Tidy operation successfully started. Any information from the operation will be "
        "printed to Vault's server logs."]
    deadline = time.monotonic() + 10
    while expiring["secret_id_accessor"] in approle.list_secret_id_accessors(
            "short", mount_point=ar)["data"]["keys"]:
        assert time.monotonic() < deadline, "tidy left the expired secret ID"
        time.sleep(0.1)
    assert approle.list_secret_id_accessors("short", mount_point=ar)["data"]["keys"] == [
        keep["secret_id_accessor"]]
    assert _login(server, ar, role_id, keep["secret_id"])[0] == 200


def test_cidr_binding(client: hvac.Client, server: ServerProcess, ar: str) -> None:
    """Secret-ID cidr_list, the role's secret_id_bound_cidrs, and token_bound_cidrs from
    the secret ID (overriding the role's): 127.0.0.2 is outside 127.0.0.1/32."""
    approle = client.auth.approle
    approle.create_or_update_approle("net", mount_point=ar)
    role_id = approle.read_role_id("net", mount_point=ar)["data"]["role_id"]
    unlimited = approle.generate_secret_id("net", cidr_list=["127.0.0.1/32"],
                                           mount_point=ar)["data"]["secret_id"]
    status, body = _login(server, ar, role_id, unlimited, source="127.0.0.2")
    assert (status, body) == (400, {"errors": [
        'source address "127.0.0.2" unauthorized through CIDR restrictions on the secret ID']})
    r = server.request("POST", f"auth/{ar}/role/net/secret-id",
                       json={"cidr_list": "127.0.0.1/32", "num_uses": 1,
                             "token_bound_cidrs": "127.0.0.1/32"})
    limited = r.json()["data"]["secret_id"]
    status, body = _login(server, ar, role_id, limited, source="127.0.0.2")
    assert (status, body) == (400, {"errors": [
        'source address "127.0.0.2" unauthorized by CIDR restrictions on the secret ID: '
        "%!w(<nil>)"]})
    status, body = _login(server, ar, role_id, limited)  # the refusal spent no use
    assert status == 200
    token = body["auth"]["client_token"]
    assert _raw(server, "GET", "auth/token/lookup-self", token=token)[0] == 200
    assert _raw(server, "GET", "auth/token/lookup-self", token=token,
                source="127.0.0.2") == (403, {"errors": ["permission denied"]})

    approle.create_or_update_approle("net", secret_id_bound_cidrs=["127.0.0.1/32"],
                                     mount_point=ar)
    status, body = _login(server, ar, role_id, unlimited, source="127.0.0.2")
    assert status == 400  # the secret ID's own CIDRs answer first
    free = approle.generate_secret_id("net", mount_point=ar)["data"]["secret_id"]
    status, body = _login(server, ar, role_id, free, source="127.0.0.2")
    assert (status, body) == (400, {"errors": [
        'source address "127.0.0.2" unauthorized by CIDR restrictions on the role: '
        "%!w(<nil>)"]})
    assert _login(server, ar, role_id, free)[0] == 200
    r = server.request("POST", f"auth/{ar}/role/net/secret-id", json={"cidr_list": "10.0.0.0/8"})
    assert r.status_code == 500 and "failed to verify subset relationship" in _errors(r)[0]
    # no secret ID at all: the role's CIDRs are the credential
    approle.create_or_update_approle("open", bind_secret_id=False,
                                     secret_id_bound_cidrs=["127.0.0.1/32"], mount_point=ar)
    open_id = approle.read_role_id("open", mount_point=ar)["data"]["role_id"]
    assert _login(server, ar, open_id)[0] == 200
    assert _login(server, ar, open_id, source="127.0.0.2")[0] == 400


def test_wrapped_secret_id_then_unwrap_and_login(client: hvac.Client, server: ServerProcess,
                                                 ar: str) -> None:
    """The recommended delivery: the operator asks for a response-wrapped secret ID, the
    application unwraps it (once) and logs in."""
    approle = client.auth.approle
    approle.create_or_update_approle("wrapped", token_ttl="10m", mount_point=ar)
    role_id = approle.read_role_id("wrapped", mount_point=ar)["data"]["role_id"]
    wrapped = approle.generate_secret_id("wrapped", metadata={"host": "h1"}, wrap_ttl="60s",
                                         mount_point=ar)
    info = wrapped["wrap_info"]
    assert wrapped["data"] is None and info["ttl"] == 60
    assert info["creation_path"] == f"auth/{ar}/role/wrapped/secret-id"
    app = server.client(info["token"])  # the application holds only the wrapping token
    secret = app.sys.unwrap()["data"]
    assert set(secret) == {"secret_id", "secret_id_accessor", "secret_id_num_uses",
                           "secret_id_ttl"}
    with pytest.raises(InvalidRequest, match="wrapping token is not valid"):  # once only
        server.client(info["token"]).sys.unwrap()
    auth = app.auth.approle.login(role_id, secret["secret_id"], mount_point=ar)["auth"]
    assert auth["metadata"] == {"host": "h1", "role_name": "wrapped"}
    assert app.is_authenticated()


def test_renewal_and_role_deletion(client: hvac.Client, server: ServerProcess, ar: str) -> None:
    """renew-self re-reads the role's TTLs; once the role is gone the token is not renewed;
    a deleted role's secret IDs are gone with it."""
    approle = client.auth.approle
    approle.create_or_update_approle("ren", token_ttl="10m", token_max_ttl="1h", mount_point=ar)
    role_id = approle.read_role_id("ren", mount_point=ar)["data"]["role_id"]
    secret_id = approle.generate_secret_id("ren", mount_point=ar)["data"]["secret_id"]
    app = server.client("")
    assert app.auth.approle.login(role_id, secret_id, mount_point=ar)["auth"][
        "lease_duration"] == 600
    approle.create_or_update_approle("ren", token_ttl="20m", mount_point=ar)
    assert app.auth.token.renew_self()["auth"]["lease_duration"] == 1200
    approle.delete_role("ren", mount_point=ar)
    r = server.request("POST", "auth/token/renew-self", json={}, token=app.token)
    assert r.status_code == 500 and _errors(r) == [
        '1 error occurred:\n\t* failed to renew entry: role "ren" does not exist during '
        'renewal\n\n']
    server.request("POST", f"auth/{ar}/role/ren", json={"role_id": role_id})  # same role_id
    with pytest.raises(InvalidRequest, match="invalid role or secret ID"):
        app.auth.approle.login(role_id, secret_id, mount_point=ar)


def test_revoke_prefix_revokes_the_mounts_tokens(client: hvac.Client, server: ServerProcess,
                                                 ar: str) -> None:
    approle = client.auth.approle
    approle.create_or_update_approle("lease", mount_point=ar, token_ttl="30m")
    role_id = approle.read_role_id("lease", mount_point=ar)["data"]["role_id"]
    secret_id = approle.generate_secret_id("lease", mount_point=ar)["data"]["secret_id"]
    tokens = [_login(server, ar, role_id, secret_id)[1]["auth"]["client_token"]
              for _ in range(2)]
    other = client.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    assert client.sys.list_leases(f"auth/{ar}/")["data"]["keys"] == ["login/"]
    assert len(client.sys.list_leases(f"auth/{ar}/login/")["data"]["keys"]) == 2
    assert client.sys.revoke_prefix(f"auth/{ar}").status_code == 204
    for token in tokens:
        assert server.request("GET", "auth/token/lookup-self", token=token).status_code == 403
    assert server.request("GET", "auth/token/lookup-self", token=other).status_code == 200
    client.auth.token.revoke(other)
    with pytest.raises(InvalidPath):
        client.sys.list_leases(f"auth/{ar}/")


def test_secrets_never_in_the_audit_log(client: hvac.Client, server: ServerProcess, ar: str,
                                        tmp_path: Path) -> None:
    """Secret IDs in requests and responses are HMAC'd by the audit device; a failed login
    is audited with its error."""
    from tests.integration.test_audit import for_path, read_lines

    device = _n("file")
    log = tmp_path / "audit.log"
    client.sys.enable_audit_device("file", path=device, options={"file_path": str(log)})
    try:
        approle = client.auth.approle
        approle.create_or_update_approle("aud", mount_point=ar)
        role_id = approle.read_role_id("aud", mount_point=ar)["data"]["role_id"]
        secret_id = approle.generate_secret_id("aud", mount_point=ar)["data"]["secret_id"]
        custom = "custom-secret-for-audit"
        approle.create_custom_secret_id("aud", custom, mount_point=ar)
        assert _login(server, ar, role_id, "wrong-secret-id")[0] == 400
        assert _login(server, ar, role_id, secret_id)[0] == 200
        failed = for_path(read_lines(log), f"auth/{ar}/login")
        assert failed[1]["error"] == "invalid role or secret ID"
        assert failed[1]["request"]["data"]["secret_id"].startswith("hmac-sha256:")
        text = log.read_text()
        for secret in (secret_id, custom, "wrong-secret-id"):
            assert secret not in text
    finally:
        server.request("DELETE", f"sys/audit/{device}")


def test_app_encrypts_under_its_own_templated_key(client: hvac.Client, server: ServerProcess,
                                                  ar: str) -> None:
    """End to end: one policy for every application, keyed by the `role_name` metadata of
    the AppRole alias; each application gets a wrapped secret ID, logs in, encrypts under its
    own key, and is refused on the other application's key."""
    transit = _n("tr")
    client.sys.enable_secrets_engine("transit", path=transit)
    accessor = client.sys.list_auth_methods()["data"][f"{ar}/"]["accessor"]
    policy = _n("per-app")
    template = f"{{{{identity.entity.aliases.{accessor}.metadata.role_name}}}}"
    client.sys.create_or_update_policy(policy, f'''
path "{transit}/encrypt/{template}" {{ capabilities = ["update"] }}
path "{transit}/decrypt/{template}" {{ capabilities = ["update"] }}
''')
    apps: dict[str, hvac.Client] = {}
    try:
        for name in ("billing", "orders"):
            client.secrets.transit.create_key(name, mount_point=transit)
            client.auth.approle.create_or_update_approle(
                name, token_policies=[policy], token_ttl="15m", mount_point=ar)
            role_id = client.auth.approle.read_role_id(name, mount_point=ar)["data"]["role_id"]
            wrap = client.auth.approle.generate_secret_id(name, wrap_ttl="2m",
                                                          mount_point=ar)["wrap_info"]["token"]
            app = server.client(wrap)
            secret_id = app.sys.unwrap()["data"]["secret_id"]
            app.auth.approle.login(role_id, secret_id, mount_point=ar)
            apps[name] = app
        billing, orders = apps["billing"], apps["orders"]
        ct = billing.secrets.transit.encrypt_data("billing", PLAINTEXT, mount_point=transit)
        ciphertext = ct["data"]["ciphertext"]
        assert ciphertext.startswith("vault:v1:")
        assert billing.secrets.transit.decrypt_data(
            "billing", ciphertext, mount_point=transit)["data"]["plaintext"] == PLAINTEXT
        with pytest.raises(Forbidden):
            billing.secrets.transit.encrypt_data("orders", PLAINTEXT, mount_point=transit)
        with pytest.raises(Forbidden):
            orders.secrets.transit.decrypt_data("billing", ciphertext, mount_point=transit)
        assert orders.secrets.transit.encrypt_data("orders", PLAINTEXT, mount_point=transit)
    finally:
        client.sys.disable_secrets_engine(transit)
        client.sys.delete_policy(policy)


def test_disable_revokes_and_forgets(client: hvac.Client, server: ServerProcess) -> None:
    """Disabling the mount revokes its tokens; re-enabling starts empty."""
    path = _n("ar")
    client.sys.enable_auth_method("approle", path=path)
    client.auth.approle.create_or_update_approle("gone", mount_point=path)
    role_id = client.auth.approle.read_role_id("gone", mount_point=path)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("gone", mount_point=path)["data"][
        "secret_id"]
    token = _login(server, path, role_id, secret_id)[1]["auth"]["client_token"]
    client.sys.disable_auth_method(path)
    assert server.request("GET", "auth/token/lookup-self", token=token).status_code == 403
    client.sys.enable_auth_method("approle", path=path)
    try:
        with pytest.raises(InvalidPath):
            client.auth.approle.list_roles(mount_point=path)
        with pytest.raises(InternalServerError):
            server.client("").auth.approle.login("", mount_point=path)
    finally:
        client.sys.disable_auth_method(path)
