"""sys/auth (spec auth-api §1.1-1.6) with real hvac against the session server: enable, list,
read, tune (both paths), disable (tokens revoked), routing and login-path rules."""

from __future__ import annotations

import uuid

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidPath, InvalidRequest

from tests.helpers import ServerProcess


def _path() -> str:
    return f"up-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def userpass(client: hvac.Client) -> str:
    path = _path()
    client.sys.enable_auth_method("userpass", path=path)
    yield path
    client.sys.disable_auth_method(path)


ENTRY_KEYS = {"accessor", "config", "description", "external_entropy_access", "local", "options",
              "plugin_version", "running_plugin_version", "running_sha256", "seal_wrap", "type",
              "uuid", "deprecation_status"}


def test_enable_list_read_disable(client: hvac.Client, server: ServerProcess) -> None:
    path = _path()
    r = client.sys.enable_auth_method("userpass", description="people", path=path,
                                      config={"default_lease_ttl": "1h"})
    assert r.status_code == 204
    listed = client.sys.list_auth_methods()
    entry = listed["data"][path + "/"]
    assert listed[path + "/"] == entry  # mirrored at the top level
    assert set(entry) == ENTRY_KEYS
    assert entry["type"] == "userpass" and entry["description"] == "people"
    assert entry["accessor"].startswith("auth_userpass_") and len(entry["accessor"]) == 22
    assert entry["config"] == {"default_lease_ttl": 3600, "force_no_cache": False,
                               "max_lease_ttl": 0, "token_type": "default-service"}
    assert entry["options"] == {}
    token = listed["data"]["token/"]
    assert token["type"] == "token" and token["description"] == "token based credentials"
    assert token["options"] is None and "deprecation_status" not in token
    read = server.request("GET", f"sys/auth/{path}").json()
    assert read["data"] == entry and read["type"] == "userpass"
    assert client.sys.disable_auth_method(path).status_code == 204
    assert path + "/" not in client.sys.list_auth_methods()["data"]
    # disabling nothing is fine too
    assert client.sys.disable_auth_method(path).status_code == 204


def test_enable_errors(client: hvac.Client, server: ServerProcess, userpass: str) -> None:
    cases = [
        ({}, "backend type must be specified as a string"),
        ({"type": "token"}, "token credential backend cannot be instantiated"),
        ({"type": "nope"}, "plugin not found in the catalog: nope"),
        ({"type": "userpass", "config": {"token_type": "weird"}},
         "invalid value for 'token_type'"),
        ({"type": "userpass", "config": {"default_lease_ttl": "2h", "max_lease_ttl": "1h"}},
         "given default lease TTL greater than given max lease TTL"),
        ({"type": "userpass", "config": {"listing_visibility": "x"}},
         "invalid listing_visibility x"),
        ({"type": "userpass", "config": {"default_lease_ttl": "zz"}},
         'time: invalid duration "zz"'),
        ({"type": "userpass", "config": "notamap"}, None),
        ({"type": ["x"]}, None),
    ]
    fresh = _path()
    for body, message in cases:
        r = server.request("POST", f"sys/auth/{fresh}", json=body)
        assert r.status_code == 400, (body, r.text)
        if message is not None:
            assert r.json()["errors"] == [message], body
    for taken in (userpass, f"{userpass}/child"):
        r = server.request("POST", f"sys/auth/{taken}", json={"type": "userpass"})
        assert r.json()["errors"] == [f"path is already in use at {userpass}/"]
    assert fresh + "/" not in client.sys.list_auth_methods()["data"]  # nothing half-written
    r = server.request("GET", f"sys/auth/{fresh}")
    assert r.status_code == 400 and r.json()["errors"] == [f"No auth engine at {fresh}/"]
    r = server.request("DELETE", "sys/auth/token")
    assert r.json()["errors"] == ["token credential backend cannot be disabled"]


def test_nested_path_and_sudo(client: hvac.Client, server: ServerProcess) -> None:
    path = f"team/{_path()}"
    client.sys.enable_auth_method("userpass", path=path)
    try:
        assert path + "/" in client.sys.list_auth_methods()["data"]
        client.sys.create_or_update_policy("authreader", 'path "sys/auth" {capabilities=["read"]}')
        tok = client.auth.token.create(policies=["authreader"])["auth"]["client_token"]
        limited = server.client(tok)
        assert path + "/" in limited.sys.list_auth_methods()["data"]
        with pytest.raises(Forbidden):  # sys/auth/* is a root path: sudo needed
            limited.sys.enable_auth_method("userpass", path=_path())
    finally:
        client.sys.disable_auth_method(path)


def test_tune(client: hvac.Client, server: ServerProcess, userpass: str) -> None:
    t = client.sys.read_auth_method_tuning(userpass)
    assert t["data"] == {"default_lease_ttl": 2764800, "description": "",
                         "force_no_cache": False, "max_lease_ttl": 2764800,
                         "token_type": "default-service"}
    r = client.sys.tune_auth_method(userpass, default_lease_ttl="30m", max_lease_ttl=7200,
                                    description="tuned", token_type="default-batch",
                                    audit_non_hmac_request_keys=["a", "b"])
    assert r.status_code == 204
    t = client.sys.read_auth_method_tuning(userpass)["data"]
    assert t["default_lease_ttl"] == 1800 and t["max_lease_ttl"] == 7200
    assert t["token_type"] == "default-batch" and t["description"] == "tuned"
    assert t["audit_non_hmac_request_keys"] == ["a", "b"]
    # the sys/mounts/auth/<path>/tune alias
    r = server.request("POST", f"sys/mounts/auth/{userpass}/tune", json={"max_lease_ttl": "3h"})
    assert r.status_code == 204, r.text
    assert server.request("GET", f"sys/mounts/auth/{userpass}/tune").json()["data"][
        "max_lease_ttl"] == 10800
    entry = client.sys.list_auth_methods()["data"][userpass + "/"]
    assert entry["config"]["default_lease_ttl"] == 1800
    assert entry["description"] == "tuned"
    errors = [
        ({"max_lease_ttl": "10m"},
         "backend max lease TTL of 600 would be less than backend default lease TTL of 1800"),
        ({"token_type": "foo"}, "invalid value for 'token_type'"),
        ({"listing_visibility": "nope"}, "invalid listing_visibility nope"),
        ({"default_lease_ttl": "bad"}, 'time: invalid duration "bad"'),
    ]
    for body, message in errors:
        r = server.request("POST", f"sys/auth/{userpass}/tune", json=body)
        assert r.status_code == 400 and r.json()["errors"] == [message], body
    r = server.request("POST", "sys/auth/token/tune", json={"token_type": "batch"})
    assert r.json()["errors"] == [
        "'token_type' cannot be set for 'token' or 'ns_token' auth mounts"]
    assert client.sys.read_auth_method_tuning("token")["data"]["token_type"] == \
        "default-service"
    r = server.request("GET", "sys/auth/missing-xyz/tune")
    assert r.json()["errors"] == ['cannot fetch sysview for path "auth/missing-xyz/"']
    r = server.request("POST", "sys/auth/missing-xyz/tune", json={"description": "x"})
    assert r.json()["errors"] == ['tune of path "auth/missing-xyz/" failed: no mount entry found']


def test_routing_and_login_paths(client: hvac.Client, server: ServerProcess,
                                 userpass: str) -> None:
    r = server.request("POST", "auth/nope/login", json={})
    assert r.status_code == 404
    assert r.json()["errors"] == ['no handler for route "auth/nope/login". route entry not found.']
    r = server.request("POST", "auth/nope/login", json={}, token="")
    assert r.status_code == 403 and r.json()["errors"] == ["permission denied"]
    r = server.request("GET", f"auth/{userpass}/nothing-here")
    assert r.status_code == 404 and "unsupported path" in r.json()["errors"][0]
    r = server.request("GET", f"auth/{userpass}/nothing-here", token="")
    assert r.status_code == 403
    r = server.request("GET", f"auth/{userpass}/users", token="")  # not a login path
    assert r.status_code == 403
    r = server.request("GET", f"auth/{userpass}/login/alice", token="")
    assert r.status_code == 405 and r.json() == {"errors": ["unsupported operation"]}
    r = server.request("POST", f"auth/{userpass}/login/", json={"password": "x"}, token="")
    assert r.status_code == 400
    assert r.json()["errors"] == ["cannot write to a path ending in '/'"]
    r = server.request("POST", f"auth/{userpass}/login/-bad", json={"password": "x"})
    assert r.status_code == 404
    # the built-in token mount is unchanged
    assert client.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_disable_revokes_tokens(client: hvac.Client, server: ServerProcess) -> None:
    path = _path()
    client.sys.enable_auth_method("userpass", path=path)
    client.auth.userpass.create_or_update_user("bob", "pw", mount_point=path)
    login = server.client("")
    token = login.auth.userpass.login("bob", "pw", mount_point=path)["auth"]["client_token"]
    assert login.auth.token.lookup_self()["data"]["path"] == f"auth/{path}/login/bob"
    # the login token has a lease under the login path (what disabling revokes by)
    keys = client.sys.list_leases(f"auth/{path}/login/bob")["data"]["keys"]
    assert len(keys) == 1 and keys[0].startswith("h")
    client.sys.disable_auth_method(path)
    with pytest.raises(InvalidPath):  # nothing left under it
        client.sys.list_leases(f"auth/{path}/login/bob")
    with pytest.raises(Forbidden):
        server.client(token).auth.token.lookup_self()
    # re-enabled at the same path: the users are gone with the old storage
    client.sys.enable_auth_method("userpass", path=path)
    try:
        with pytest.raises(InvalidPath):
            client.auth.userpass.read_user("bob", mount_point=path)
        with pytest.raises(InvalidRequest):
            server.client("").auth.userpass.login("bob", "pw", mount_point=path)
    finally:
        client.sys.disable_auth_method(path)


def test_ui_mounts_lists_auth_mounts(client: hvac.Client, server: ServerProcess,
                                     userpass: str) -> None:
    auth = server.request("GET", "sys/internal/ui/mounts").json()["data"]["auth"]
    assert auth[userpass + "/"]["type"] == "userpass" and "token/" in auth
    anon = server.request("GET", "sys/internal/ui/mounts", token="").json()["data"]["auth"]
    assert userpass + "/" not in anon
    client.sys.tune_auth_method(userpass, listing_visibility="unauth")
    anon = server.request("GET", "sys/internal/ui/mounts", token="").json()["data"]["auth"]
    assert anon[userpass + "/"] == {"description": "", "options": {}, "type": "userpass"}
    one = server.request("GET", f"sys/internal/ui/mounts/auth/{userpass}/login/x").json()
    assert one["data"]["path"] == userpass + "/" and one["data"]["type"] == "userpass"
    r = server.request("GET", "sys/internal/ui/mounts/auth/nothing-here")
    assert r.status_code == 403


def test_remount_auth_mount(client: hvac.Client, server: ServerProcess) -> None:
    """sys/remount moves an auth mount (users come along, its tokens are revoked)."""
    src, dst = _path(), _path()
    client.sys.enable_auth_method("userpass", path=src)
    client.auth.userpass.create_or_update_user("ann", "pw", mount_point=src)
    token = server.client("").auth.userpass.login("ann", "pw", mount_point=src)["auth"][
        "client_token"]
    for body, message in (({"from": f"auth/{src}", "to": "elsewhere"},
                           'cannot remount auth mount to non-auth mount "elsewhere/"'),
                          ({"from": "secret", "to": f"auth/{dst}"},
                           f'cannot remount non-auth mount to auth mount "auth/{dst}/"'),
                          ({"from": "auth/nothing-xyz", "to": f"auth/{dst}"},
                           'no matching mount at "auth/nothing-xyz/"')):
        r = server.request("POST", "sys/remount", json=body)
        assert r.status_code == 400 and r.json()["errors"] == [message], body
    r = server.request("POST", "sys/remount", json={"from": f"auth/{src}", "to": f"auth/{dst}"})
    assert r.status_code == 200, r.text
    try:
        methods = client.sys.list_auth_methods()["data"]
        assert dst + "/" in methods and src + "/" not in methods
        with pytest.raises(Forbidden):
            server.client(token).auth.token.lookup_self()
        assert server.client("").auth.userpass.login("ann", "pw", mount_point=dst)
    finally:
        client.sys.disable_auth_method(dst)
