"""ACL policies over HTTP: sys/policies/acl, legacy sys/policy, sys/capabilities*, and an
ACL matrix enforced by the core pipeline for tokens with specific policies (spec §4.9)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import hvac
import pytest
import requests

from tests.helpers import ServerProcess


def _name(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def policy_name(server: ServerProcess) -> Iterator[str]:
    name = _name()
    yield name
    server.request("DELETE", f"sys/policies/acl/{name}")


def _token(client: hvac.Client, *policies: str, no_default: bool = False) -> str:
    resp = client.auth.token.create(policies=list(policies), no_default_policy=no_default)
    return resp["auth"]["client_token"]


# -- sys/policies/acl ------------------------------------------------------------------------


def test_acl_policy_crud_with_hvac(client: hvac.Client, policy_name: str) -> None:
    text = '# app policy\npath "transit/encrypt/app-*" {\n  capabilities = ["update"]\n}\n'
    r = client.sys.create_or_update_acl_policy(policy_name, text)
    assert r.status_code == 204
    read = client.sys.read_acl_policy(policy_name)
    assert read["data"] == {"name": policy_name, "policy": text}  # verbatim
    keys = client.sys.list_acl_policies()["data"]["keys"]
    assert policy_name in keys and "default" in keys and keys[-1] == "root"
    assert "response-wrapping" not in keys
    client.sys.delete_acl_policy(policy_name)
    assert policy_name not in client.sys.list_acl_policies()["data"]["keys"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.sys.read_acl_policy(policy_name)


def test_a_large_policy_is_parsed_off_the_loop(
        client: hvac.Client, server: ServerProcess, policy_name: str) -> None:
    """A 1,500-path policy (~110 KiB, over a second of HCL parsing) is parsed in the process
    pool: sys/health keeps answering meanwhile, and the policy works once written."""
    import threading
    import time

    blocks = [f'path "secret/data/app{i}/*" {{\n  capabilities = ["read", "list"]\n}}\n'
              for i in range(1500)]
    text = "".join(blocks) + 'path "transit/encrypt/big" {\n  capabilities = ["update"]\n}\n'
    health: list[int] = []
    done = threading.Event()

    def poll() -> None:
        with requests.Session() as s:
            while not done.is_set():
                health.append(s.get(f"{server.addr}/v1/sys/health", timeout=10).status_code)
                time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        r = client.sys.create_or_update_acl_policy(policy_name, text)
    finally:
        done.set()
        poller.join(10)
    assert r.status_code == 204
    # answered while the policy was being parsed (on the event loop, none or one would be)
    assert len(health) >= 5 and set(health) == {200}, health
    assert client.sys.read_acl_policy(policy_name)["data"]["policy"] == text
    token = _token(client, policy_name)
    r = server.request("POST", "sys/capabilities-self", token=token,
                       json={"paths": ["secret/data/app1499/x", "transit/encrypt/big"]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["secret/data/app1499/x"] == ["list", "read"]
    assert r.json()["data"]["transit/encrypt/big"] == ["update"]
    bad = text + 'path "x" { capabilities = ["fly"] }\n'
    r = server.request("PUT", f"sys/policies/acl/{policy_name}", json={"policy": bad})
    assert r.status_code == 400 and "fly" in r.json()["errors"][0], r.text
    assert client.sys.read_acl_policy(policy_name)["data"]["policy"] == text


def test_policy_names_are_lower_cased(server: ServerProcess) -> None:
    name = _name("Mixed")
    r = server.request(
        "PUT", f"sys/policies/acl/{name}", json={"policy": 'path "x" { capabilities = ["read"] }'}
    )
    assert r.status_code == 204, r.text
    r = server.request("GET", f"sys/policies/acl/{name.lower()}")
    assert r.status_code == 200 and r.json()["data"]["name"] == name.lower()
    assert server.request("GET", f"sys/policies/acl/{name}").json()["data"]["name"] == name.lower()
    assert server.request("DELETE", f"sys/policies/acl/{name}").status_code == 204
    assert server.request("GET", f"sys/policies/acl/{name.lower()}").status_code == 404


def test_base64_policy_is_decoded(server: ServerProcess, policy_name: str) -> None:
    text = 'path "secret/*" { capabilities = ["read"] }'
    encoded = base64.b64encode(text.encode()).decode()
    r = server.request("POST", f"sys/policies/acl/{policy_name}", json={"policy": encoded})
    assert r.status_code == 204, r.text
    r = server.request("GET", f"sys/policies/acl/{policy_name}")
    assert r.json()["data"]["policy"] == text


def test_json_policy_accepted(client: hvac.Client, policy_name: str) -> None:
    doc = {"path": {"secret/*": {"capabilities": ["read", "list"]}}}
    client.sys.create_or_update_acl_policy(policy_name, doc)  # hvac sends it as JSON text
    token = _token(client, policy_name)
    caps = client.sys.get_capabilities(["secret/x"], token=token)["data"]
    assert caps["capabilities"] == ["list", "read"]


def test_read_root_and_default(server: ServerProcess) -> None:
    r = server.request("GET", "sys/policies/acl/root")
    assert r.status_code == 200 and r.json()["data"] == {"name": "root", "policy": ""}
    r = server.request("GET", "sys/policies/acl/default")
    assert r.status_code == 200
    assert 'path "auth/token/lookup-self"' in r.json()["data"]["policy"]
    r = server.request("GET", "sys/policies/acl/no-such-policy")
    assert r.status_code == 404 and r.json() == {"errors": []}


def test_list_with_get_query(server: ServerProcess) -> None:
    r = server.request("GET", "sys/policies/acl", params={"list": "true"})
    assert r.status_code == 200 and "default" in r.json()["data"]["keys"]


# -- legacy sys/policy -----------------------------------------------------------------------


def test_legacy_policy_endpoints(client: hvac.Client, server: ServerProcess) -> None:
    name = _name("legacy")
    text = 'path "secret/*" { policy = "write" }'
    r = client.sys.create_or_update_policy(name, text)
    assert r.status_code == 204
    read = client.sys.read_policy(name)
    assert read["data"] == {"name": name, "rules": text}
    assert read["rules"] == text  # legacy endpoints repeat data at the top level
    listed = client.sys.list_policies()
    assert name in listed["data"]["policies"] and listed["data"]["keys"] == listed["policies"]
    # legacy `rules` is accepted with a deprecation warning
    r = server.request("PUT", f"sys/policy/{name}", json={"rules": 'path "a" { policy = "read" }'})
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == ["'rules' is deprecated, please use 'policy' instead"]
    token = _token(client, name)
    assert client.sys.get_capabilities(["a"], token=token)["data"]["a"] == ["list", "read"]
    client.sys.delete_policy(name)
    assert server.request("GET", f"sys/policy/{name}").status_code == 404


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["sys/policies/acl", "sys/policy"])
@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("bad", {"policy": 'path "a" { capabilities = ["read"'}, "failed to parse policy: "),
        (
            "bad",
            {"policy": 'path "a" { capabilities = ["reed"] }'},
            'failed to parse policy: path "a": invalid capability "reed"',
        ),
        (
            "bad",
            {"policy": 'path "a" { policy = "admin" }'},
            'failed to parse policy: path "a": invalid policy "admin"',
        ),
        ("bad", {"policy": '{"path": '}, "failed to parse policy: "),
        ("bad", {"policy": 'bogus = "x"'}, 'failed to parse policy: invalid key "bogus"'),
        ("bad", {"policy": ""}, "'policy' parameter not supplied or empty"),
        ("bad", {}, "'policy' parameter not supplied or empty"),
        ("bad", {"policy": {"not": "a string"}}, ""),
        ("root", {"policy": 'path "a" { capabilities = ["read"] }'}, 'cannot update "root" policy'),
        ("ROOT", {"policy": 'path "a" { capabilities = ["read"] }'}, 'cannot update "root" policy'),
    ],
)
def test_write_bad_input(
    server: ServerProcess, prefix: str, name: str, body: dict, message: str
) -> None:
    r = server.request("PUT", f"{prefix}/{name}", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0].startswith(message), r.json()
    if name == "bad":
        assert server.request("GET", "sys/policies/acl/bad").status_code == 404


@pytest.mark.parametrize("prefix", ["sys/policies/acl", "sys/policy"])
def test_malformed_json_body(server: ServerProcess, prefix: str) -> None:
    r = server.request(
        "PUT", f"{prefix}/bad", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("prefix", ["sys/policies/acl", "sys/policy"])
def test_delete_protected_policies(server: ServerProcess, prefix: str) -> None:
    r = server.request("DELETE", f"{prefix}/root")
    assert r.status_code == 400 and r.json()["errors"] == ['cannot delete "root" policy']
    r = server.request("DELETE", f"{prefix}/default")
    assert r.status_code == 400 and r.json()["errors"] == ["cannot delete default policy"]
    assert server.request("GET", "sys/policies/acl/default").status_code == 200


def test_delete_missing_policy_is_204(server: ServerProcess) -> None:
    assert server.request("DELETE", "sys/policies/acl/never-was").status_code == 204


# -- capabilities ----------------------------------------------------------------------------


def test_capabilities_self_root(client: hvac.Client) -> None:
    data = client.sys.get_capabilities(["transit/keys/x", "sys/audit"])["data"]
    assert data["transit/keys/x"] == ["root"] and data["sys/audit"] == ["root"]
    one = client.sys.get_capabilities(["anything"])["data"]
    assert one["capabilities"] == ["root"] and one["anything"] == ["root"]


def test_capabilities_self_token_and_by_token_and_accessor(
    client: hvac.Client, server: ServerProcess, policy_name: str
) -> None:
    client.sys.create_or_update_acl_policy(
        policy_name,
        'path "transit/keys/*" { capabilities = ["read", "list"] }\n'
        'path "transit/keys/secret" { capabilities = ["deny"] }\n',
    )
    resp = client.auth.token.create(policies=[policy_name])
    token, accessor = resp["auth"]["client_token"], resp["auth"]["accessor"]
    paths = ["transit/keys/a", "transit/keys/secret", "transit/encrypt/a"]
    expected = {"transit/keys/a": ["list", "read"], "transit/keys/secret": ["deny"]}
    expected["transit/encrypt/a"] = ["deny"]
    own = server.client(token).sys.get_capabilities(paths)["data"]
    assert {p: own[p] for p in paths} == expected and "capabilities" not in own
    assert client.sys.get_capabilities(paths, token=token)["data"] == expected
    by_acc = client.sys.get_capabilities(paths, accessor=accessor)["data"]
    assert by_acc == expected
    # the default policy grants capabilities-self; `path` is the deprecated field
    r = server.request(
        "POST", "sys/capabilities-self", json={"path": "transit/keys/a"}, token=token
    )
    assert r.status_code == 200 and r.json()["data"]["capabilities"] == ["list", "read"]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("sys/capabilities", {"token": "hvs.nope", "paths": ["a"]}, "invalid token"),
        ("sys/capabilities-accessor", {"accessor": "nope", "paths": ["a"]}, "invalid accessor"),
        ("sys/capabilities-accessor", {"paths": ["a"]}, "missing accessor"),
        ("sys/capabilities-self", {}, "paths must be supplied"),
    ],
)
def test_capabilities_bad_input(server: ServerProcess, path: str, body: dict, message: str) -> None:
    r = server.request("POST", path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"] == [message]


# -- ACL enforcement matrix ------------------------------------------------------------------


def _status(
    server: ServerProcess, method: str, path: str, token: str, body: dict | None = None
) -> int:
    return server.request(method, path, json=body, token=token).status_code


def test_transit_acl_matrix(client: hvac.Client, server: ServerProcess, mount: str) -> None:
    m = mount
    client.secrets.transit.create_key("existing", mount_point=m)
    client.secrets.transit.create_key("doomed", mount_point=m)
    client.secrets.transit.update_key_configuration("doomed", deletion_allowed=True, mount_point=m)
    ct = client.secrets.transit.encrypt_data("existing", "aGk=", mount_point=m)["data"][
        "ciphertext"
    ]
    pol = {
        "reader": f'path "{m}/keys/*" {{ capabilities = ["read", "list"] }}',
        "creator": f'path "{m}/keys/*" {{ capabilities = ["create", "update"] }}',
        "deleter": f'path "{m}/keys/*" {{ capabilities = ["delete"] }}',
        "enc-update": f'path "{m}/encrypt/*" {{ capabilities = ["update"] }}',
        "enc-upsert": f'path "{m}/encrypt/*" {{ capabilities = ["create", "update"] }}',
        "decrypter": f'path "{m}/decrypt/+" {{ capabilities = ["update"] }}',
        "rotator": f'path "{m}/keys/+/rotate" {{ capabilities = ["update"] }}',
        "denier": f'path "{m}/*" {{ capabilities = ["deny"] }}',
    }
    names = {k: _name(k) for k in pol}
    for k, text in pol.items():
        client.sys.create_or_update_acl_policy(names[k], text)
    try:
        tok = {k: _token(client, names[k]) for k in pol}
        tok["reader+denier"] = _token(client, names["reader"], names["denier"])
        enc = {"plaintext": "aGk="}
        cases = [
            # (token, method, path, body, allowed)
            ("reader", "GET", f"{m}/keys/existing", None, True),
            ("reader", "LIST", f"{m}/keys", None, True),
            ("reader", "POST", f"{m}/keys/new1", {}, False),
            ("reader", "DELETE", f"{m}/keys/doomed", None, False),
            ("reader", "POST", f"{m}/encrypt/existing", enc, False),
            ("creator", "POST", f"{m}/keys/new2", {}, True),
            ("creator", "GET", f"{m}/keys/existing", None, False),
            ("creator", "LIST", f"{m}/keys", None, False),
            ("enc-update", "POST", f"{m}/encrypt/existing", enc, True),
            ("enc-update", "POST", f"{m}/encrypt/upserted-a", enc, False),  # needs create
            ("enc-upsert", "POST", f"{m}/encrypt/upserted-b", enc, True),
            ("enc-update", "POST", f"{m}/decrypt/existing", {"ciphertext": ct}, False),
            ("decrypter", "POST", f"{m}/decrypt/existing", {"ciphertext": ct}, True),
            ("decrypter", "POST", f"{m}/encrypt/existing", enc, False),
            ("rotator", "POST", f"{m}/keys/existing/rotate", None, True),
            ("rotator", "POST", f"{m}/keys/existing", {}, False),
            ("deleter", "DELETE", f"{m}/keys/doomed", None, True),
            ("denier", "GET", f"{m}/keys/existing", None, False),
            ("reader+denier", "GET", f"{m}/keys/existing", None, True),  # different pattern
        ]
        for who, method, path, body, allowed in cases:
            status = _status(server, method, path, tok[who], body)
            if allowed:
                assert status in (200, 204), (who, method, path, status)
            else:
                assert status == 403, (who, method, path, status)
                r = server.request(method, path, json=body, token=tok[who])
                assert r.json() == {"errors": ["1 error occurred:\n\t* permission denied\n\n"]} or (
                    r.json() == {"errors": ["permission denied"]}
                )
        # what the ACL really did
        assert client.secrets.transit.read_key("new2", mount_point=m)["data"]["name"] == "new2"
        assert client.secrets.transit.read_key("upserted-b", mount_point=m)
        with pytest.raises(hvac.exceptions.InvalidPath):
            client.secrets.transit.read_key("upserted-a", mount_point=m)
        with pytest.raises(hvac.exceptions.InvalidPath):
            client.secrets.transit.read_key("doomed", mount_point=m)
        keys = client.secrets.transit.read_key("existing", mount_point=m)["data"]["keys"]
        assert len(keys) == 2  # rotated once
    finally:
        for n in names.values():
            client.sys.delete_acl_policy(n)


def test_policy_changes_apply_to_live_tokens(
    client: hvac.Client, server: ServerProcess, mount: str, policy_name: str
) -> None:
    client.secrets.transit.create_key("k", mount_point=mount)
    token = _token(client, policy_name)  # the policy does not exist yet: empty
    assert _status(server, "GET", f"{mount}/keys/k", token) == 403
    client.sys.create_or_update_acl_policy(
        policy_name, f'path "{mount}/keys/k" {{ capabilities = ["read"] }}'
    )
    assert _status(server, "GET", f"{mount}/keys/k", token) == 200
    client.sys.delete_acl_policy(policy_name)
    assert _status(server, "GET", f"{mount}/keys/k", token) == 403


def test_default_policy_grants_self_lookup_only(client: hvac.Client, server: ServerProcess) -> None:
    token = _token(client, "default")  # an empty list would inherit root from the parent
    assert _status(server, "GET", "auth/token/lookup-self", token) == 200
    assert _status(server, "GET", "sys/policies/acl", token, None) == 403
    assert _status(server, "LIST", "sys/policies/acl", token) == 403
    assert _status(server, "PUT", "sys/policies/acl/x", token, {"policy": "#"}) == 403
    assert _status(server, "GET", "transit/keys/x", token) == 403


def test_sudo_required_for_root_protected_paths(
    client: hvac.Client, server: ServerProcess, policy_name: str
) -> None:
    client.sys.create_or_update_acl_policy(
        policy_name,
        'path "sys/audit" { capabilities = ["read"] }\npath "sys/mounts" { capabilities = ["read"] }',
    )
    token = _token(client, policy_name)
    assert _status(server, "GET", "sys/audit", token) == 403  # read without sudo
    assert _status(server, "GET", "sys/mounts", token) == 200  # not root-protected
    client.sys.create_or_update_acl_policy(
        policy_name, 'path "sys/audit" { capabilities = ["read", "sudo"] }'
    )
    assert _status(server, "GET", "sys/audit", token) == 200


def test_kv_acl_matrix(client: hvac.Client, server: ServerProcess, policy_name: str) -> None:
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv"  # dev mode mounts KV v2 at secret/
    client.secrets.kv.v2.create_or_update_secret("app/config", {"a": "1"}, mount_point="secret")
    client.sys.create_or_update_acl_policy(
        policy_name,
        'path "secret/data/app/*" { capabilities = ["read"] }\n'
        'path "secret/metadata/app/*" { capabilities = ["list"] }\n'
        'path "secret/data/app/private" { capabilities = ["deny"] }\n',
    )
    token = _token(client, policy_name)
    assert _status(server, "GET", "secret/data/app/config", token) == 200
    assert _status(server, "POST", "secret/data/app/config", token, {"data": {"a": "2"}}) == 403
    assert _status(server, "LIST", "secret/metadata/app/", token) == 200
    assert _status(server, "GET", "secret/data/app/private", token) == 403
    assert _status(server, "GET", "secret/data/other", token) == 403


def test_the_two_permission_denied_texts(server: ServerProcess, mount: str) -> None:
    """No token or an unknown one: plain `permission denied`; a valid token whose policies
    lack the capability (or sudo): Vault's multierror text (spec auth-api §0, probed)."""
    r = server.request("POST", "auth/token/create", json={"policies": ["default"]})
    limited = r.json()["auth"]["client_token"]
    body = {"plaintext": base64.b64encode(b"x").decode()}
    for token in ("", "hvs.unknown"):
        r = server.request("POST", f"{mount}/encrypt/k", json=body, token=token)
        assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})
    wrapped = {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}
    r = server.request("POST", f"{mount}/encrypt/k", json=body, token=limited)
    assert (r.status_code, r.json()) == (403, wrapped)
    r = server.request("GET", "sys/mounts", token=limited)  # no capability
    assert (r.status_code, r.json()) == (403, wrapped)
    r = server.request("GET", "sys/audit", token=limited)  # a sudo path
    assert (r.status_code, r.json()) == (403, wrapped)
