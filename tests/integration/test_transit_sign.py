"""sign and verify against a real server (hvac and raw HTTP), spec §3.5, §4.15-4.16."""

from __future__ import annotations

import base64

import hvac
import hvac.exceptions
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

from tests import vectors as v
from tests.helpers import ServerProcess
from tests.integration.ops_helpers import api, b64, error, ok

MSG = v.PLAINTEXT_B64


def _sig_bytes(sig: str) -> bytes:
    return base64.b64decode(sig.split(":", 2)[2])


def test_ed25519_hvac_sign_verify_and_tamper(server: ServerProcess, mount: str,
                                             client: hvac.Client) -> None:
    t = client.secrets.transit
    t.create_key("ed", key_type="ed25519", exportable=True, mount_point=mount)
    resp = t.sign_data("ed", hash_input=MSG, mount_point=mount)
    sig = resp["data"]["signature"]
    assert resp["data"]["key_version"] == 1
    seed = base64.b64decode(t.export_key("ed", "signing-key", mount_point=mount)[
        "data"]["keys"]["1"])[:32]
    assert _sig_bytes(sig) == ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(
        b"hello world")
    assert t.verify_signed_data("ed", hash_input=MSG, signature=sig, mount_point=mount)[
        "data"]["valid"] is True
    raw = bytearray(_sig_bytes(sig))
    raw[0] ^= 1
    bad = "vault:v1:" + b64(bytes(raw))
    assert t.verify_signed_data("ed", hash_input=MSG, signature=bad, mount_point=mount)[
        "data"]["valid"] is False


def test_ecdsa_and_rsa_cross_verify(server: ServerProcess, mount: str,
                                    client: hvac.Client) -> None:
    t = client.secrets.transit
    t.create_key("ec", key_type="ecdsa-p384", exportable=True, mount_point=mount)
    sig = t.sign_data("ec", hash_input=MSG, hash_algorithm="sha2-384", mount_point=mount)[
        "data"]["signature"]
    pem = t.export_key("ec", "signing-key", mount_point=mount)["data"]["keys"]["1"]
    pub = serialization.load_pem_private_key(pem.encode(), None).public_key()
    pub.verify(_sig_bytes(sig), b"hello world", ec.ECDSA(hashes.SHA384()))

    t.create_key("rsa", key_type="rsa-2048", exportable=True, mount_point=mount)
    pem = t.export_key("rsa", "signing-key", mount_point=mount)["data"]["keys"]["1"]
    priv = serialization.load_pem_private_key(pem.encode(), None)
    pkcs = t.sign_data("rsa", hash_input=MSG, signature_algorithm="pkcs1v15",
                       mount_point=mount)["data"]["signature"]
    assert _sig_bytes(pkcs) == priv.sign(b"hello world", padding.PKCS1v15(), hashes.SHA256())
    pss = ok(api(server, "POST", mount, "sign/rsa/sha2-512", json={"input": MSG,
                                                                    "salt_length": "hash"}))
    priv.public_key().verify(_sig_bytes(pss["signature"]), b"hello world",
                             padding.PSS(padding.MGF1(hashes.SHA512()), 64), hashes.SHA512())
    assert t.verify_signed_data("rsa", hash_input=MSG, signature=pss["signature"],
                                hash_algorithm="sha2-512", mount_point=mount)["data"]["valid"]
    assert not t.verify_signed_data("rsa", hash_input=MSG, signature=pss["signature"],
                                    mount_point=mount)["data"]["valid"]


def test_derived_ed25519_field_names(server: ServerProcess, mount: str,
                                     client: hvac.Client) -> None:
    client.secrets.transit.create_key("d", key_type="ed25519", derived=True, mount_point=mount)
    ctx = b64("c1")
    single = ok(api(server, "POST", mount, "sign/d", json={"input": MSG, "context": ctx}))
    assert sorted(single) == ["key_version", "public_key", "signature"]
    batch = ok(api(server, "POST", mount, "sign/d", json={"batch_input": [
        {"input": MSG, "context": ctx, "reference": "r"}, {"input": MSG}]}))["batch_results"]
    assert batch[0]["publickey"] == single["public_key"] and batch[0]["reference"] == "r"
    assert batch[1]["key_version"] == 0 and batch[1]["reference"] == ""
    assert "missing 'context'" in batch[1]["error"]
    pub = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(single["public_key"]))
    pub.verify(_sig_bytes(single["signature"]), b"hello world")


def test_verify_batch(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    client.secrets.transit.create_key("ed", key_type="ed25519", mount_point=mount)
    sig = client.secrets.transit.sign_data("ed", hash_input=MSG, mount_point=mount)[
        "data"]["signature"]
    d = ok(api(server, "POST", mount, "verify/ed", json={"batch_input": [
        {"input": MSG, "signature": sig, "reference": "1"},
        {"input": b64("other"), "signature": sig, "reference": "2"},
        {"input": MSG, "signature": "garbage", "reference": "3"},
    ]}))
    assert d["batch_results"] == [
        {"valid": True, "reference": "1"},
        {"valid": False, "reference": "2"},
        {"valid": False, "error": "invalid signature: no prefix", "reference": "3"},
    ]


@pytest.mark.parametrize(("path", "body", "msg"), [
    ("sign/aes", {"input": MSG}, "key type aes256-gcm96 does not support signing"),
    ("sign/nokey", {"input": MSG}, "signing key not found"),
    ("sign/ed", {"input": "***"},
     "unable to decode input as base64: illegal base64 data at input byte 0"),
    ("sign/ed", {"input": MSG, "hash_algorithm": "sha2-999"}, 'invalid hash algorithm "sha2-999"'),
    ("sign/ed", {"input": MSG, "marshaling_algorithm": "pem"}, 'invalid marshaling type "pem"'),
    ("sign/ed", {"input": MSG, "salt_length": "big"},
     "salt length neither 'auto', 'hash', nor an int: big"),
    ("verify/aes", {"input": MSG, "signature": "vault:v1:AA=="},
     "key type aes256-gcm96 does not support verification"),
    ("verify/ed", {"input": MSG}, "neither a 'signature' nor an 'hmac' were given to verify"),
    ("verify/ed", {"input": MSG, "signature": "vault:v2:AA=="},
     "invalid signature: version is too new"),
    ("verify/ed", {"batch_input": [{"input": MSG, "signature": "s"}, {"input": MSG, "hmac": "h"}]},
     "elements of batch_input must all provide 'signature' or all provide 'hmac'"),
    ("verify/ed", {"batch_input": [{"input": MSG, "signature": "s"}, {"input": MSG}]},
     "some elements of batch_input are missing 'signature'"),
    ("verify/ed", {"batch_input": [{"input": MSG}]},
     "no batch_input elements have 'signature' or 'hmac'"),
])
def test_sign_verify_errors(server: ServerProcess, mount: str, client: hvac.Client, path: str,
                            body, msg: str) -> None:
    client.secrets.transit.create_key("aes", mount_point=mount)
    client.secrets.transit.create_key("ed", key_type="ed25519", mount_point=mount)
    assert error(api(server, "POST", mount, path, json=body)) == msg


def test_sign_bad_requests_and_hvac_errors(server: ServerProcess, mount: str,
                                           client: hvac.Client) -> None:
    t = client.secrets.transit
    t.create_key("aes", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest,
                       match="key type aes256-gcm96 does not support signing"):
        t.sign_data("aes", hash_input=MSG, mount_point=mount)
    r = api(server, "POST", mount, "sign/aes", data='{"input":', headers={
        "Content-Type": "application/json"})
    assert r.status_code == 400
    assert error(api(server, "POST", mount, "sign/aes", json={
        "input": MSG, "prehashed": "sometimes"})).startswith("Field validation failed")
    r = api(server, "POST", mount, "sign/aes", json={"batch_input": "x"})
    assert r.status_code == 400  # the key check comes before batch parsing
    t.create_key("ed", key_type="ed25519", mount_point=mount)
    r = api(server, "POST", mount, "sign/ed", json={"batch_input": [{"input": False}]})
    assert error(r, 500).startswith("1 error occurred:\n\t* failed to parse batch input: ")
    assert api(server, "GET", mount, "sign/ed").status_code == 405
    # sign and verify never create keys
    assert api(server, "POST", mount, "sign/new", json={"input": MSG}).status_code == 400
    assert sorted(api(server, "GET", mount, "keys", params={"list": "true"}).json()["data"]["keys"]) == ["aes", "ed"]


def test_sign_policy_errors_are_500_when_single(server: ServerProcess, mount: str) -> None:
    """Vault's single sign returns SignWithOptions' error bare: a 500 (OpenBao 2.7.2 agrees);
    in a batch the same error is a per-item entry of a 200."""
    assert api(server, "POST", mount, "keys/ed", json={"type": "ed25519"}).status_code == 200
    r = api(server, "POST", mount, "sign/ed", json={"input": MSG, "key_version": 3})
    assert error(r, 500) == ("1 error occurred:\n\t* requested version for signing is higher "
                             "than the latest key version\n\n")
    r = api(server, "POST", mount, "sign/ed", json={"batch_input": [{"input": MSG}],
                                                   "key_version": 3})
    assert r.status_code == 200
    assert r.json()["data"]["batch_results"][0]["error"] == (
        "requested version for signing is higher than the latest key version")
    assert api(server, "POST", mount, "keys/rsa", json={"type": "rsa-2048"}).status_code == 200
    r = api(server, "POST", mount, "sign/rsa", json={"input": MSG, "salt_length": 10000})
    assert error(r, 500) == "1 error occurred:\n\t* requested salt length 10000 is invalid\n\n"
    # Go's crypto/rsa: PSS and PKCS#1 v1.5 word the wrong-digest-length error differently.
    r = api(server, "POST", mount, "sign/rsa", json={"input": MSG, "prehashed": True})
    assert error(r, 500) == ("1 error occurred:\n\t* crypto/rsa: input must be hashed with "
                             "given hash\n\n")
    r = api(server, "POST", mount, "sign/rsa", json={"input": MSG, "prehashed": True,
                                                    "signature_algorithm": "pkcs1v15"})
    assert error(r, 500) == "1 error occurred:\n\t* crypto/rsa: input must be hashed message\n\n"
