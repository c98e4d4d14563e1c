"""export, backup and restore against a real server (hvac and raw HTTP), spec §4.17-4.19, §6."""

from __future__ import annotations

import base64
import json
import os

import hvac
import hvac.exceptions
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests import vectors as v
from tests.helpers import ServerProcess
from tests.integration.ops_helpers import api, b64, error, errors_of, ok, wrapped


def _names(server: ServerProcess, mount: str) -> list[str]:
    r = api(server, "GET", mount, "keys", params={"list": "true"})
    return [] if r.status_code == 404 else r.json()["data"]["keys"]


def test_export_hvac_and_offline_decrypt(server: ServerProcess, mount: str,
                                         client: hvac.Client) -> None:
    t = client.secrets.transit
    t.create_key("k", exportable=True, mount_point=mount)
    resp = t.export_key("k", "encryption-key", mount_point=mount)
    assert resp["data"]["name"] == "k" and resp["data"]["type"] == "aes256-gcm96"
    key = base64.b64decode(resp["data"]["keys"]["1"])
    ct = t.encrypt_data("k", plaintext=v.PLAINTEXT_B64, mount_point=mount)["data"]["ciphertext"]
    payload = base64.b64decode(ct.split(":")[2])
    assert AESGCM(key).decrypt(payload[:12], payload[12:], None) == b"hello world"
    nonce = os.urandom(12)
    mine = "vault:v1:" + b64(nonce + AESGCM(key).encrypt(nonce, b"from outside", None))
    assert t.decrypt_data("k", ciphertext=mine, mount_point=mount)["data"]["plaintext"] == b64(
        "from outside")
    t.rotate_key("k", mount_point=mount)
    latest = t.export_key("k", "encryption-key", version="latest", mount_point=mount)
    assert list(latest["data"]["keys"]) == ["2"]
    assert list(ok(api(server, "GET", mount, "export/hmac-key/k/v1"))["keys"]) == ["1"]


def test_export_errors(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    client.secrets.transit.create_key("k", exportable=True, mount_point=mount)
    client.secrets.transit.create_key("secret", mount_point=mount)
    r = api(server, "GET", mount, "export/encryption-key/missing")
    assert r.status_code == 404 and r.json() == {"errors": []}
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.transit.export_key("missing", "hmac-key", mount_point=mount)
    cases = [
        ("export/encryption-key/secret", "private key material is not exportable"),
        ("export/everything/k", "invalid export type: everything"),
        ("export/signing-key/k", "signing not supported for the key"),
        ("export/encryption-key/k/v9", "version does not exist or cannot be found"),
        ("export/encryption-key/k/first", "invalid key version"),
        ("export/encryption-key/k/v\u00b2", "invalid key version"),  # was a 500
    ]
    for path, msg in cases:
        assert error(api(server, "GET", mount, path)) == msg, path
    assert api(server, "POST", mount, "export/encryption-key/k").status_code == 405


def test_backup_restore_hvac_round_trip(server: ServerProcess, mount: str,
                                        client: hvac.Client) -> None:
    t = client.secrets.transit
    t.create_key("k", exportable=True, allow_plaintext_backup=True, mount_point=mount)
    ct = t.encrypt_data("k", plaintext=v.PLAINTEXT_B64, mount_point=mount)["data"]["ciphertext"]
    blob = t.backup_key("k", mount_point=mount)["data"]["backup"]
    doc = json.loads(base64.b64decode(blob))
    assert doc["policy"]["name"] == "k" and doc["policy"]["backup_info"]["version"] == 1
    assert t.read_key("k", mount_point=mount)["data"]["backup_info"]["version"] == 1
    r = t.restore_key(blob, name="copy", mount_point=mount)
    assert r.status_code == 204 and r.content == b""
    assert t.decrypt_data("copy", ciphertext=ct, mount_point=mount)["data"]["plaintext"] == (
        v.PLAINTEXT_B64)
    assert t.read_key("copy", mount_point=mount)["data"]["restore_info"]["version"] == 1
    with pytest.raises(hvac.exceptions.InternalServerError, match='key \\\\?"k\\\\?" already'):
        t.restore_key(blob, mount_point=mount)
    assert t.restore_key(blob, force=True, mount_point=mount).status_code == 204


def test_backup_errors_are_500(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    client.secrets.transit.create_key("noexport", mount_point=mount)
    client.secrets.transit.create_key("nobackup", exportable=True, mount_point=mount)
    for name, msg in (("missing", 'key "missing" not found'),
                      ("noexport", "exporting is disallowed on the policy"),
                      ("nobackup", "plaintext backup is disallowed on the policy")):
        assert error(api(server, "GET", mount, f"backup/{name}"), 500) == wrapped(msg)
    with pytest.raises(hvac.exceptions.InternalServerError):
        client.secrets.transit.backup_key("noexport", mount_point=mount)


def test_restore_spec_vectors(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    """§6 items 3-4 end to end: exact convergent ciphertexts and the exact HMAC."""
    t = client.secrets.transit
    cases = [("vec", 0, v.K, v.CONVERGENT_AES256), ("cha", 5, v.K, v.CONVERGENT_CHACHA),
             ("a128", 8, v.K[:16], v.CONVERGENT_AES128)]
    for name, key_type, key, want in cases:
        blob = v.backup_blob(v.policy_json(name, key_type=key_type, convergent=True, key=key))
        r = api(server, "POST", mount, f"restore/{name}", json={"backup": blob})
        assert r.status_code == 204, r.text
        got = t.encrypt_data(name, plaintext=v.PLAINTEXT_B64, context=v.CONTEXT_B64,
                             mount_point=mount)["data"]["ciphertext"]
        assert got == want
        assert t.decrypt_data(name, ciphertext=want, context=v.CONTEXT_B64, mount_point=mount)[
            "data"]["plaintext"] == v.PLAINTEXT_B64
    t.restore_key(v.backup_blob(v.policy_json("plain")), name="plain", mount_point=mount)
    assert t.generate_hmac("plain", hash_input=v.PLAINTEXT_B64, mount_point=mount)["data"][
        "hmac"] == v.HMAC_SHA256
    assert t.decrypt_data("plain", ciphertext=v.ZERO_NONCE_CT, mount_point=mount)["data"][
        "plaintext"] == v.PLAINTEXT_B64
    info = t.read_key("vec", mount_point=mount)["data"]
    assert info["derived"] is True and info["convergent_encryption"] is True


@pytest.mark.parametrize("body", [
    {"backup": "%%%"},
    {"backup": b64("not json")},
    {"backup": b64("{}")},
    {"backup": b64('{"policy": {"name": "x", "type": 42}}')},
])
def test_restore_bad_backups_store_nothing(server: ServerProcess, mount: str, body) -> None:
    errs = errors_of(api(server, "POST", mount, "restore/x", json=body), 500)
    assert errs[0].startswith("1 error occurred:\n\t* ")
    assert _names(server, mount) == []
    assert api(server, "GET", mount, "keys/x").status_code == 404


def test_restore_request_errors(server: ServerProcess, mount: str) -> None:
    assert error(api(server, "POST", mount, "restore", json={})) == "'backup' must be supplied"
    blob = v.backup_blob(v.policy_json("vec"))
    assert error(api(server, "POST", mount, "restore/a/b", json={"backup": blob}), 500) == (
        wrapped("key names cannot be paths"))
    # a number is weakly decoded to the string "5" (as Vault's TypeString does), then fails
    assert error(api(server, "POST", mount, "restore/x", json={"backup": 5}), 500) == (
        wrapped("illegal base64 data at input byte 0"))
    assert error(api(server, "POST", mount, "restore/x", json={"backup": ["x"]})).startswith(
        "Field validation failed")
    r = api(server, "POST", mount, "restore/x", data="{{", headers={
        "Content-Type": "application/json"})
    assert r.status_code == 400
    assert _names(server, mount) == []


def test_restore_refuses_a_path_name_inside_the_backup(server: ServerProcess, mount: str) -> None:
    """The name inside the blob is client input too: a backup renamed to the BYOK wrapping
    key's path must not replace the mount's wrapping key."""
    wrapping = ok(api(server, "GET", mount, "wrapping_key"))["public_key"]
    for name in ("import/wrapping-key", "a/b"):
        blob = v.backup_blob(v.policy_json(name))
        assert error(api(server, "POST", mount, "restore", json={"backup": blob}), 500) == (
            wrapped("key names cannot be paths"))
    assert ok(api(server, "GET", mount, "wrapping_key"))["public_key"] == wrapping
    assert _names(server, mount) == ["import/"]
