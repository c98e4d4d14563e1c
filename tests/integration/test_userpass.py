"""The userpass auth method (spec auth-api §3) and the login response the core builds
(§1.7), with real hvac against the session server."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from hvac.exceptions import Forbidden, InternalServerError, InvalidPath, InvalidRequest

from tests.helpers import ServerProcess

AUTH_KEYS = ["client_token", "accessor", "policies", "token_policies", "metadata",
             "lease_duration", "renewable", "entity_id", "token_type", "orphan",
             "mfa_requirement", "num_uses"]


@pytest.fixture
def up(client: hvac.Client) -> Iterator[str]:
    path = f"up-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("userpass", path=path)
    yield path
    client.sys.disable_auth_method(path)


def _raw(server: ServerProcess, method: str, path: str, body: Any = None, token: str = "",
         source: str = "127.0.0.1") -> tuple[int, dict[str, Any]]:
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


def test_user_crud_and_list(client: hvac.Client, server: ServerProcess, up: str) -> None:
    up_ = client.auth.userpass
    r = up_.create_or_update_user("Alice", "pw1", policies="a,b", mount_point=up)
    assert r.status_code == 204
    up_.create_or_update_user("carol", "pw", mount_point=up, token_ttl="1h",
                              token_bound_cidrs=["127.0.0.1/32", "10.0.0.0/8"], token_num_uses=3)
    assert up_.list_user(mount_point=up)["data"]["keys"] == ["alice", "carol"]
    alice = up_.read_user("ALICE", mount_point=up)["data"]
    assert alice == {
        "policies": ["a", "b"], "token_bound_cidrs": [], "token_explicit_max_ttl": 0,
        "token_max_ttl": 0, "token_no_default_policy": False, "token_num_uses": 0,
        "token_period": 0, "token_policies": ["a", "b"], "token_type": "default",
        "token_ttl": 0,
    }
    carol = up_.read_user("carol", mount_point=up)["data"]
    assert carol["token_ttl"] == 3600 and carol["token_num_uses"] == 3
    assert carol["token_bound_cidrs"] == ["127.0.0.1", "10.0.0.0/8"]
    assert "policies" not in carol and "password" not in carol
    # an update merges: the password stays, new token fields replace the legacy name
    up_.create_or_update_user("alice", mount_point=up, token_policies=["c"])
    alice = up_.read_user("alice", mount_point=up)["data"]
    assert alice["token_policies"] == ["c"] and "policies" not in alice
    assert server.client("").auth.userpass.login("alice", "pw1", mount_point=up)
    assert up_.delete_user("alice", mount_point=up).status_code == 204
    assert up_.delete_user("alice", mount_point=up).status_code == 204
    with pytest.raises(InvalidPath):
        up_.read_user("alice", mount_point=up)
    up_.delete_user("carol", mount_point=up)
    with pytest.raises(InvalidPath):
        up_.list_user(mount_point=up)


def test_password_and_policies(client: hvac.Client, server: ServerProcess, up: str) -> None:
    up_ = client.auth.userpass
    up_.create_or_update_user("dave", "old", mount_point=up)
    assert up_.update_password_on_user("dave", "new", mount_point=up).status_code == 204
    anon = server.client("")
    with pytest.raises(InvalidRequest, match="invalid username or password"):
        anon.auth.userpass.login("dave", "old", mount_point=up)
    assert anon.auth.userpass.login("dave", "new", mount_point=up)["auth"]["client_token"]
    r = server.request("POST", f"auth/{up}/users/dave/policies", json={"policies": "x,y"})
    assert r.status_code == 204
    assert up_.read_user("dave", mount_point=up)["data"]["token_policies"] == ["x", "y"]
    for sub, body in (("password", {"password": "p"}), ("policies", {"policies": "a"})):
        r = server.request("POST", f"auth/{up}/users/ghost/{sub}", json=body)
        assert r.status_code == 500
        assert "username does not exist" in r.json()["errors"][0]
    for sub, body in (("policies", {"token_policies": {"a": 1}}),
                      ("password", {"password": ["x"]}), ("password", {"password_hash": "zz"}),
                      ("password", {"password": "a", "password_hash": "b"})):
        r = server.request("POST", f"auth/{up}/users/dave/{sub}", json=body)
        assert r.status_code == 400, (sub, body, r.text)
    r = server.request("POST", f"auth/{up}/login/dave", json={"password": {"a": 1}}, token="")
    assert r.status_code == 400
    r = server.request("POST", f"auth/{up}/users/dave/password", json={})
    assert r.status_code == 400
    assert r.json()["errors"] == ["must provide either password or password_hash"]


def test_login_auth_block(client: hvac.Client, server: ServerProcess, up: str) -> None:
    client.auth.userpass.create_or_update_user("erin", "pw", policies=["p2", "p1"],
                                               mount_point=up, token_ttl="20m")
    anon = server.client("")
    resp = anon.auth.userpass.login("ERIN", "pw", mount_point=up)
    assert resp["data"] is None and resp["lease_id"] == "" and resp["lease_duration"] == 0
    auth = resp["auth"]
    assert list(auth) == AUTH_KEYS  # no identity_policies: omitempty
    assert auth["policies"] == ["default", "p1", "p2"] == auth["token_policies"]
    assert auth["metadata"] == {"username": "erin"}
    assert auth["lease_duration"] == 1200 and auth["renewable"] is True
    assert auth["token_type"] == "service" and auth["orphan"] is True
    assert len(auth["entity_id"]) == 36 and auth["num_uses"] == 0 and len(auth["accessor"]) == 24
    me = anon.auth.token.lookup_self()["data"]  # hvac adopted the token
    assert me["display_name"] == f"{up}-erin"
    assert me["path"] == f"auth/{up}/login/ERIN"
    assert me["meta"] == {"username": "erin"} and me["orphan"] is True


def test_login_ignores_token_and_errors(server: ServerProcess, up: str,
                                        client: hvac.Client) -> None:
    client.auth.userpass.create_or_update_user("fred", "pw", mount_point=up)
    r = server.request("POST", f"auth/{up}/login/fred", json={"password": "pw", "extra": 1},
                       token="bogus-token")
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == [
        "Endpoint ignored these unrecognized parameters: [extra]"]
    r = server.request("POST", f"auth/{up}/login/fred", json={}, token="")
    assert r.status_code == 500 and r.json() == {"errors": ["missing password"]}
    for user, pw in (("fred", "wrong"), ("nobody", "pw")):
        r = server.request("POST", f"auth/{up}/login/{user}", json={"password": pw}, token="")
        assert r.status_code == 400
        assert r.json()["errors"] == ["invalid username or password"]
    r = server.request("POST", f"auth/{up}/login/fred", json={"password": "x" * 100}, token="")
    assert r.status_code == 400


def test_malformed_writes(client: hvac.Client, server: ServerProcess, up: str) -> None:
    base = f"auth/{up}/users/gina"
    cases = [
        ({}, "must provide either password or password_hash"),
        ({"password": "a", "password_hash": "$2a$10$x"},
         "only one of password or password_hash may be provided"),
        ({"password_hash": "not-bcrypt"}, "password_hash is not a valid bcrypt hash"),
        ({"password": "a", "token_type": "foo"}, "invalid 'token_type' value \"foo\""),
        ({"password": "a", "token_ttl": "2h", "token_max_ttl": "1h"},
         "'token_ttl' cannot be greater than 'token_max_ttl'"),
        ({"password": "a", "token_ttl": -5}, "error converting input -5 for field "
         "\"token_ttl\": cannot provide negative value '-5'"),
        ({"password": "a", "token_type": "default-service"},
         'invalid \'token_type\' value "default-service"'),
        ({"password": "a", "token_num_uses": -1}, "'token_num_uses' cannot be negative"),
        ({"password": "a", "token_num_uses": "x"}, None),
        ({"password": "a", "token_ttl": "soon"}, None),
        ({"password": "a", "token_bound_cidrs": "bad"}, None),
        ({"password": "a", "token_no_default_policy": "maybe"}, None),
        ({"password": "a", "token_policies": {"a": 1}}, None),
        ({"password": "a", "token_type": "batch", "token_period": "1h"},
         "'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic "
         "tokens"),
        ({"password": "a", "token_type": "batch", "token_num_uses": 2},
         "'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with "
         "limited use count"),
        ({"password": ["a"]}, None),
        ({"password": "y" * 80}, "bcrypt: password length exceeds 72 bytes"),
    ]
    for body, message in cases:
        r = server.request("POST", base, json=body)
        assert r.status_code == 400, (body, r.text)
        if message is not None:
            assert r.json()["errors"] == [message], body
    with pytest.raises(InvalidPath):  # nothing half-written
        client.auth.userpass.read_user("gina", mount_point=up)
    r = server.request("POST", base, data="{not json")
    assert r.status_code == 400
    r = server.request("POST", f"auth/{up}/users/-bad", json={"password": "a"})
    assert r.status_code == 404
    # an existing user keeps its entry when an update is refused
    client.auth.userpass.create_or_update_user("gina", "pw", mount_point=up, token_ttl=60)
    r = server.request("POST", base, json={"token_max_ttl": 30})
    assert r.status_code == 400
    assert client.auth.userpass.read_user("gina", mount_point=up)["data"]["token_max_ttl"] == 0
    # a ready bcrypt hash is accepted (Vault 1.17+ password_hash)
    import bcrypt

    hashed = bcrypt.hashpw(b"hashed-pw", bcrypt.gensalt(4)).decode()
    assert server.request("POST", f"auth/{up}/users/hank",
                          json={"password_hash": hashed}).status_code == 204
    assert server.client("").auth.userpass.login("hank", "hashed-pw", mount_point=up)


def test_bound_cidrs(client: hvac.Client, server: ServerProcess, up: str) -> None:
    up_ = client.auth.userpass
    up_.create_or_update_user("ivan", "pw", mount_point=up, token_bound_cidrs="127.0.0.1/32")
    up_.create_or_update_user("judy", "pw", mount_point=up, bound_cidrs="10.0.0.0/8")
    assert up_.read_user("judy", mount_point=up)["data"]["bound_cidrs"] == ["10.0.0.0/8"]
    status, body = _raw(server, "POST", f"auth/{up}/login/judy", {"password": "pw"})
    assert status == 403 and body == {"errors": ["permission denied"]}
    status, body = _raw(server, "POST", f"auth/{up}/login/ivan", {"password": "pw"},
                        source="127.0.0.2")
    assert status == 403
    status, body = _raw(server, "POST", f"auth/{up}/login/ivan", {"password": "pw"})
    assert status == 200
    token = body["auth"]["client_token"]
    status, body = _raw(server, "GET", "auth/token/lookup-self", token=token)
    assert status == 200 and body["data"]["bound_cidrs"] == ["127.0.0.1"]
    status, body = _raw(server, "GET", "auth/token/lookup-self", token=token,
                        source="127.0.0.2")
    assert status == 403 and body == {"errors": ["permission denied"]}


def test_batch_tokens(client: hvac.Client, server: ServerProcess) -> None:
    for mount_type, role_type, expected in (("default-batch", "default", "batch"),
                                            ("batch", "service", "batch"),
                                            ("default-batch", "service", "service"),
                                            ("service", "batch", "service")):
        path = f"up-{uuid.uuid4().hex[:8]}"
        client.sys.enable_auth_method("userpass", path=path,
                                      config={"token_type": mount_type})
        try:
            client.auth.userpass.create_or_update_user("kim", "pw", mount_point=path,
                                                       token_type=role_type)
            anon = server.client("")
            auth = anon.auth.userpass.login("kim", "pw", mount_point=path)["auth"]
            assert auth["token_type"] == expected, (mount_type, role_type)
            if expected == "batch":
                assert auth["accessor"] == "" and auth["renewable"] is False
                assert auth["client_token"].startswith("hvb.")
                assert auth["lease_duration"] > 0
            assert anon.auth.token.lookup_self()["data"]["type"] == expected
        finally:
            client.sys.disable_auth_method(path)


def test_ttl_caps_and_no_default_policy(client: hvac.Client, server: ServerProcess,
                                        up: str) -> None:
    anon = server.client("")
    up_ = client.auth.userpass
    up_.create_or_update_user("lee", "pw", mount_point=up)  # no TTL: mount, then system
    assert anon.auth.userpass.login("lee", "pw", mount_point=up)["auth"][
        "lease_duration"] == 2764800
    client.sys.tune_auth_method(up, default_lease_ttl="1h", max_lease_ttl="2h")
    assert anon.auth.userpass.login("lee", "pw", mount_point=up)["auth"][
        "lease_duration"] == 3600
    up_.create_or_update_user("lee", mount_point=up, token_ttl="3h")  # over the mount max
    resp = anon.auth.userpass.login("lee", "pw", mount_point=up)
    assert resp["auth"]["lease_duration"] == 7200
    assert resp["warnings"] == ['TTL of "3h" exceeded the effective max_ttl of "2h"; TTL value '
                                'is capped accordingly']
    with pytest.raises(InvalidRequest, match="'token_ttl' cannot be greater"):
        up_.create_or_update_user("lee", mount_point=up, token_ttl="50m", token_max_ttl="40m")
    r = server.request("POST", f"auth/{up}/users/lee", json={"token_ttl": "30m",
                                                               "token_max_ttl": "40m",
                                                               "token_explicit_max_ttl": "10m"})
    assert r.status_code == 204
    resp = anon.auth.userpass.login("lee", "pw", mount_point=up)
    assert resp["auth"]["lease_duration"] == 600 and resp["warnings"]
    up_.create_or_update_user("lee", mount_point=up, token_explicit_max_ttl=0, token_ttl=0,
                              token_max_ttl=0, token_period="15m")
    auth = anon.auth.userpass.login("lee", "pw", mount_point=up)["auth"]
    assert auth["lease_duration"] == 900 and auth["renewable"] is True
    up_.create_or_update_user("lee", mount_point=up, token_period=0,
                              token_no_default_policy=True, token_num_uses=2)
    auth = anon.auth.userpass.login("lee", "pw", mount_point=up)["auth"]
    assert auth["policies"] == [] and "token_policies" not in auth and auth["num_uses"] == 2


def test_failed_login_forbidden_after_disable(client: hvac.Client, server: ServerProcess,
                                             up: str) -> None:
    """A token from a login is usable; GET login is 405; a login from hvac raises the
    right hvac exceptions for 500 and 400."""
    client.auth.userpass.create_or_update_user("max", "pw", mount_point=up)
    anon = server.client("")
    with pytest.raises(InternalServerError):
        anon.auth.userpass.login("max", "", mount_point=up)
    with pytest.raises(InvalidRequest):
        anon.auth.userpass.login("max", "bad", mount_point=up)
    anon.auth.userpass.login("max", "pw", mount_point=up)
    assert anon.is_authenticated()
    with pytest.raises(Forbidden):  # a plain login token has no rights on sys/auth
        anon.sys.enable_auth_method("userpass", path="x-" + up)


def test_logins_are_audited(client: hvac.Client, server: ServerProcess, up: str,
                            tmp_path: Path) -> None:
    """A failed login leaves a request and a response entry with its error; the password
    and the issued token never appear in clear."""
    from tests.integration.test_audit import for_path, read_lines

    device = f"file-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "audit.log"
    client.sys.enable_audit_device("file", path=device, options={"file_path": str(log)})
    try:
        client.auth.userpass.create_or_update_user("nora", "s3cret-pw", mount_point=up)
        client.sys.tune_auth_method(up, audit_non_hmac_request_keys=["note"])
        r = server.request("POST", f"auth/{up}/login/nora",
                           json={"password": "wrong-pw", "note": "in-clear"}, token="")
        assert r.status_code == 400
        r = server.request("POST", f"auth/{up}/login/nora", json={"password": "s3cret-pw"},
                           token="bogus")
        token = r.json()["auth"]["client_token"]
        entries = for_path(read_lines(log), f"auth/{up}/login/nora")
        assert [e["type"] for e in entries] == ["request", "response"] * 2
        failed = entries[1]
        assert failed["error"] == "invalid username or password"
        assert failed["request"]["data"]["note"] == "in-clear"  # the auth mount's tuning
        assert failed["request"]["data"]["password"].startswith("hmac-sha256:")
        assert failed["request"]["mount_type"] == "userpass"
        assert entries[3]["error"] == ""
        assert entries[3]["response"]["auth"]["client_token"].startswith("hmac-sha256:")
        text = log.read_text()
        assert "s3cret-pw" not in text and "wrong-pw" not in text and token not in text
        assert "bogus" not in text  # the ignored X-Vault-Token is not the caller's
    finally:
        server.request("DELETE", f"sys/audit/{device}")


def test_renew_self(client: hvac.Client, server: ServerProcess, up: str) -> None:
    """renew-self re-reads the user's TTLs and refuses once its policies changed (§3)."""
    client.auth.userpass.create_or_update_user("olga", "pw", mount_point=up, token_ttl="10m",
                                               token_max_ttl="1h", token_policies="p1")
    anon = server.client("")
    anon.auth.userpass.login("olga", "pw", mount_point=up)
    client.auth.userpass.create_or_update_user("olga", mount_point=up, token_ttl="20m")
    auth = anon.auth.token.renew_self()["auth"]
    assert auth["lease_duration"] == 1200 and auth["policies"] == ["default", "p1"]
    resp = anon.auth.token.renew_self(increment="2h")
    assert resp["auth"]["lease_duration"] <= 3600 and resp["warnings"]
    client.auth.userpass.create_or_update_user("olga", mount_point=up, token_policies="p2")
    r = server.request("POST", "auth/token/renew-self", json={}, token=anon.token)
    assert r.status_code == 500
    assert r.json()["errors"] == [
        "1 error occurred:\n\t* failed to renew entry: policies have changed, not renewing\n\n"]
    client.auth.userpass.delete_user("olga", mount_point=up)  # deleted: not renewed, 204
    r = server.request("POST", "auth/token/renew-self", json={}, token=anon.token)
    assert r.status_code == 204


def test_user_lockout(client: hvac.Client, server: ServerProcess, up: str) -> None:
    """5 wrong passwords lock the user (even the right one is 403), unknown users are not
    counted, sys/locked-users lists and unlocks; the mount's threshold is tunable."""
    client.auth.userpass.create_or_update_user("pat", "pw", mount_point=up)
    accessor = client.sys.list_auth_methods()["data"][up + "/"]["accessor"]

    def login(user: str, pw: str) -> tuple[int, Any]:
        r = server.request("POST", f"auth/{up}/login/{user}", json={"password": pw}, token="")
        return r.status_code, r.json()

    for _ in range(6):
        assert login("ghost", "bad")[0] == 400
    for _ in range(5):
        assert login("pat", "bad") == (400, {"errors": ["invalid username or password"]})
    assert login("pat", "pw") == (403, {"errors": ["permission denied"]})
    assert login("PAT", "bad")[0] == 403
    locked = server.request("GET", "sys/locked-users").json()["data"]
    mine = [a for ns in locked["by_namespace"] for a in ns["mount_accessors"]
            if a["mount_accessor"] == accessor]
    assert mine == [{"mount_accessor": accessor, "counts": 1, "alias_identifiers": ["pat"]}]
    r = server.request("POST", f"sys/locked-users/{accessor}/unlock/pat")
    assert r.status_code == 204
    assert login("pat", "pw")[0] == 200
    client.sys.tune_auth_method(up, user_lockout_config={"lockout_threshold": 2,
                                                         "lockout_duration": "10m"})
    tune = client.sys.read_auth_method_tuning(up)["data"]
    assert tune["user_lockout_threshold"] == 2 and tune["user_lockout_duration"] == 600
    assert tune["user_lockout_disable"] is False
    assert login("pat", "bad")[0] == 400 and login("pat", "pw")[0] == 200  # success resets
    assert login("pat", "bad")[0] == 400 and login("pat", "bad")[0] == 400
    assert login("pat", "pw")[0] == 403
    client.sys.tune_auth_method(up, user_lockout_config={"lockout_disable": True})
    assert login("pat", "pw")[0] == 200
    r = server.request("POST", f"sys/auth/{up}/tune",
                       json={"user_lockout_config": {"lockout_threshold": "x"}})
    assert r.status_code == 400
