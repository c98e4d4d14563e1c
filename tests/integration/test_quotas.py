"""Rate-limit quotas against a real server (spec operations-api §7): `sys/quotas/rate-limit`
and `sys/quotas/config` through hvac, Vault's errors, and enforcement before authentication
with 429s, precedence, exempt paths, blocking and the response headers. Each request goes on
its own connection. The sharing of buckets between worker processes is tested in
tests/ha/test_workers.py."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import orjson
import pytest
import requests

from tests.helpers import ServerProcess


@pytest.fixture(scope="module")
def qserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: a global quota must not slow anybody else's tests."""
    srv = ServerProcess.dev(tmp_path_factory.mktemp("quotas")).start()
    yield srv
    srv.stop()


@pytest.fixture
def qclient(qserver: ServerProcess) -> Iterator[hvac.Client]:
    yield qserver.client()
    # Clean up, through any rule the test left (a global rule also limits sys/quotas): every
    # rule in these tests refills within a few seconds.
    deadline = time.monotonic() + 15
    while True:
        r = fresh(qserver, "LIST", "sys/quotas/rate-limit")
        names = r.json()["data"]["keys"] if r.status_code == 200 else []
        done = r.status_code == 404
        for name in names:
            done = fresh(qserver, "DELETE", f"sys/quotas/rate-limit/{name}").status_code == 204
        if done and r.status_code != 429:
            break
        assert time.monotonic() < deadline, "could not remove the quotas"
        time.sleep(0.2)
    r = fresh(qserver, "POST", "sys/quotas/config",
              {"rate_limit_exempt_paths": ["sys/health", "sys/seal-status", "sys/unseal"]})
    assert r.status_code == 204, r.text


def fresh(srv: ServerProcess, method: str, path: str, json: Any = None,
          token: str | None = "root") -> requests.Response:
    """One request on a new connection."""
    headers = {"X-Vault-Token": token} if token else {}
    return requests.request(method, f"{srv.addr}/v1/{path}", json=json, headers=headers,
                            timeout=10)


def codes(srv: ServerProcess, n: int, method: str, path: str, json: Any = None,
          token: str | None = "root") -> Counter[int]:
    return Counter(fresh(srv, method, path, json, token).status_code for _ in range(n))


def test_crud_with_hvac_and_vaults_shapes(qclient: hvac.Client, qserver: ServerProcess) -> None:
    r = qclient.sys.create_or_update_quota("q-mount", rate=30, path="secret/", interval="10s")
    assert r.status_code == 204
    assert qclient.sys.read_quota("q-mount")["data"] == {
        "block_interval": 0, "inheritable": False, "interval": 10, "name": "q-mount",
        "path": "secret/", "rate": 30, "role": "", "type": "rate-limit"}
    qclient.sys.create_or_update_quota("q-glob", rate=2.5, path="secret/data/app/*",
                                       block_interval="1m")
    assert qclient.sys.read_quota("q-glob")["data"] == {
        "block_interval": 60, "inheritable": False, "interval": 1, "name": "q-glob",
        "path": "secret/data/app/*", "rate": 2.5, "role": "", "type": "rate-limit"}
    qclient.sys.create_or_update_quota("q-global", rate=1000)
    assert qclient.sys.read_quota("q-global")["data"]["inheritable"] is True  # the global one
    assert qclient.sys.read_quota("q-global")["data"]["path"] == ""
    assert sorted(qclient.sys.list_quotas()["data"]["keys"]) == ["q-glob", "q-global",
                                                                   "q-mount"]
    # an update replaces the rule
    qclient.sys.create_or_update_quota("q-mount", rate=40, path="secret/")
    assert qclient.sys.read_quota("q-mount")["data"]["rate"] == 40
    assert qclient.sys.read_quota("q-mount")["data"]["interval"] == 1
    qclient.sys.delete_quota("q-glob")
    assert qserver.request("GET", "sys/quotas/rate-limit/q-glob").status_code == 404
    assert qserver.request("GET", "sys/quotas/rate-limit/q-glob").json() == {"errors": []}
    assert qserver.request("DELETE", "sys/quotas/rate-limit/q-glob").status_code == 204


@pytest.mark.parametrize(("body", "message"), [
    ({}, "'rate' is invalid"),
    ({"rate": 0}, "'rate' is invalid"),
    ({"rate": -1}, "'rate' is invalid"),
    ({"rate": "fast"}, "'rate' is invalid"),
    ({"rate": True}, "'rate' is invalid"),
    ({"rate": 1, "block_interval": -5}, "'block' is invalid"),
    ({"rate": 1, "path": "nomount"}, 'invalid mount path "nomount/"'),
    ({"rate": 1, "path": "nomount/x/y"}, 'invalid mount path "nomount/x/y/"'),
])
def test_bad_input(qclient: hvac.Client, qserver: ServerProcess, body: dict[str, Any],
                   message: str) -> None:
    r = qserver.request("POST", "sys/quotas/rate-limit/bad", json=body)
    assert r.status_code == 400 and r.json() == {"errors": [message]}, r.text
    assert qserver.request("GET", "sys/quotas/rate-limit/bad").status_code == 404  # nothing


def test_one_rule_per_scope(qclient: hvac.Client, qserver: ServerProcess) -> None:
    qclient.sys.create_or_update_quota("first", rate=5, path="secret/")
    r = qserver.request("POST", "sys/quotas/rate-limit/second",
                        json={"rate": 9, "path": "/secret"})
    assert r.status_code == 400 and r.json() == {
        "errors": ['quota rule with similar properties exists under the name "first"']}
    assert qserver.request("GET", "sys/quotas/rate-limit/second").status_code == 404


def test_enforced_before_authentication_with_vaults_429(
        qclient: hvac.Client, qserver: ServerProcess) -> None:
    name = f"k{uuid.uuid4().hex[:6]}"
    qserver.request("POST", f"transit/keys/{name}")
    qclient.sys.create_or_update_quota("enc", rate=4, path=f"transit/encrypt/{name}",
                                       interval="1m")
    got = codes(qserver, 6, "POST", f"transit/encrypt/{name}", {"plaintext": "aGk="})
    assert got == Counter({200: 4, 429: 2}), got
    r = fresh(qserver, "POST", f"transit/encrypt/{name}", {"plaintext": "aGk="}, token=None)
    assert r.status_code == 429  # no token: refused by the quota first
    assert r.json() == {"errors": [
        f'request path "transit/encrypt/{name}": rate limit quota exceeded']}
    assert "retry-after" not in r.headers and "x-ratelimit-limit" not in r.headers
    # other paths are not covered by that rule
    assert fresh(qserver, "POST", f"transit/decrypt/{name}",
                 {"ciphertext": "vault:v1:AAAA"}).status_code == 400
    assert fresh(qserver, "GET", "sys/health").status_code == 200


def test_most_specific_rule_wins_and_exempt_paths(qclient: hvac.Client,
                                                   qserver: ServerProcess) -> None:
    qclient.sys.create_or_update_quota("mount", rate=6, path="secret/", interval="1m")
    qclient.sys.create_or_update_quota("exact", rate=8, path="secret/data/exact", interval="1m")
    qclient.sys.create_or_update_quota("global", rate=3, interval="3s")  # the last write
    assert codes(qserver, 10, "GET", "secret/data/exact", token=None) == Counter(
        {403: 8, 429: 2})
    assert codes(qserver, 8, "GET", "secret/data/other", token=None) == Counter(
        {403: 6, 429: 2})
    assert codes(qserver, 5, "GET", "transit/keys/x", token=None) == Counter({403: 3, 429: 2})
    # the global rule covers sys/ too (an admin included), except the exempt paths
    assert fresh(qserver, "GET", "sys/mounts").status_code == 429
    assert fresh(qserver, "DELETE", "sys/quotas/rate-limit/global").status_code == 429
    assert codes(qserver, 5, "GET", "sys/health") == Counter({200: 5})
    assert fresh(qserver, "GET", "sys/seal-status").status_code == 200


def test_block_interval_and_response_headers(qclient: hvac.Client,
                                             qserver: ServerProcess) -> None:
    qserver.request("POST", "sys/quotas/config", json={
        "enable_rate_limit_response_headers": True,
        "rate_limit_exempt_paths": ["sys/health"]})
    config = qserver.request("GET", "sys/quotas/config").json()["data"]
    assert config == {"enable_rate_limit_audit_logging": False,
                      "enable_rate_limit_response_headers": True,
                      "rate_limit_exempt_paths": ["sys/health"]}
    qclient.sys.create_or_update_quota("blk", rate=2, interval="1s", block_interval="1h",
                                       path="secret/")
    first = fresh(qserver, "GET", "secret/data/a")
    assert first.status_code == 404
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert int(first.headers["x-ratelimit-reset"]) in (0, 1)
    assert fresh(qserver, "GET", "secret/data/a").status_code == 404
    refused = fresh(qserver, "GET", "secret/data/a")
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 3590 <= int(refused.headers["retry-after"]) <= 3600  # blocked for the hour
    # the window refills after 1 s, but the client stays blocked
    time.sleep(1.2)
    assert fresh(qserver, "GET", "secret/data/a").status_code == 429


def test_config_replaces_every_field(qclient: hvac.Client, qserver: ServerProcess) -> None:
    r = qserver.request("POST", "sys/quotas/config",
                        json={"enable_rate_limit_audit_logging": True})
    assert r.status_code == 204
    assert qserver.request("GET", "sys/quotas/config").json()["data"] == {
        "enable_rate_limit_audit_logging": True, "enable_rate_limit_response_headers": False,
        "rate_limit_exempt_paths": []}


def test_rate_limited_requests_are_audited_when_configured(
        qclient: hvac.Client, qserver: ServerProcess, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    qclient.sys.enable_audit_device("file", path="qa", options={"file_path": str(log)})
    try:
        qserver.request("POST", "sys/quotas/config", json={
            "enable_rate_limit_audit_logging": True, "rate_limit_exempt_paths": ["sys/*"]})
        qclient.sys.create_or_update_quota("audited", rate=1, path="secret/",
                                           interval="1m")
        assert codes(qserver, 2, "GET", "secret/data/z") == Counter({404: 1, 429: 1})
        entries = [orjson.loads(x) for x in log.read_bytes().splitlines()]
        limited = [e for e in entries if "rate limit quota exceeded" in e.get("error", "")]
        assert [e["type"] for e in limited] == ["request", "response"]
        assert limited[0]["request"]["path"] == "secret/data/z"
        assert limited[0]["request"]["mount_type"] == "kv"
    finally:
        qclient.sys.disable_audit_device("qa")
