"""Vault's listener JSON limits and authentication before the body is decoded (issue 9 item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ServerProcess, free_port, init_and_unseal

DEPTH = "JSON input exceeds allowed nesting depth"
STRING = "JSON string value exceeds allowed length"
OBJECT = "JSON object exceeds allowed entry count"
ARRAY = "JSON array exceeds allowed element count"


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_nested(301), DEPTH),
        (b'{"plaintext":"' + b"A" * (1024 * 1024 + 1) + b'"}', STRING),
        (b'{"' + b"k" * (1024 * 1024 + 1) + b'":1}', STRING),  # keys count too
        (b"{" + b",".join(b'"k%d":1' % i for i in range(10_001)) + b"}", OBJECT),
        (b'{"batch_input":[' + b",".join([b"{}"] * 10_001) + b"]}", ARRAY),
    ],
    ids=["depth", "string", "key", "object", "array"],
)
def test_each_default_limit_is_400(server: ServerProcess, mount: str, body: bytes,
                                   message: str) -> None:
    r = server.request("POST", f"{mount}/encrypt/k", data=body)
    assert r.status_code == 400, r.text[:200]
    assert r.json() == {"errors": [message]}


def test_at_the_limits_is_accepted(server: ServerProcess, mount: str) -> None:
    r = server.request("POST", f"{mount}/encrypt/k", data=_nested(300)[:-300] + b"}" * 300)
    assert r.status_code == 400 and "plaintext" in r.text  # decoded: only the field is missing
    body = b'{"plaintext":"QQ==","x":[' + b",".join([b"1"] * 10_000) + b"]}"
    assert server.request("POST", f"{mount}/encrypt/k", data=body).status_code == 200


def test_limits_apply_to_unauthenticated_status_endpoints(server: ServerProcess) -> None:
    r = server.request("PUT", "sys/unseal", data=_nested(400), token="")
    assert r.status_code == 400
    assert r.json() == {"errors": [DEPTH]}


def test_unauthenticated_large_body_is_403_without_decoding(server: ServerProcess,
                                                            mount: str) -> None:
    assert server.proc is not None
    # many small strings: the shape that costs the most to decode
    body = b'{"x":[' + b",".join([b'"a"'] * 9_999) + b"],"
    body = b'{"plaintext":"QQ==","y":[' + b",".join([body[5:-1]] * 400) + b"]}"
    assert len(body) > 16 * 1024 * 1024 - 2 ** 20
    before = _rss_kib(server.proc.pid)
    for token in ("", "not-a-token"):
        r = server.request("POST", f"{mount}/encrypt/k", data=body, token=token)
        assert r.status_code == 403, r.text[:200]
        assert r.json() == {"errors": ["permission denied"]}
    grown_mib = (_rss_kib(server.proc.pid) - before) / 1024
    assert grown_mib < 100, grown_mib


def test_deep_body_with_audit_on_is_400(server: ServerProcess, mount: str,
                                        tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    r = server.request("PUT", "sys/audit/jsonlimits",
                       json={"type": "file", "options": {"file_path": str(log)}})
    assert r.status_code == 204, r.text
    try:
        r = server.request("POST", f"{mount}/encrypt/k", data=_nested(400))
        assert r.status_code == 400, r.text[:200]
        assert r.json() == {"errors": [DEPTH]}
        r = server.request("POST", f"{mount}/encrypt/k", json={"plaintext": "QQ=="})
        assert r.status_code == 200
    finally:
        server.request("DELETE", "sys/audit/jsonlimits")


def test_limits_are_configurable_per_listener(tmp_path: Path) -> None:
    srv = ServerProcess.dev(tmp_path)
    port2 = free_port()
    cfg = tmp_path / "server.hcl"
    cfg.write_text(
        f'storage "inmem" {{}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{srv.port}"\n  tls_disable = true\n'
        f'  max_json_depth = 3\n  max_json_string_value_length = 100\n'
        f'  max_json_object_entry_count = 10\n  max_json_array_element_count = 2\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port2}"\n  tls_disable = true\n}}\n'
    )
    srv.args = ["server", f"-config={cfg}"]
    srv.start()
    try:
        token = init_and_unseal(srv)["root_token"]
        assert srv.request("POST", "sys/mounts/transit", json={"type": "transit"},
                           token=token).status_code == 204
        cases = [
            (b'{"a":{"b":{"c":{}}}}', DEPTH),
            (b'{"plaintext":"' + b"Q" * 120 + b'"}', STRING),
            (b"{" + b",".join(b'"k%d":1' % i for i in range(11)) + b"}", OBJECT),
            (b'{"a":[1,2,3]}', ARRAY),
        ]
        other = srv.addr.replace(str(srv.port), str(port2))
        for body, message in cases:
            r = srv.request("POST", "transit/encrypt/k", data=body, token=token)
            assert r.status_code == 400 and r.json() == {"errors": [message]}, (body, r.text)
            r = srv.session.post(f"{other}/v1/transit/encrypt/k", data=body,
                                 headers={"X-Vault-Token": token}, timeout=30)
            assert r.json() != {"errors": [message]}, (body, r.text)  # Vault's defaults there
        r = srv.request("POST", "transit/encrypt/k", data=b'{"plaintext":"QQ=="}', token=token)
        assert r.status_code == 200
    finally:
        srv.stop()
