"""sys/mounts: transit can be mounted anywhere; unmounting wipes its keys (spec §1.6)."""

from __future__ import annotations

import hvac
import pytest

from tests.helpers import ServerProcess


def test_list_mounts_shape(server: ServerProcess) -> None:
    r = server.request("GET", "sys/mounts")
    assert r.status_code == 200
    body = r.json()
    assert body["data"]["transit/"]["type"] == "transit"
    assert body["transit/"] == body["data"]["transit/"]  # mirrored at the top level
    entry = body["data"]["transit/"]
    assert entry["accessor"].startswith("transit_")
    assert set(entry["config"]) >= {"default_lease_ttl", "max_lease_ttl", "force_no_cache"}
    assert body["data"]["sys/"]["type"] == "system"


def test_enable_read_disable_with_hvac(client: hvac.Client, server: ServerProcess) -> None:
    client.sys.enable_secrets_engine("transit", path="deep/nested/enc", description="d")
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["deep/nested/enc/"]["description"] == "d"
    r = server.request("GET", "sys/mounts/deep/nested/enc")
    assert r.status_code == 200 and r.json()["data"]["type"] == "transit"
    client.secrets.transit.create_key("k", mount_point="deep/nested/enc")
    assert client.secrets.transit.read_key("k", mount_point="deep/nested/enc")["data"]["name"] == "k"
    client.sys.disable_secrets_engine("deep/nested/enc")
    assert "deep/nested/enc/" not in client.sys.list_mounted_secrets_engines()["data"]
    # re-mounting at the same path starts empty: the old keys were wiped
    client.sys.enable_secrets_engine("transit", path="deep/nested/enc")
    r = server.request("GET", "deep/nested/enc/keys/k")
    assert r.status_code == 404 and r.json() == {"errors": []}
    client.sys.disable_secrets_engine("deep/nested/enc")


def test_enable_accepts_hvac_nulls_and_put(server: ServerProcess) -> None:
    r = server.request("PUT", "sys/mounts/nulls", json={
        "type": "transit", "description": None, "config": None, "options": None,
        "local": None, "seal_wrap": None})
    assert r.status_code == 204, r.text
    assert server.request("DELETE", "sys/mounts/nulls").status_code == 204


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("transit", {"type": "transit"}, "path is already in use at transit/"),
        ("transit/sub", {"type": "transit"}, "path is already in use at transit/"),
        ("other", {}, "backend type must be specified as a string"),
        ("other", {"type": "nosuch"}, "plugin not found in the catalog: nosuch"),
        ("other", {"type": "transit", "local": "maybe"}, "Field validation failed"),
        ("other", {"type": "transit", "config": "x"}, "Field validation failed"),
        ("sys/x", {"type": "transit"}, 'cannot mount under "sys/"'),
    ],
)
def test_enable_bad_input(server: ServerProcess, path: str, body: dict, message: str) -> None:
    r = server.request("POST", f"sys/mounts/{path}", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["errors"][0]
    mounts = server.request("GET", "sys/mounts").json()["data"]
    assert "other/" not in mounts and "transit/sub/" not in mounts


def test_sys_tools(server: ServerProcess) -> None:
    r = server.request("POST", "sys/tools/random/16", json={"format": "hex"})
    assert r.status_code == 200 and len(r.json()["data"]["random_bytes"]) == 32
    r = server.request("POST", "sys/tools/hash/sha2-256", json={"input": "aGVsbG8="})
    assert r.json()["data"]["sum"] == (
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")


@pytest.mark.parametrize("ttl", [10**20, "9" * 400 + "h", "2562048h", "99999999999999999999"])
@pytest.mark.parametrize("name", ["default_lease_ttl", "max_lease_ttl"])
def test_ttls_beyond_go_duration_are_400(server: ServerProcess, name: str, ttl) -> None:
    """Found by tests/fuzz: a TTL no Go duration can hold, in a mount's `config` or in a tune,
    is Vault's `invalid duration` 400 (it used to be a 500: the mount table could not be
    serialised, or the duration parse overflowed), and nothing changes."""
    r = server.request("POST", "sys/mounts/ttl-huge", json={"type": "kv", "config": {name: ttl}})
    assert r.status_code == 400, r.text
    assert "invalid duration" in r.json()["errors"][0]
    assert server.request("GET", "sys/mounts/ttl-huge").status_code == 400
    before = server.request("GET", "sys/mounts/transit/tune").json()["data"]
    r = server.request("POST", "sys/mounts/transit/tune", json={name: ttl})
    assert r.status_code == 400, r.text
    assert "invalid duration" in r.json()["errors"][0]
    assert server.request("GET", "sys/mounts/transit/tune").json()["data"] == before
