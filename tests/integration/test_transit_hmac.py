"""hmac and HMAC verification against a real server (hvac and raw HTTP), spec §4.14, §4.16."""

from __future__ import annotations

import hashlib
import hmac as _hmac

import hvac
import hvac.exceptions
import pytest

from tests import vectors as v
from tests.helpers import ServerProcess
from tests.integration.ops_helpers import api, b64, error, ok

MSG = v.PLAINTEXT_B64


def _tamper(mac: str) -> str:
    """The same HMAC with one significant base64 character changed."""
    c = "B" if mac[-5] == "A" else "A"
    return mac[:-5] + c + mac[-4:]


def test_spec_hmac_vector_end_to_end(server: ServerProcess, mount: str,
                                     client: hvac.Client) -> None:
    """§6 item 4: a plain key with hmac_key H gives the known sha2-256 HMAC."""
    blob = v.backup_blob(v.policy_json("plain"))
    r = api(server, "POST", mount, "restore/plain", json={"backup": blob})
    assert r.status_code == 204 and r.content == b""
    resp = client.secrets.transit.generate_hmac("plain", hash_input=MSG, mount_point=mount)
    assert resp["data"]["hmac"] == v.HMAC_SHA256
    want = _hmac.new(v.H, b"hello world", hashlib.sha512).digest()
    resp = client.secrets.transit.generate_hmac("plain", hash_input=MSG, algorithm="sha2-512",
                                                mount_point=mount)
    assert resp["data"]["hmac"] == "vault:v1:" + b64(want)
    resp = client.secrets.transit.verify_signed_data("plain", hash_input=MSG,
                                                     hmac=v.HMAC_SHA256, mount_point=mount)
    assert resp["data"]["valid"] is True
    # hvac sends `name` in the body too: Vault reports that the path replaced it
    assert resp["warnings"] == [
        "Endpoint replaced the value of these parameters with the values captured from the "
        "endpoint's path: [name]"]


def test_hmac_every_key_type_and_tamper(server: ServerProcess, mount: str,
                                        client: hvac.Client) -> None:
    client.secrets.transit.create_key("ed", key_type="ed25519", mount_point=mount)
    mac = client.secrets.transit.generate_hmac("ed", hash_input=MSG, mount_point=mount)[
        "data"]["hmac"]
    assert mac.startswith("vault:v1:")
    d = ok(api(server, "POST", mount, "verify/ed", json={"input": MSG, "hmac": _tamper(mac)}))
    assert d == {"valid": False}
    d = ok(api(server, "POST", mount, "verify/ed", json={"input": MSG, "hmac": mac}))
    assert d == {"valid": True}


def test_hmac_batches_are_200(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    client.secrets.transit.create_key("k", mount_point=mount)
    d = ok(api(server, "POST", mount, "hmac/k", json={"input": None, "batch_input": [
        {"input": MSG, "reference": "a"}, {"input": "!"}, {"reference": "c"}]}))
    res = d["batch_results"]
    assert res[0]["reference"] == "a" and res[0]["hmac"].startswith("vault:v1:")
    assert res[1] == {"error": "unable to decode input as base64: illegal base64 data at "
                               "input byte 0", "reference": ""}
    assert res[2] == {"error": "missing input for HMAC", "reference": "c"}
    mac = res[0]["hmac"]
    d = ok(api(server, "POST", mount, "verify/k", json={"batch_input": [
        {"input": MSG, "hmac": mac, "reference": "good"},
        {"input": MSG, "hmac": _tamper(mac)},
        {"input": MSG, "hmac": "vault:v2:" + mac.split(":")[2]},
    ]}))
    assert d["batch_results"] == [
        {"valid": True, "reference": "good"},
        {"reference": ""},
        {"error": "invalid HMAC: version is too new", "reference": ""},
    ]


@pytest.mark.parametrize(("path", "body", "msg"), [
    ("hmac/missing", {"input": MSG}, "encryption key not found"),
    ("hmac/k", {}, "missing input for HMAC"),
    ("hmac/k", {"input": "a"}, "unable to decode input as base64: illegal base64 data at "
                               "input byte 0"),
    ("hmac/k/md5", {"input": MSG}, "unsupported algorithm '\\x00'"),
    ("hmac/k", {"input": MSG, "key_version": 5}, "key version does not exist; latest key "
                                                 "version is 1"),
    ("hmac/k", {"batch_input": []}, "missing batch input to process"),
    ("verify/k", {"input": MSG, "hmac": "v1:abc"}, "invalid HMAC to verify: no prefix"),
    ("verify/k", {"input": MSG, "hmac": "vault:v1"}, "invalid HMAC: wrong number of fields"),
    ("verify/k", {"input": MSG, "hmac": "vault:v0:AA=="},
     "cannot verify HMAC: version is too old (disallowed by policy)"),
    ("verify/missing", {"input": MSG, "hmac": "vault:v1:AA=="}, "encryption key not found"),
])
def test_hmac_errors(server: ServerProcess, mount: str, client: hvac.Client, path: str,
                     body, msg: str) -> None:
    client.secrets.transit.create_key("k", mount_point=mount)
    assert error(api(server, "POST", mount, path, json=body)) == msg


def test_hmac_bad_requests(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    client.secrets.transit.create_key("k", mount_point=mount)
    r = api(server, "POST", mount, "hmac/k", data="[1,", headers={
        "Content-Type": "application/json"})
    assert r.status_code == 400
    assert error(api(server, "POST", mount, "hmac/k", json={
        "input": MSG, "key_version": "one"})) == (
        'Field validation failed: error converting input one for field "key_version": '
        "cannot parse '' as int: strconv.ParseInt: parsing \"one\": invalid syntax")
    r = api(server, "POST", mount, "hmac/k", json={"batch_input": [{"input": True}]})
    assert error(r, 500).startswith("1 error occurred:\n\t* failed to parse batch input: ")
    # A JSON number is a json.Number (a string kind): mapstructure copies its text, so the
    # item fails base64 on its own and the batch is a 200 (compat-diff vs OpenBao 2.7.2).
    r = api(server, "POST", mount, "hmac/k", json={"batch_input": [{"input": 7}]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["batch_results"] == [
        {"error": "unable to decode input as base64: illegal base64 data at input byte 0",
         "reference": ""}]
    r = api(server, "POST", mount, "hmac/k", json={"batch_input": "x"})
    assert error(r, 500) == ("1 error occurred:\n\t* failed to parse batch input: '': source "
                             "data must be an array or slice, got string\n\n")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="encryption key not found"):
        client.secrets.transit.generate_hmac("nope", hash_input=MSG, mount_point=mount)
    # hmac never creates keys
    assert api(server, "GET", mount, "keys", params={"list": "true"}).json()["data"]["keys"] == ["k"]
