"""BYOK against a real server (raw HTTP and hvac), spec §4.20 and §6 item 2.

All tests share one mount, so its RSA-4096 wrapping key is generated once.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator

import hvac
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from tests import vectors as v
from tests.helpers import ServerProcess
from tests.integration.ops_helpers import api, b64, error, ok, wrapped

_HASHES = {"SHA1": hashes.SHA1, "SHA256": hashes.SHA256, "SHA384": hashes.SHA384}


@pytest.fixture(scope="module")
def bmount(server: ServerProcess) -> Iterator[str]:
    path = f"byok-{uuid.uuid4().hex[:8]}"
    assert server.request("POST", f"sys/mounts/{path}", json={"type": "transit"}).status_code == 204
    yield path
    server.request("DELETE", f"sys/mounts/{path}")


@pytest.fixture(scope="module")
def wrapping_pem(server: ServerProcess, bmount: str) -> str:
    return ok(api(server, "GET", bmount, "wrapping_key"))["public_key"]


def wrap(target: bytes, pem: str, hash_name: str = "SHA256") -> str:
    """The import format, built by hand: RSA-OAEP(ephemeral AES key) || AES-KWP(target)."""
    pub = serialization.load_pem_public_key(pem.encode())
    h = _HASHES[hash_name]()
    eph = os.urandom(32)
    wrapped_eph = pub.encrypt(eph, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
    return b64(wrapped_eph + aes_key_wrap_with_padding(eph, target))


def names(server: ServerProcess, mount: str) -> list[str]:
    return ok(api(server, "GET", mount, "keys", params={"list": "true"}))["keys"]


def test_wrapping_key(server: ServerProcess, bmount: str, wrapping_pem: str) -> None:
    assert wrapping_pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    # pem.EncodeToMemory keeps the trailing newline (compat-diff vs OpenBao 2.7.2).
    assert wrapping_pem.endswith("-----END PUBLIC KEY-----\n")
    pub = serialization.load_pem_public_key(wrapping_pem.encode())
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 4096
    assert ok(api(server, "GET", bmount, "wrapping_key"))["public_key"] == wrapping_pem
    assert "import/" in names(server, bmount)
    assert api(server, "POST", bmount, "wrapping_key").status_code == 405


def test_import_known_aes_key_decrypts_offline(server: ServerProcess, bmount: str,
                                               wrapping_pem: str, client: hvac.Client) -> None:
    r = api(server, "POST", bmount, "keys/known/import", json={
        "ciphertext": wrap(v.K, wrapping_pem), "exportable": True})
    assert r.status_code == 204 and r.content == b""
    info = client.secrets.transit.read_key("known", mount_point=bmount)["data"]
    assert info["imported_key"] is True and info["type"] == "aes256-gcm96"
    nonce = os.urandom(12)
    offline = "vault:v1:" + b64(nonce + AESGCM(v.K).encrypt(nonce, b"made offline", None))
    got = client.secrets.transit.decrypt_data("known", ciphertext=offline, mount_point=bmount)
    assert got["data"]["plaintext"] == b64("made offline")
    assert client.secrets.transit.decrypt_data("known", ciphertext=v.ZERO_NONCE_CT,
                                               mount_point=bmount)["data"]["plaintext"] == (
        v.PLAINTEXT_B64)
    ct = client.secrets.transit.encrypt_data("known", plaintext=v.PLAINTEXT_B64,
                                             mount_point=bmount)["data"]["ciphertext"]
    payload = base64.b64decode(ct.split(":")[2])
    assert AESGCM(v.K).decrypt(payload[:12], payload[12:], None) == b"hello world"


def test_import_ed25519_known_seed(server: ServerProcess, bmount: str, wrapping_pem: str,
                                   client: hvac.Client) -> None:
    priv = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    der = priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    r = api(server, "POST", bmount, "keys/edseed/import", json={
        "type": "ed25519", "ciphertext": wrap(der, wrapping_pem, "SHA384"),
        "hash_function": "sha384"})
    assert r.status_code == 204, r.text
    sig = client.secrets.transit.sign_data("edseed", hash_input=v.PLAINTEXT_B64,
                                           mount_point=bmount)["data"]["signature"]
    assert sig == "vault:v1:" + b64(priv.sign(b"hello world"))
    assert client.secrets.transit.verify_signed_data(
        "edseed", hash_input=v.PLAINTEXT_B64, signature=sig, mount_point=bmount)["data"]["valid"]


def test_import_errors_store_nothing(server: ServerProcess, bmount: str,
                                     wrapping_pem: str) -> None:
    good = wrap(v.K, wrapping_pem)
    api(server, "POST", bmount, "keys/taken", json={})
    before = names(server, bmount)
    cases_500 = [
        ({"ciphertext": good, "convergent_encryption": True},
         "import cannot be used on keys with convergent encryption enabled"),
        ({"ciphertext": good, "auto_rotate_period": "1h"},
         "allow_rotation must be set to true if auto-rotation is enabled"),
        ({"ciphertext": "not base64!"}, "illegal base64 data at input byte 3"),
        ({"ciphertext": b64(bytes(64))}, "provided ciphertext is too short"),
        ({"ciphertext": b64(bytes(600))}, "crypto/rsa: decryption error"),
        ({"ciphertext": wrap(bytes(16), wrapping_pem)},
         "error importing key: invalid key size 16 bytes for key type aes256-gcm96"),
        ({"public_key": "-----BEGIN PUBLIC KEY-----"},
         "provided type does not support public_key import"),
    ]
    for body, msg in cases_500:
        assert error(api(server, "POST", bmount, "keys/fresh/import", json=body), 500) == (
            wrapped(msg)), body
    assert error(api(server, "POST", bmount, "keys/taken/import", json={"ciphertext": good}),
                 500).startswith(wrapped("the import path cannot be used")[:40])
    assert error(api(server, "POST", bmount, "keys/fresh/import", json={
        "ciphertext": good, "type": "des"})) == "unknown key type: des"
    assert error(api(server, "POST", bmount, "keys/fresh/import", json={
        "ciphertext": good, "hash_function": "MD5"})) == "unknown hash function: MD5"
    assert error(api(server, "POST", bmount, "keys/fresh/import", json={
        "ciphertext": good, "derived": "perhaps"})).startswith("Field validation failed")
    r = api(server, "POST", bmount, "keys/fresh/import", data="{", headers={
        "Content-Type": "application/json"})
    assert r.status_code == 400
    assert names(server, bmount) == before
    assert api(server, "GET", bmount, "keys/fresh").status_code == 404


def test_import_version_and_byok_export_round_trip(server: ServerProcess, bmount: str,
                                                   wrapping_pem: str) -> None:
    first, second = os.urandom(32), os.urandom(32)
    api(server, "POST", bmount, "keys/rot/import", json={
        "ciphertext": wrap(first, wrapping_pem), "exportable": True})
    r = api(server, "POST", bmount, "keys/rot/import_version", json={
        "ciphertext": wrap(second, wrapping_pem)})
    assert r.status_code == 204, r.text
    exported = ok(api(server, "GET", bmount, "export/encryption-key/rot"))["keys"]
    assert exported == {"1": b64(first), "2": b64(second)}
    # The mount's own wrapping key, imported as a public-only RSA key, is a byok-export
    # destination whose output this mount can import again.
    r = api(server, "POST", bmount, "keys/dest/import", json={
        "type": "rsa-4096", "public_key": wrapping_pem})
    assert r.status_code == 204, r.text
    out = ok(api(server, "GET", bmount, "byok-export/dest/rot"))
    assert out["name"] == "rot" and out["type"] == "aes256-gcm96"
    assert sorted(out["keys"]) == ["1", "2"]
    r = api(server, "POST", bmount, "keys/rot-copy/import", json={
        "ciphertext": out["keys"]["2"], "exportable": True})
    assert r.status_code == 204, r.text
    assert ok(api(server, "GET", bmount, "export/encryption-key/rot-copy"))["keys"] == {
        "1": b64(second)}
    assert error(api(server, "GET", bmount, "byok-export/nowhere/rot"), 500) == wrapped(
        "no such destination key to export to")
    assert error(api(server, "GET", bmount, "byok-export/dest/rot/v9")) == (
        "version does not exist or cannot be found")
    assert error(api(server, "POST", bmount, "keys/nothere/import_version", json={
        "ciphertext": out["keys"]["1"]}), 500) == wrapped(
        "no key found with name nothere; to import a new key, use the import/ endpoint")


def test_byok_messages_seen_in_compat_diff(server: ServerProcess, mount: str) -> None:
    """Messages checked against OpenBao 2.7.2 (bench/compat_diff.py)."""
    r = api(server, "POST", mount, "keys/imp/import", json={"type": "rsa-2048", "public_key": "x"})
    assert r.status_code == 500
    assert r.json()["errors"] == ["1 error occurred:\n\t* error importing key: error parsing "
                                  "public key: not in PEM format\n\n"]
    ok(api(server, "POST", mount, "keys/aes", json={"exportable": True}))
    r = api(server, "GET", mount, "byok-export/aes/aes")
    assert r.status_code == 500
    assert r.json()["errors"] == ["1 error occurred:\n\t* key wrapping (requring message "
                                  "signing) is not supported for key type aes256-gcm96\n\n"]
