"""Nothing is stored in the clear: dump every byte of a file-backed server's storage after a
realistic workload and look for secrets, tokens, plaintexts and key material."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.helpers import ServerProcess, free_port


def _start(cfg: Path, port: int, log: Path) -> ServerProcess:
    return ServerProcess(["server", "-config", str(cfg)], port, log=log).start()


def test_storage_dump_holds_no_secret(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    cfg = tmp_path / "server.hcl"
    cfg.write_text(
        f'storage "file" {{\n  path = "{data}"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
    )
    srv = _start(cfg, port, tmp_path / "a.log")
    try:
        client = srv.client("")
        init = client.sys.initialize(5, 3)
        root = init["root_token"]
        client.sys.submit_unseal_keys(init["keys"][:3])
        client.token = root

        secrets_seen: list[bytes] = [root.encode()]
        secrets_seen += [bytes.fromhex(k) for k in init["keys"]]

        client.sys.enable_secrets_engine("transit", path="transit")
        client.secrets.transit.create_key("app", exportable=True, mount_point="transit")
        client.secrets.transit.create_key("signer", key_type="ed25519", exportable=True,
                                          mount_point="transit")
        plaintext = b"the-quick-plaintext-0123456789"
        ct = client.secrets.transit.encrypt_data(
            "app", base64.b64encode(plaintext).decode(), mount_point="transit")["data"]["ciphertext"]
        assert ct.startswith("vault:v1:")
        client.secrets.transit.rotate_key("app", mount_point="transit")
        exported = client.secrets.transit.export_key("app", "encryption-key", mount_point="transit")
        for material in exported["data"]["keys"].values():
            secrets_seen += [material.encode(), base64.b64decode(material)]
        signing = client.secrets.transit.export_key("signer", "signing-key", mount_point="transit")
        for material in signing["data"]["keys"].values():
            secrets_seen += [material.encode(), base64.b64decode(material)[:32]]

        client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
        secret_value = "kv-secret-value-that-must-not-leak"
        client.secrets.kv.v2.create_or_update_secret(
            "db/creds", secret={"password": secret_value}, mount_point="secret")
        secrets_seen.append(secret_value.encode())

        policy_marker = "policy-marker-path-xyz"
        client.sys.create_or_update_acl_policy(
            "app", f'path "{policy_marker}/*" {{ capabilities = ["read"] }}')
        secrets_seen.append(policy_marker.encode())
        child = client.auth.token.create(policies=["app"], ttl="1h")["auth"]
        secrets_seen += [child["client_token"].encode(), child["accessor"].encode()]
    finally:
        srv.stop()

    blobs = [p.read_bytes() for p in data.rglob("*") if p.is_file()]
    names = [str(p.relative_to(data)).encode() for p in data.rglob("*")]
    assert blobs, "the workload stored nothing"
    everything = b"\n".join(blobs + names)
    for secret in secrets_seen:
        assert secret not in everything, f"found {secret[:16]!r}… in storage"
    assert plaintext not in everything
    assert base64.b64encode(plaintext) not in everything

    # and the data is still all there after a restart and unseal
    srv = _start(cfg, port, tmp_path / "b.log")
    try:
        client = srv.client(root)
        assert client.sys.is_sealed()
        client.sys.submit_unseal_keys(init["keys"][2:5])
        assert not client.sys.is_sealed()
        pt = client.secrets.transit.decrypt_data("app", ct, mount_point="transit")
        assert base64.b64decode(pt["data"]["plaintext"]) == plaintext
        read = client.secrets.kv.v2.read_secret_version("db/creds", mount_point="secret",
                                                        raise_on_deleted_version=True)
        assert read["data"]["data"]["password"] == secret_value
    finally:
        srv.stop()
