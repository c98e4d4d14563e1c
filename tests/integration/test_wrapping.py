"""Response wrapping over real HTTP with hvac: sys/wrapping/* and X-Vault-Wrap-TTL."""

from __future__ import annotations

import re
import time

import hvac
import pytest

from tests.helpers import ServerProcess

INVALID = "wrapping token is not valid or does not exist"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _errors(r: object) -> list[str]:
    return r.json()["errors"]  # type: ignore[attr-defined, no-any-return]


def test_wrap_and_unwrap(client: hvac.Client, server: ServerProcess) -> None:
    resp = client.sys.wrap(payload={"secret": "s3cr3t", "n": 1}, ttl=120)
    assert resp["data"] is None and resp["auth"] is None
    info = resp["wrap_info"]
    assert set(info) >= {"token", "accessor", "ttl", "creation_time", "creation_path"}
    assert info["ttl"] == 120 and info["creation_path"] == "sys/wrapping/wrap"
    assert RFC3339.match(info["creation_time"]) and "wrapped_accessor" not in info
    out = client.sys.unwrap(info["token"])
    assert out["data"] == {"secret": "s3cr3t", "n": 1}
    assert out["warnings"] is None
    r = server.request("POST", "sys/wrapping/unwrap", json={"token": info["token"]})
    assert r.status_code == 400 and _errors(r) == [INVALID]


def test_unwrap_with_the_wrapping_token_as_client_token(client: hvac.Client, server: ServerProcess) -> None:
    token = client.sys.wrap(payload={"k": "v"}, ttl=60)["wrap_info"]["token"]
    out = server.client(token).sys.unwrap()
    assert out["data"] == {"k": "v"}
    r = server.request("POST", "sys/wrapping/unwrap", json={}, token=token)
    assert r.status_code in (400, 403)


def test_spent_wrapping_token_as_client_token_is_400(client: hvac.Client, server: ServerProcess) -> None:
    token = client.sys.wrap(payload={"k": "v"}, ttl=60)["wrap_info"]["token"]
    server.client(token).sys.unwrap()
    r = server.request("POST", "sys/wrapping/unwrap", json={}, token=token)
    assert r.status_code == 400 and _errors(r) == [INVALID]


def test_wrapping_lookup_needs_no_token(client: hvac.Client, server: ServerProcess) -> None:
    info = client.sys.wrap(payload={"a": "b"}, ttl=90)["wrap_info"]
    r = server.request("POST", "sys/wrapping/lookup", json={"token": info["token"]}, token="")
    assert r.status_code == 200 and r.json()["data"]["creation_ttl"] == 90


def test_lookup_and_rewrap(client: hvac.Client, server: ServerProcess) -> None:
    info = client.sys.wrap(payload={"a": "b"}, ttl=90)["wrap_info"]
    r = server.request("POST", "sys/wrapping/lookup", json={"token": info["token"]})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["creation_ttl"] == 90 and data["creation_path"] == "sys/wrapping/wrap"
    assert RFC3339.match(data["creation_time"])
    r = server.request("POST", "sys/wrapping/rewrap", json={"token": info["token"]})
    assert r.status_code == 200, r.text
    new = r.json()["wrap_info"]
    assert new["token"] != info["token"] and new["ttl"] == 90
    assert new["creation_path"] == "sys/wrapping/wrap"
    r = server.request("POST", "sys/wrapping/lookup", json={"token": info["token"]})
    assert r.status_code == 400 and _errors(r) == [INVALID]
    assert client.sys.unwrap(new["token"])["data"] == {"a": "b"}


def test_wrapped_token_creation(client: hvac.Client) -> None:
    resp = client.auth.token.create(policies=["default"], ttl="10m", wrap_ttl="60s")
    assert resp["auth"] is None
    info = resp["wrap_info"]
    assert info["creation_path"] == "auth/token/create" and info["ttl"] == 60
    out = client.sys.unwrap(info["token"])
    auth = out["auth"]
    assert auth["accessor"] == info["wrapped_accessor"] and auth["lease_duration"] == 600
    assert client.auth.token.lookup(auth["client_token"])["data"]["policies"] == ["default"]


def test_wrapped_transit_response(client: hvac.Client, server: ServerProcess, mount: str) -> None:
    r = server.request("POST", f"{mount}/encrypt/k", json={"plaintext": "aGVsbG8="},
                       headers={"X-Vault-Wrap-TTL": "5m"})
    assert r.status_code == 200, r.text
    info = r.json()["wrap_info"]
    assert info["ttl"] == 300 and info["creation_path"] == f"{mount}/encrypt/k"
    assert r.json()["data"] is None
    out = client.sys.unwrap(info["token"])
    assert out["data"]["ciphertext"].startswith("vault:v1:")


def test_wrap_requires_the_header(server: ServerProcess) -> None:
    r = server.request("POST", "sys/wrapping/wrap", json={"a": "b"})
    assert r.status_code == 400 and _errors(r) == ["endpoint requires response wrapping to be used"]


def test_expired_wrapping_token(client: hvac.Client, server: ServerProcess) -> None:
    token = client.sys.wrap(payload={"a": "b"}, ttl=1)["wrap_info"]["token"]
    time.sleep(2.1)
    r = server.request("POST", "sys/wrapping/unwrap", json={"token": token})
    assert r.status_code == 400 and _errors(r) == [INVALID]


def test_a_normal_token_is_not_a_wrapping_token(client: hvac.Client, server: ServerProcess) -> None:
    tok = client.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    r = server.request("POST", "sys/wrapping/unwrap", json={"token": tok})
    assert r.status_code == 400 and _errors(r) == [INVALID]


@pytest.mark.parametrize("path", ["unwrap", "lookup", "rewrap", "wrap"])
def test_malformed_json(server: ServerProcess, path: str) -> None:
    r = server.request("POST", f"sys/wrapping/{path}", data="{oops",
                       headers={"Content-Type": "application/json", "X-Vault-Wrap-TTL": "60"})
    assert r.status_code == 400 and _errors(r)[0].startswith("failed to parse JSON input")


@pytest.mark.parametrize("path", ["unwrap", "lookup", "rewrap"])
@pytest.mark.parametrize("token", ["", "hvs.nope00000000000000000000", 12])
def test_bad_wrapping_tokens(server: ServerProcess, path: str, token: object) -> None:
    r = server.request("POST", f"sys/wrapping/{path}", json={"token": token})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("ttl", ["abc", "-5"])
def test_bad_wrap_ttl_header(server: ServerProcess, ttl: str) -> None:
    r = server.request("POST", "sys/wrapping/wrap", json={"a": "b"}, headers={"X-Vault-Wrap-TTL": ttl})
    assert r.status_code == 400
