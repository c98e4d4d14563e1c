"""Audit devices against a real server (spec ha-and-sys-api §4.11): JSON lines, HMAC'd
secrets, audit-hash, fail closed, disable, bad input."""

from __future__ import annotations

import base64
import os
import resource
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import orjson
import pytest

from tests.helpers import ServerProcess

HMAC_RE = r"hmac-sha256:[0-9a-f]{64}"


def read_lines(log: Path) -> list[dict[str, Any]]:
    raw = log.read_bytes()
    assert raw.endswith(b"\n")
    return [orjson.loads(line) for line in raw.splitlines()]  # every line is one JSON object


def for_path(entries: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["request"]["path"] == path]


@pytest.fixture
def device(server: ServerProcess, client: hvac.Client, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A file audit device at a unique path on the shared server, disabled afterwards."""
    path = f"file-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "audit.log"
    client.sys.enable_audit_device("file", path=path, options={"file_path": str(log)})
    yield path, log
    server.request("DELETE", f"sys/audit/{path}")


def test_enable_list_disable_with_hvac(client: hvac.Client, server: ServerProcess,
                                       tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    client.sys.enable_audit_device(
        "file", path="listed", description="desc",
        options={"file_path": str(log), "hmac_accessor": "false"},
    )
    try:
        body = client.sys.list_enabled_audit_devices()
        row = body["data"]["listed/"]
        assert row == {"type": "file", "description": "desc", "local": False, "path": "listed/",
                       "options": {"file_path": str(log), "hmac_accessor": "false"}}
        assert body["listed/"] == row  # mirrored at the top level like Vault
        assert log.exists() and (log.stat().st_mode & 0o777) == 0o600
    finally:
        client.sys.disable_audit_device("listed")
    assert "listed/" not in client.sys.list_enabled_audit_devices()["data"]
    size = log.stat().st_size
    client.sys.list_mounted_secrets_engines()
    assert log.stat().st_size == size  # nothing more is written once disabled


def test_request_and_response_entries_are_hmacd(client: hvac.Client, server: ServerProcess,
                                                device: tuple[str, Path]) -> None:
    path, log = device
    key = f"k-{uuid.uuid4().hex[:8]}"
    secret = base64.b64encode(os.urandom(24)).decode()
    client.secrets.transit.create_key(key)
    resp = client.secrets.transit.encrypt_data(key, plaintext=secret)
    ciphertext = resp["data"]["ciphertext"]
    request_id = resp["request_id"]

    entries = for_path(read_lines(log), f"transit/encrypt/{key}")
    assert [e["type"] for e in entries] == ["request", "response"]
    req_entry, resp_entry = entries
    assert req_entry["request"]["id"] == resp_entry["request"]["id"] == request_id
    r = req_entry["request"]
    assert r["operation"] == "update" and r["mount_point"] == "transit/"
    assert r["mount_type"] == "transit" and r["namespace"] == {"id": "root"}
    assert r["remote_address"] == "127.0.0.1" and isinstance(r["remote_port"], int)
    assert r["data"]["plaintext"] == server_hash(client, path, secret)
    assert r["client_token"] == server_hash(client, path, server.token)
    assert req_entry["auth"]["client_token"] == r["client_token"]
    assert req_entry["auth"]["policies"] == ["root"]  # non-secret fields stay clear
    assert req_entry["auth"]["policy_results"]["allowed"] is True
    assert req_entry["error"] == "" and "response" not in req_entry
    out = resp_entry["response"]
    assert out["mount_type"] == "transit"
    assert out["data"]["ciphertext"] == server_hash(client, path, ciphertext)
    assert out["data"]["key_version"] == 1  # numbers untouched

    text = log.read_text()
    assert secret not in text and ciphertext not in text
    for e in read_lines(log):
        assert e["auth"]["client_token"] != server.token
        assert e["request"]["client_token"] != server.token
        accessor = e["auth"].get("accessor")
        assert not accessor or accessor.startswith("hmac-sha256:")


def server_hash(client: hvac.Client, path: str, value: str) -> str:
    """sys/audit-hash (answers in `data` and mirrored at the top level)."""
    body = client.sys.calculate_hash(path, value)
    assert body["data"]["hash"] == body["hash"]
    return body["hash"]


def test_audit_hash_reproduces_logged_hash(client: hvac.Client,
                                           device: tuple[str, Path]) -> None:
    path, log = device
    key = f"k-{uuid.uuid4().hex[:8]}"
    client.secrets.transit.create_key(key)
    client.secrets.transit.encrypt_data(key, plaintext="aGVsbG8=", context=None)
    (logged,) = [e for e in for_path(read_lines(log), f"transit/encrypt/{key}")
                 if e["type"] == "request"]
    assert client.sys.calculate_hash(path, "aGVsbG8=")["data"]["hash"] == \
        logged["request"]["data"]["plaintext"]
    assert logged["request"]["data"]["plaintext"] != \
        client.sys.calculate_hash(path, "aGVsbG9=")["data"]["hash"]


def test_two_devices_log_with_their_own_salts(client: hvac.Client, server: ServerProcess,
                                              device: tuple[str, Path], tmp_path: Path) -> None:
    path, log = device
    other = tmp_path / "other.log"
    client.sys.enable_audit_device("file", path="second-dev", options={"file_path": str(other)})
    try:
        client.sys.list_mounted_secrets_engines()
    finally:
        client.sys.disable_audit_device("second-dev")
    a = for_path(read_lines(log), "sys/mounts")
    b = for_path(read_lines(other), "sys/mounts")
    assert a and b
    assert a[0]["request"]["client_token"] != b[0]["request"]["client_token"]


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit")
def test_fail_closed_when_the_only_device_cannot_write(tmp_path: Path) -> None:
    """A dedicated server whose only audit device hits a real write error (EFBIG from a
    file-size limit on the server process): requests get 500 "internal error" and are not
    handled. Lifting the limit recovers."""
    srv = ServerProcess.dev(tmp_path).start()
    try:
        assert srv.proc is not None
        client = srv.client()
        log = tmp_path / "audit.log"
        client.sys.enable_audit_device("file", options={"file_path": str(log)})
        client.secrets.transit.create_key("before")
        size = log.stat().st_size
        soft, hard = resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (size, hard))
        try:
            r = srv.request("POST", "transit/keys/blocked", json={"type": "aes256-gcm96"})
            assert r.status_code == 500
            assert r.json() == {"errors": ["internal error"]}
            r = srv.request("GET", "transit/keys/before")
            assert r.status_code == 500
            assert srv.request("GET", "sys/health").status_code == 200  # never audited
        finally:
            resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
        assert log.stat().st_size == size  # nothing (not even half a line) was written
        r = srv.request("GET", "transit/keys/blocked")
        assert r.status_code == 404  # the rejected write never happened
        entries = read_lines(log)
        assert not [e for e in for_path(entries, "transit/keys/blocked")
                    if e["request"]["operation"] in ("create", "update")]
        assert [e["type"] for e in for_path(entries, "transit/keys/blocked")] == \
            ["request", "response"]
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'unknown backend type: ""'),
        ({"type": "syslog"}, 'unknown backend type: "syslog"'),
        ({"type": "file"}, '"file_path" is required'),
        ({"type": "file", "options": {"file_path": "discard", "log_raw": "maybe"}},
         "unable to parse 'log_raw'"),
        ({"type": "file", "options": {"file_path": "discard", "hmac_accessor": "x"}},
         "unable to parse 'hmac_accessor'"),
        ({"type": "file", "options": {"file_path": "discard", "mode": "9x"}}, "mode"),
        ({"type": "file", "options": {"file_path": "discard", "format": "jsonx"}}, "format"),
        ({"type": "file", "options": "file_path=x"}, "Field validation failed"),
        ({"type": "file", "options": {"file_path": ["a"]}}, "Field validation failed"),
        ({"type": "file", "options": {"file_path": "discard"}, "local": "maybe"},
         "Field validation failed"),
    ],
)
def test_enable_bad_input(server: ServerProcess, body: dict[str, Any], message: str) -> None:
    r = server.request("PUT", "sys/audit/bad-input", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["errors"][0]
    assert "bad-input/" not in server.request("GET", "sys/audit").json()["data"]


def test_enable_unopenable_file_stores_nothing(server: ServerProcess, tmp_path: Path) -> None:
    r = server.request("PUT", "sys/audit/dir", json={
        "type": "file", "options": {"file_path": str(tmp_path)}})
    assert r.status_code == 400
    msg = r.json()["errors"][0]
    assert msg.startswith(f'file sink creation failed for path "{tmp_path}"')
    assert "is a directory" in msg
    assert "dir/" not in server.request("GET", "sys/audit").json()["data"]


def test_path_in_use_and_audit_hash_errors(server: ServerProcess,
                                           device: tuple[str, Path]) -> None:
    path, _ = device
    for clash in (path, f"{path}/nested"):
        r = server.request("PUT", f"sys/audit/{clash}", json={
            "type": "file", "options": {"file_path": "discard"}})
        assert r.status_code == 400 and r.json() == {"errors": ["path already in use"]}
    r = server.request("PUT", "sys/audit-hash/nosuch", json={"input": "x"})
    assert r.status_code == 400 and "unknown audit backend nosuch/" in r.json()["errors"][0]
    r = server.request("PUT", f"sys/audit-hash/{path}", json={})
    assert r.status_code == 400 and r.json() == {"errors": ['the "input" parameter is empty']}
    assert server.request("DELETE", "sys/audit/nosuch").status_code == 204


def test_mount_non_hmac_keys_are_logged_clear(client: hvac.Client, mount: str,
                                              device: tuple[str, Path]) -> None:
    """`audit_non_hmac_{request,response}_keys` tuned on the mount exempt those keys."""
    _, log = device
    client.sys.tune_mount_configuration(
        mount, audit_non_hmac_request_keys=["context"],
        audit_non_hmac_response_keys=["ciphertext"],
    )
    client.secrets.transit.create_key("k", mount_point=mount, derived=True)
    ctx = base64.b64encode(b"ctx-" + os.urandom(6)).decode()
    out = client.secrets.transit.encrypt_data("k", plaintext="aGk=", context=ctx,
                                              mount_point=mount)
    req_entry, resp_entry = for_path(read_lines(log), f"{mount}/encrypt/k")
    assert req_entry["request"]["data"]["context"] == ctx
    assert req_entry["request"]["data"]["plaintext"].startswith("hmac-sha256:")
    assert resp_entry["response"]["data"]["ciphertext"] == out["data"]["ciphertext"]


def test_refused_tokens_are_audited(client: hvac.Client, server: ServerProcess,
                                    device: tuple[str, Path]) -> None:
    """Requests with a missing, unknown or revoked token are audited as Vault does: a
    request and a response entry with error "permission denied", the token hashed, the
    mount resolved; the body of such a request is never decoded, so never logged."""
    path, log = device
    mount = f"kv-{uuid.uuid4().hex[:6]}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    revoked = client.auth.token.create(policies=["default"])["auth"]["client_token"]
    client.auth.token.revoke(revoked)
    cases = [("GET", None, "garbage-token"), ("POST", {"password": "hunter2"}, "garbage-token"),
             ("GET", None, ""), ("POST", {"password": "hunter2"}, revoked)]
    for method, body, token in cases:
        r = server.request(method, f"{mount}/app", json=body, token=token)
        assert r.status_code == 403 and r.json() == {"errors": ["permission denied"]}, r.text
    entries = for_path(read_lines(log), f"{mount}/app")
    assert [(e["type"], e["error"]) for e in entries] == [
        ("request", "permission denied"), ("response", "permission denied")] * len(cases)
    salt_hash = server.request("POST", f"sys/audit-hash/{path}",
                               json={"input": "garbage-token"}).json()["hash"]
    first = entries[0]
    assert first["request"]["client_token"] == salt_hash
    assert first["request"]["mount_point"] == f"{mount}/"
    assert first["request"]["mount_type"] == "kv"
    assert first["request"]["operation"] == "read" and entries[2]["request"]["operation"] == "update"
    assert first["auth"]["policies"] == [] and "policy_results" not in first["auth"]
    assert entries[4]["request"]["client_token"] == ""  # no token at all
    text = log.read_text()
    assert "hunter2" not in text and "garbage-token" not in text and revoked not in text
    client.sys.disable_secrets_engine(mount)


def test_a_refused_request_spends_a_use(client: hvac.Client, server: ServerProcess) -> None:
    """As Vault: a limited-use token denied by its policy still loses a use."""
    policy = f"p-{uuid.uuid4().hex[:6]}"
    client.sys.create_or_update_acl_policy(policy, 'path "sys/mounts" { capabilities = ["read"] }')
    created = client.auth.token.create(policies=[policy], num_uses=3, no_default_policy=True)
    token, accessor = created["auth"]["client_token"], created["auth"]["accessor"]
    assert server.request("GET", "sys/policies/acl", token=token).status_code == 403
    assert client.auth.token.lookup_accessor(accessor)["data"]["num_uses"] == 2
    assert server.request("GET", "sys/mounts", token=token).status_code == 200
    assert server.request("GET", "sys/audit", token=token).status_code == 403  # the last use
    assert server.request("GET", "sys/mounts", token=token).status_code == 403  # used up
    r = server.request("POST", "auth/token/lookup-accessor", json={"accessor": accessor})
    assert r.status_code == 400, r.text
    client.sys.delete_acl_policy(policy)


def test_an_error_quoting_a_secret_is_logged_hashed(server: ServerProcess, mount: str,
                                                     device: tuple[str, Path]) -> None:
    _, log = device
    r = server.request("POST", f"{mount}/encrypt/k",
                       json={"plaintext": {"password": "hunter2-secret"}})
    assert r.status_code == 400 and "hunter2-secret" in r.json()["errors"][0]  # as Vault
    entries = for_path(read_lines(log), f"{mount}/encrypt/k")
    assert [e["type"] for e in entries] == ["request", "response"]
    assert "hmac-sha256:" in entries[1]["error"]
    assert "hunter2-secret" not in log.read_text()
