"""The server process itself: dev mode, config files, auth, HTTP conventions, limits."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import subprocess
import sys
from pathlib import Path

import hvac
import orjson
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import ROOT, ServerProcess, free_port, init_and_unseal


def test_health_and_status_need_no_token(server: ServerProcess) -> None:
    r = server.request("GET", "sys/health", token="")
    assert r.status_code == 200
    body = r.json()
    assert body["initialized"] is True and body["sealed"] is False and body["standby"] is False
    assert body["cluster_name"].startswith("vault-cluster-")
    assert server.request("HEAD", "sys/health", token="").content == b""
    assert server.request("GET", "sys/health?activecode=299", token="").status_code == 299
    assert server.request("GET", "sys/health?activecode=abc", token="").status_code == 400
    assert server.request("GET", "sys/seal-status", token="").json()["sealed"] is False
    assert server.request("GET", "sys/leader", token="").json()["ha_enabled"] is False
    assert hvac.Client(url=server.addr).sys.is_initialized() is True


# (not "root ": HTTP trims a header value's trailing whitespace, as Go's server does, so
# "root " *is* the root token, in OpenBao too)
@pytest.mark.parametrize("token", ["", "wrong", "roo", "rootx", "root x"])
def test_bad_token_is_403(server: ServerProcess, token: str) -> None:
    r = server.request("POST", "transit/keys/k403", token=token)
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}
    assert r.headers["Content-Type"] == "application/json"
    # nothing was created
    assert server.request("GET", "transit/keys/k403").status_code == 404


def test_surrounding_whitespace_of_the_token_header_is_trimmed(server: ServerProcess) -> None:
    """As Go's net/http (and so Vault and OpenBao): "root " is the root token."""
    for token in ("root ", "root  "):
        assert server.request("GET", "sys/mounts", token=token).status_code == 200, token


def test_bearer_token_is_accepted(server: ServerProcess) -> None:
    r = server.request("GET", "sys/mounts", token="", headers={"Authorization": "Bearer root"})
    assert r.status_code == 200


def test_http_conventions(server: ServerProcess) -> None:
    r = server.request("GET", "nope/thing")
    assert r.status_code == 404
    assert r.json() == {"errors": ['no handler for route "nope/thing". route entry not found.']}
    r = server.request("GET", "transit/no/such/route")
    assert r.status_code == 404 and "unsupported path" in r.json()["errors"][0]
    r = server.request("GET", "transit/encrypt/k")
    assert r.status_code == 405 and "unsupported operation" in r.json()["errors"][0]
    r = server.request("PATCH", "transit/keys/k")
    assert r.status_code == 415 and "merge-patch+json" in r.json()["errors"][0]
    r = server.request("PATCH", "transit/keys/k", data="{}",
                       headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 405
    r = server.request("GET", "transit/keys", params={"list": "maybe"})
    assert r.status_code == 400
    r = server.request("GET", "sys/mounts")
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    # a whole body carries its length, as Go's net/http sends it, not chunks
    assert r.headers["Content-Length"] == str(len(r.content))
    assert "Transfer-Encoding" not in r.headers
    r = server.request("GET", "nope/thing")
    assert r.headers["Content-Length"] == str(len(r.content)) and r.content
    r = server.request("POST", "sys/policy/conventions-204", json={"policy": "path \"a\" {}"})
    assert r.status_code == 204 and r.content == b""
    assert "Content-Length" not in r.headers and "Transfer-Encoding" not in r.headers


@pytest.mark.parametrize(
    "body", [b"{", b"not json", b'{"plaintext": }', b"[1,2]", b'"str"', b"\xff\xfe"]
)
def test_malformed_json_is_400(server: ServerProcess, mount: str, body: bytes) -> None:
    r = server.request("POST", f"{mount}/keys/mal", data=body)
    assert r.status_code == 400, r.text
    assert "failed to parse JSON input" in r.json()["errors"][0]
    assert server.request("GET", f"{mount}/keys/mal").status_code == 404


def _inmem_server(tmp_path: Path, max_request_size: int, extra: str = "") -> ServerProcess:
    """A configured (not dev) server on inmem storage with this listener limit (and `extra`
    listener lines), started."""
    srv = ServerProcess.dev(tmp_path)
    cfg = tmp_path / "server.hcl"
    cfg.write_text(
        f'storage "inmem" {{}}\nlistener "tcp" {{\n  address = "127.0.0.1:{srv.port}"\n'
        f'  tls_disable = true\n  max_request_size = {max_request_size}\n{extra}}}\n'
    )
    srv.args = ["server", f"-config={cfg}"]
    return srv.start()


def test_oversized_body_is_413(tmp_path: Path) -> None:
    srv = _inmem_server(tmp_path, 1024)
    try:
        token = init_and_unseal(srv)["root_token"]
        r = srv.request("POST", "sys/mounts/transit", json={"type": "transit"}, token=token)
        assert r.status_code == 204
        r = srv.request("POST", "transit/encrypt/big", json={"plaintext": "A" * 4096}, token=token)
        assert r.status_code == 413
        assert r.json()["errors"]
        assert srv.request("GET", "transit/keys/big", token=token).status_code == 404
    finally:
        srv.stop()


def test_negative_max_request_size_means_unlimited(tmp_path: Path) -> None:
    """Vault: max_request_size < 0 disables the limit (it used to make every request 413)."""
    # (the 1 MiB default JSON string limit would refuse the big value first)
    srv = _inmem_server(tmp_path, -1, "  max_json_string_value_length = 67108864\n")
    try:
        token = init_and_unseal(srv)["root_token"]
        r = srv.request("POST", "sys/mounts/transit", json={"type": "transit"}, token=token)
        assert r.status_code == 204
        big = base64.b64encode(b"A" * (33 * 1024 * 1024)).decode()  # over the 32 MiB default
        r = srv.request("POST", "transit/encrypt/big", json={"plaintext": big}, token=token)
        assert r.status_code == 200, r.text[:200]
    finally:
        srv.stop()


def test_the_first_x_vault_token_header_wins(server: ServerProcess) -> None:
    """Two X-Vault-Token headers: the first one counts (Go's Header.Get), as in Vault."""
    import http.client

    def status(tokens: list[str]) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.putrequest("GET", "/v1/sys/mounts")
            for t in tokens:
                conn.putheader("X-Vault-Token", t)
            conn.endheaders()
            return conn.getresponse().status
        finally:
            conn.close()

    assert status(["root", "bogus"]) == 200
    assert status(["bogus", "root"]) == 403


def test_too_many_batch_items_is_400(server: ServerProcess, mount: str) -> None:
    items = [{"plaintext": ""}] * 10_001
    r = server.request("POST", f"{mount}/encrypt/many", json={"batch_input": items})
    assert r.status_code == 400
    # 10,001 items are over Vault's JSON array limit before they reach the batch limit
    assert r.json()["errors"] == ["JSON array exceeds allowed element count"]
    assert server.request("GET", f"{mount}/keys/many").status_code == 404


def test_file_storage_survives_restart(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    cfg = tmp_path / "server.hcl"
    cfg.write_text(
        f'storage "file" {{\n  path = "{data}"\n}}\nlistener "tcp" {{\n'
        f'  address = "127.0.0.1:{port}"\n  tls_disable = "true"\n}}\n'
        f'api_addr = "http://127.0.0.1:{port}"\ndisable_mlock = true\n'
    )
    srv = ServerProcess(["server", "-config", str(cfg)], port, log=tmp_path / "a.log").start()
    try:
        init = init_and_unseal(srv, 3, 2)
        token = init["root_token"]
        client = srv.client(token)
        client.sys.enable_secrets_engine("transit", path="enc")
        client.secrets.transit.create_key("durable", mount_point="enc")
        ct = client.secrets.transit.encrypt_data("durable", "aGVsbG8=", mount_point="enc")[
            "data"]["ciphertext"]
    finally:
        srv.stop()
    srv2 = ServerProcess(["server", "-config", str(cfg)], port, log=tmp_path / "b.log").start()
    try:
        client = srv2.client(token)
        assert client.sys.is_initialized() and client.sys.is_sealed()
        # restarted nodes start sealed; any threshold-sized subset of the shares unseals
        client.sys.submit_unseal_keys(init["keys"][1:3])
        pt = client.secrets.transit.decrypt_data("durable", ct, mount_point="enc")
        assert pt["data"]["plaintext"] == "aGVsbG8="
        assert "enc/" in client.sys.list_mounted_secrets_engines()["data"]
    finally:
        srv2.stop()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "tls.crt", tmp / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_listener_from_json_config(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    cfg = tmp_path / "server.json"
    cfg.write_bytes(orjson.dumps({
        "storage": {"inmem": {}},
        "listener": {"tcp": {"address": f"127.0.0.1:{port}", "tls_cert_file": str(cert),
                             "tls_key_file": str(key)}},
    }))
    srv = ServerProcess(["server", "-config", str(cfg)], port, log=tmp_path / "tls.log")
    srv.addr = f"https://127.0.0.1:{port}"
    srv.session.verify = str(cert)
    # the readiness probe in start() uses plain requests without our CA: poll ourselves
    proc = subprocess.Popen([sys.executable, "-m", "transit", *srv.args], cwd=ROOT,
                            stdout=open(srv.log_path, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    srv.proc = proc
    try:
        for _ in range(200):
            try:
                r = requests.get(srv.addr + "/v1/sys/health", verify=str(cert), timeout=0.5)
                break
            except requests.RequestException:
                if proc.poll() is not None:
                    raise AssertionError(srv.log()) from None
                import time
                time.sleep(0.05)
        assert r.status_code == 501  # TLS works; the node is not initialised yet
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/v1/sys/health", timeout=2)
    finally:
        srv.stop()


def test_bad_config_exits_nonzero(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.hcl"
    cfg.write_text('listener "tcp" {\n  address = "127.0.0.1:1"\n  tls_disable = true\n}\n')
    out = subprocess.run([sys.executable, "-m", "transit", "server", "-config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode != 0
    assert "storage" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_lists_flags() -> None:
    out = subprocess.run([sys.executable, "-m", "transit", "server", "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0
    for flag in ("-dev", "-config", "-dev-root-token-id", "-dev-listen-address"):
        assert flag in out.stdout


def test_core_dumps_are_off(server: ServerProcess) -> None:
    """A core dump would hold the root key and cached keys: the server turns them off."""
    limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core
