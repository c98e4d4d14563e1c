"""Init, unseal, seal, barrier rotation and the static seal on real non-dev servers
(spec ha-and-sys-api §4.1-4.6, §5.1), through hvac and raw HTTP."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import requests

from tests.helpers import ServerProcess, free_port


def _config(tmp: Path, port: int, storage: str, seal: str = "") -> Path:
    cfg = tmp / f"server-{port}.hcl"
    cfg.write_text(
        f"{storage}\n"
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        f'api_addr = "http://127.0.0.1:{port}"\ndisable_mlock = true\n{seal}'
    )
    return cfg


def _server(tmp: Path, storage: str = 'storage "inmem" {}', seal: str = "",
            port: int | None = None, name: str = "srv") -> ServerProcess:
    port = port or free_port()
    cfg = _config(tmp, port, storage, seal)
    return ServerProcess(["server", "-config", str(cfg)], port, token="",
                         log=tmp / f"{name}-{port}.log")


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ServerProcess]:
    """An uninitialised server on in-memory storage with a Shamir seal."""
    srv = _server(tmp_path).start()
    yield srv
    srv.stop()


def _health(srv: ServerProcess, method: str = "GET", **query: str) -> requests.Response:
    return requests.request(method, f"{srv.addr}/v1/sys/health", params=query, timeout=10)


def _raw(srv: ServerProcess, method: str, path: str, **kw: object) -> requests.Response:
    return requests.request(method, f"{srv.addr}/v1/{path}", timeout=10, **kw)  # type: ignore[arg-type]


def test_init_unseal_seal_cycle(fresh: ServerProcess) -> None:
    client = hvac.Client(url=fresh.addr)
    assert client.sys.is_initialized() is False
    r = _health(fresh)
    assert r.status_code == 501 and r.json()["initialized"] is False
    assert _health(fresh, uninitcode="299").status_code == 299
    status = client.sys.read_seal_status()
    assert (status["initialized"], status["sealed"], status["t"], status["n"]) == (False, True, 0, 0)

    result = client.sys.initialize(5, 3)
    keys, keys_b64, root = result["keys"], result["keys_base64"], result["root_token"]
    assert len(keys) == 5 and all(len(k) == 66 for k in keys)
    assert all(len(k) == 44 for k in keys_b64)
    assert root.startswith("hvs.") and len(root) == 28
    assert client.sys.is_initialized() is True
    assert client.sys.is_sealed() is True  # still sealed after init
    assert _health(fresh).status_code == 503
    assert _health(fresh, sealedcode="299").status_code == 299
    # sealed: every other request is 503 "Vault is sealed", even with the right token
    r = _raw(fresh, "GET", "sys/mounts", headers={"X-Vault-Token": root})
    assert r.status_code == 503 and r.json() == {"errors": ["Vault is sealed"]}

    progress = client.sys.submit_unseal_key(keys[0])
    assert (progress["sealed"], progress["progress"], progress["t"], progress["n"]) == (True, 1, 3, 5)
    assert progress["nonce"]
    done = client.sys.submit_unseal_keys([keys_b64[2], keys[4]])
    assert done["sealed"] is False and done["progress"] == 0
    assert "cluster_id" in done and "cluster_name" in done
    assert client.sys.is_sealed() is False
    r = _health(fresh)
    assert r.status_code == 200 and r.json()["sealed"] is False
    assert _health(fresh, activecode="299").status_code == 299
    head = _health(fresh, "HEAD")
    assert head.status_code == 200 and head.content == b""

    client.token = root
    client.sys.enable_secrets_engine("transit", path="enc")
    client.secrets.transit.create_key("k", mount_point="enc")
    ct = client.secrets.transit.encrypt_data("k", "aGk=", mount_point="enc")["data"]["ciphertext"]

    # barrier key rotation
    before = client.sys.get_encryption_key_status()
    assert before["data"]["term"] == 1
    client.sys.rotate_encryption_key()
    after = client.sys.get_encryption_key_status()
    assert after["data"]["term"] == 2 and after["term"] == 2
    assert after["data"]["install_time"]

    # sealing needs a token
    assert _raw(fresh, "PUT", "sys/seal").status_code == 403
    client.sys.seal()
    assert client.sys.is_sealed() is True
    assert _health(fresh).status_code == 503
    with pytest.raises(hvac.exceptions.VaultDown):
        client.secrets.transit.read_key("k", mount_point="enc")

    # another subset of shares opens it again; data from before the seal and rotation is there
    client.sys.submit_unseal_keys([keys[1], keys[3], keys_b64[0]])
    assert client.sys.is_sealed() is False
    pt = client.secrets.transit.decrypt_data("k", ct, mount_point="enc")
    assert pt["data"]["plaintext"] == "aGk="
    assert client.sys.get_encryption_key_status()["data"]["term"] == 2


def test_init_bad_input(fresh: ServerProcess) -> None:
    cases = [
        ({"secret_shares": 3, "secret_threshold": 5},
         "invalid seal configuration: threshold cannot be larger than shares"),
        ({"secret_shares": 0, "secret_threshold": 0},
         "invalid seal configuration: shares must be at least one"),
        ({"secret_shares": 3, "secret_threshold": 1},
         "invalid seal configuration: threshold must be greater than one for multiple shares"),
        ({"secret_shares": 256, "secret_threshold": 3},
         "invalid seal configuration: shares must be less than 256"),
        ({"secret_shares": 5, "secret_threshold": 3, "recovery_shares": 5},
         "parameters recovery_shares not applicable to seal type shamir"),
    ]
    for body, message in cases:
        r = _raw(fresh, "PUT", "sys/init", json=body)
        assert r.status_code == 400, r.text
        assert r.json() == {"errors": [message]}
    r = _raw(fresh, "PUT", "sys/init", json={"secret_shares": "5", "secret_threshold": 3})
    assert r.status_code == 400 and "secret_shares" in r.json()["errors"][0]
    r = _raw(fresh, "PUT", "sys/init", data=b'{"secret_shares": 5,')
    assert r.status_code == 400 and "failed to parse JSON input" in r.json()["errors"][0]
    r = _raw(fresh, "PUT", "sys/init", data=b"[1, 2]")
    assert r.status_code == 400
    assert _raw(fresh, "GET", "sys/init").json() == {"initialized": False}

    # unseal before init
    r = _raw(fresh, "PUT", "sys/unseal", json={"key": os.urandom(33).hex()})
    assert r.status_code == 400 and r.json() == {"errors": ["Vault is not initialized"]}

    assert _raw(fresh, "PUT", "sys/init", json={"secret_shares": 1, "secret_threshold": 1}).ok
    r = _raw(fresh, "PUT", "sys/init", json={"secret_shares": 1, "secret_threshold": 1})
    assert r.status_code == 400 and r.json() == {"errors": ["Vault is already initialized"]}


def test_unseal_bad_input_and_reset(fresh: ServerProcess) -> None:
    init = _raw(fresh, "PUT", "sys/init", json={"secret_shares": 3, "secret_threshold": 2}).json()
    keys = init["keys"]
    cases = [
        ({}, "'key' must be specified in request body as JSON, or 'reset' set to true"),
        ({"key": "zz-not-a-key!"}, "'key' must be a valid hex or base64 string"),
        ({"key": base64.b64encode(b"k" * 8).decode()}, "key is shorter than minimum 16 bytes"),
        ({"key": keys[0], "migrate": True},
         "'migrate' parameter set true in JSON body when not in seal migration mode"),
    ]
    for body, message in cases:
        r = _raw(fresh, "PUT", "sys/unseal", json=body)
        assert r.status_code == 400, r.text
        assert r.json() == {"errors": [message]}
    r = _raw(fresh, "PUT", "sys/unseal", data=b'{"key": ')
    assert r.status_code == 400 and "failed to parse JSON input" in r.json()["errors"][0]
    r = _raw(fresh, "PUT", "sys/unseal", json={"key": 5})
    assert r.status_code == 400
    assert _raw(fresh, "GET", "sys/seal-status").json()["progress"] == 0

    # progress, then reset
    st = _raw(fresh, "PUT", "sys/unseal", json={"key": keys[0]}).json()
    assert st["progress"] == 1
    st = _raw(fresh, "PUT", "sys/unseal", json={"reset": True}).json()
    assert (st["progress"], st["nonce"], st["sealed"]) == (0, "", True)

    # a wrong share completes the threshold: generic error, progress reset
    _raw(fresh, "PUT", "sys/unseal", json={"key": keys[0]})
    r = _raw(fresh, "PUT", "sys/unseal", json={"key": os.urandom(33).hex()})
    assert r.status_code == 400 and r.json() == {"errors": ["Unseal failed, invalid key"]}
    st = _raw(fresh, "GET", "sys/seal-status").json()
    assert (st["sealed"], st["progress"]) == (True, 0)

    _raw(fresh, "PUT", "sys/unseal", json={"key": keys[1]})
    st = _raw(fresh, "PUT", "sys/unseal", json={"key": init["keys_base64"][2]}).json()
    assert st["sealed"] is False
    r = _raw(fresh, "PUT", "sys/unseal", json={"reset": True})
    assert r.status_code == 400 and r.json() == {"errors": ["vault is unsealed"]}
    # an unsealed node just answers its status
    assert _raw(fresh, "PUT", "sys/unseal", json={"key": keys[0]}).json()["sealed"] is False


def test_file_storage_restart_and_no_plaintext_on_disk(tmp_path: Path) -> None:
    data = tmp_path / "data"
    storage = f'storage "file" {{\n  path = "{data}"\n}}'
    srv = _server(tmp_path, storage, name="a").start()
    marker = "cGxhaW50ZXh0LW1hcmtlci0xMjM0NQ=="  # base64("plaintext-marker-12345")
    try:
        init = hvac.Client(url=srv.addr).sys.initialize(3, 2)
        client = srv.client(init["root_token"])
        client.sys.submit_unseal_keys(init["keys"][:2])
        client.sys.enable_secrets_engine("transit", path="enc")
        client.secrets.transit.create_key("k", mount_point="enc")
        ct = client.secrets.transit.encrypt_data("k", marker, mount_point="enc")["data"]["ciphertext"]
    finally:
        srv.stop()
    blobs = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    assert b"plaintext-marker-12345" not in blobs and marker.encode() not in blobs
    assert init["root_token"].encode() not in blobs

    again = _server(tmp_path, storage, port=srv.port, name="b").start()
    try:
        client = again.client(init["root_token"])
        assert client.sys.is_initialized() and client.sys.is_sealed()
        client.sys.submit_unseal_keys(init["keys"][1:])
        pt = client.secrets.transit.decrypt_data("k", ct, mount_point="enc")
        assert pt["data"]["plaintext"] == marker
    finally:
        again.stop()


def test_static_seal_auto_unseals_on_restart(tmp_path: Path) -> None:
    key_file = tmp_path / "unseal.key"
    key_file.write_bytes(os.urandom(32))
    data = tmp_path / "data"
    storage = f'storage "file" {{\n  path = "{data}"\n}}'
    seal = f'seal "static" {{\n  current_key_id = "k1"\n  current_key = "file://{key_file}"\n}}\n'
    srv = _server(tmp_path, storage, seal, name="a").start()
    try:
        client = hvac.Client(url=srv.addr)
        assert client.sys.read_seal_status()["type"] == "static"
        with pytest.raises(hvac.exceptions.InvalidRequest, match="not applicable to seal type static"):
            client.sys.initialize(5, 3)
        init = client.sys.initialize(recovery_shares=3, recovery_threshold=2)
        assert init["keys"] == [] and len(init["recovery_keys"]) == 3
        assert client.sys.is_sealed() is False  # no unseal step with a static seal
        status = client.sys.read_seal_status()
        assert (status["recovery_seal"], status["t"], status["n"]) == (True, 2, 3)
        client.token = init["root_token"]
        client.sys.enable_secrets_engine("transit", path="enc")
        client.secrets.transit.create_key("k", mount_point="enc")
        ct = client.secrets.transit.encrypt_data("k", "aGk=", mount_point="enc")["data"]["ciphertext"]
    finally:
        srv.stop()

    again = _server(tmp_path, storage, seal, port=srv.port, name="b").start()
    try:
        client = again.client(init["root_token"])
        assert client.sys.is_sealed() is False
        assert _health(again).status_code == 200
        pt = client.secrets.transit.decrypt_data("k", ct, mount_point="enc")
        assert pt["data"]["plaintext"] == "aGk="
    finally:
        again.stop()
