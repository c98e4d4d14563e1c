"""encrypt / decrypt / rewrap / datakey and the §5 batch rules against a real server."""

from __future__ import annotations

import base64

import hvac
import hvac.exceptions
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.helpers import ServerProcess

JSON = "application/json"
HELLO = "aGVsbG8gd29ybGQ="
CTX = "bXktY29udGV4dA=="
ENVELOPE_KEYS = ["request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info",
                 "warnings", "auth", "mount_type"]


def api(server: ServerProcess, method: str, mount: str, path: str, **kw):
    return server.request(method, f"{mount}/{path}", **kw)


def err(r) -> list[str]:
    assert r.headers["Content-Type"] == JSON
    body = r.json()
    assert set(body) == {"errors"}, body
    return body["errors"]


def encrypt(server: ServerProcess, mount: str, key: str, **body) -> str:
    r = api(server, "POST", mount, f"encrypt/{key}", json={"plaintext": HELLO, **body})
    assert r.status_code == 200, r.text
    return r.json()["data"]["ciphertext"]


# --- single ---------------------------------------------------------------------------------

def test_hvac_roundtrip_with_upsert(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    t = client.secrets.transit
    resp = t.encrypt_data("app", plaintext=HELLO, mount_point=mount)
    ct = resp["data"]["ciphertext"]
    assert ct.startswith("vault:v1:") and resp["data"]["key_version"] == 1
    assert t.read_key("app", mount_point=mount)["data"]["type"] == "aes256-gcm96"
    assert t.decrypt_data("app", ciphertext=ct, mount_point=mount)["data"] == {"plaintext": HELLO}
    # hvac sends nulls for the parameters it was not given.
    r = api(server, "POST", mount, "encrypt/app", json={"plaintext": "", "context": None,
                                                        "key_version": None, "nonce": None})
    assert r.status_code == 200
    assert api(server, "PUT", mount, "decrypt/app",
               json={"ciphertext": r.json()["data"]["ciphertext"]}).json()["data"] == {"plaintext": ""}


def test_ciphertext_decrypts_offline_with_exported_key(server: ServerProcess, mount: str) -> None:
    assert api(server, "POST", mount, "keys/x", json={"exportable": True}).status_code == 200
    ct = encrypt(server, mount, "x", associated_data="aGVhZA==")
    r = api(server, "GET", mount, "export/encryption-key/x/1")
    assert r.status_code == 200, r.text
    key = base64.b64decode(r.json()["data"]["keys"]["1"])
    payload = base64.b64decode(ct.split(":", 2)[2])
    assert AESGCM(key).decrypt(payload[:12], payload[12:], b"head") == b"hello world"
    nonce = bytes(12)
    mine = "vault:v1:" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, b"yo", None)).decode()
    r = api(server, "POST", mount, "decrypt/x", json={"ciphertext": mine})
    assert r.json()["data"] == {"plaintext": base64.b64encode(b"yo").decode()}


def test_derived_and_convergent(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    r = api(server, "POST", mount, "encrypt/d", json={"plaintext": HELLO, "context": CTX})
    assert r.status_code == 200
    assert client.secrets.transit.read_key("d", mount_point=mount)["data"]["derived"] is True
    r = api(server, "POST", mount, "decrypt/d", json={"ciphertext": r.json()["data"]["ciphertext"]})
    assert r.status_code == 400
    assert err(r)[0].startswith("missing 'context' for key derivation")
    client.secrets.transit.create_key("c", derived=True, convergent_encryption=True,
                                      mount_point=mount)
    a = encrypt(server, mount, "c", context=CTX)
    assert a == encrypt(server, mount, "c", context=CTX)
    assert a != encrypt(server, mount, "c", context="b3RoZXI=")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"plaintext": HELLO, "type": "ecdsa-p384"}, "key type ecdsa-p384 not supported for this operation"),
        ({"plaintext": HELLO, "type": "hmac"}, "unknown key type hmac"),
        ({"plaintext": HELLO, "convergent_encryption": True},
         "convergent encryption requires derivation to be enabled, so context is required"),
        ({}, "missing plaintext to encrypt"),
        # encrypt has an existence check: Vault's validation error there has no
        # "Field validation failed: " prefix (compat-diff vs OpenBao 2.7.2).
        ({"plaintext": HELLO, "key_version": "latest"},
         'error converting input latest for field "key_version": cannot parse \'\' as int: '
         'strconv.ParseInt: parsing "latest": invalid syntax'),
    ],
)
def test_encrypt_upsert_errors_store_nothing(
    server: ServerProcess, mount: str, body: dict, message: str
) -> None:
    r = api(server, "POST", mount, "encrypt/k", json=body)
    assert r.status_code == 400
    assert err(r)[0].startswith(message)
    assert api(server, "GET", mount, "keys/k").status_code == 404


def test_encrypt_batch_input_object_is_a_parse_error(server: ServerProcess, mount: str) -> None:
    # TypeSlice validation lifts the object; the batch decoder then rejects it (500).
    r = api(server, "POST", mount, "encrypt/k", json={"batch_input": {"a": 1}})
    assert r.status_code == 500
    assert err(r) == ["1 error occurred:\n\t* failed to parse batch input: source data must be "
                      "an array or slice, got map[string]interface {}\n\n"]
    assert api(server, "GET", mount, "keys/k").status_code == 404
    r = api(server, "POST", mount, "rewrap/k", json={"batch_input": "x"})
    assert err(r) == ["1 error occurred:\n\t* failed to parse batch input: '': source data "
                      "must be an array or slice, got string\n\n"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"plaintext": "hello world"}, "illegal base64 data at input byte 5"),
        ({"plaintext": HELLO, "context": "a"}, "illegal base64 data at input byte 0"),
        ({"batch_input": [{"plaintext": "!!"}]}, None),
    ],
)
def test_encrypt_upsert_creates_key_even_when_items_fail(
    server: ServerProcess, mount: str, body: dict, message: str | None
) -> None:
    # Vault upserts after the base64 pre-pass, whatever it found (seen on OpenBao 2.7.2).
    r = api(server, "POST", mount, "encrypt/k", json=body)
    assert r.status_code == 400
    if message is not None:
        assert err(r) == [message]
    assert api(server, "GET", mount, "keys/k").status_code == 200


def test_encrypt_upsert_500_stores_nothing(server: ServerProcess, mount: str) -> None:
    r = api(server, "POST", mount, "encrypt/r",
            json={"plaintext": HELLO, "type": "rsa-2048", "context": CTX})
    assert r.status_code == 500
    assert err(r) == ["1 error occurred:\n\t* key derivation and convergent encryption not "
                      "supported for keys of type rsa-2048\n\n"]
    assert api(server, "GET", mount, "keys/r").status_code == 404


@pytest.mark.parametrize("raw", [b"{", b'{"plaintext": "aGk="', b"plaintext=aGk=", b'"x"'])
def test_encrypt_malformed_json_stores_nothing(server: ServerProcess, mount: str, raw: bytes) -> None:
    r = api(server, "POST", mount, "encrypt/k", data=raw,
            headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and len(err(r)) == 1
    assert api(server, "GET", mount, "keys/k").status_code == 404


@pytest.mark.parametrize(
    ("key", "body", "message"),
    [
        ({"type": "ed25519"}, {"plaintext": HELLO},
         "message encryption not supported for key type ed25519"),
        ({"type": "ecdsa-p256"}, {"plaintext": HELLO},
         "message encryption not supported for key type ecdsa-p256"),
        ({}, {"plaintext": HELLO, "key_version": 3},
         "requested version for encryption is higher than the latest key version"),
        ({}, {"plaintext": HELLO, "key_version": -2}, "requested version for encryption is negative"),
        ({}, {"plaintext": HELLO, "nonce": "AAAAAAAAAAAAAAAA"}, "provided nonce not allowed for this key"),
        ({"type": "rsa-2048"}, {"plaintext": HELLO, "associated_data": "YQ=="},
         "'[0].associated_data' provided for non-AEAD cipher suite rsa-2048"),
    ],
)
def test_single_encrypt_errors(
    server: ServerProcess, mount: str, key: dict, body: dict, message: str
) -> None:
    assert api(server, "POST", mount, "keys/k", json=key).status_code == 200
    r = api(server, "POST", mount, "encrypt/k", json=body)
    assert r.status_code == 400 and err(r) == [message]


def test_decrypt_negative_vectors(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    ct = encrypt(server, mount, "k")
    body = ct.split(":", 2)[2]
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 0x80
    cases = [
        ("vault:v9:" + body, "invalid ciphertext: version is too new"),
        ("vault:v1:" + base64.b64encode(bytes(raw)).decode(), "cipher: message authentication failed"),
        ("vault:v1:" + base64.b64encode(bytes(raw[:5])).decode(), "invalid ciphertext length"),
        ("vault:v1:" + body[:-4], "cipher: message authentication failed"),
        ("vault:v1:!!" + body, "invalid ciphertext: could not decode base64"),
        ("v1:" + body, "invalid ciphertext: no prefix"),
        ("vault:vone:" + body, "invalid ciphertext: version number could not be decoded"),
        ("", "missing ciphertext to decrypt"),
    ]
    for bad, message in cases:
        r = api(server, "POST", mount, "decrypt/k", json={"ciphertext": bad})
        assert r.status_code == 400, bad
        assert err(r) == [message], bad
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.secrets.transit.decrypt_data("k", ciphertext="vault:v9:" + body, mount_point=mount)
    r = api(server, "POST", mount, "decrypt/missing", json={"ciphertext": ct})
    assert r.status_code == 400 and err(r) == ["encryption key not found"]
    assert api(server, "GET", mount, "keys/missing").status_code == 404
    # A number is weakly typed to the string "7", which is not base64: decoded even though
    # the key is not derived, as in Vault.
    r = api(server, "POST", mount, "decrypt/k", json={"ciphertext": ct, "context": 7})
    assert r.status_code == 400 and err(r) == ["illegal base64 data at input byte 0"]
    r = api(server, "POST", mount, "decrypt/k", json={"ciphertext": ct, "context": CTX})
    assert r.status_code == 200 and r.json()["data"] == {"plaintext": HELLO}


def test_too_old_after_rotate(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    v1 = encrypt(server, mount, "k")
    client.secrets.transit.rotate_key("k", mount_point=mount)
    client.secrets.transit.update_key_configuration("k", min_decryption_version=2, mount_point=mount)
    assert "1" not in client.secrets.transit.read_key("k", mount_point=mount)["data"]["keys"]
    r = api(server, "POST", mount, "decrypt/k", json={"ciphertext": v1})
    assert r.status_code == 400
    assert err(r) == ["ciphertext or signature version is disallowed by policy (too old)"]
    r = api(server, "POST", mount, "rewrap/k", json={"ciphertext": v1})
    assert r.status_code == 400
    assert err(r) == ["ciphertext or signature version is disallowed by policy (too old)"]


# --- batch (§5) -----------------------------------------------------------------------------

def test_batch_success(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    items = [{"plaintext": HELLO, "reference": "a"}, {"plaintext": "", "reference": "b"},
             {"plaintext": "YWJj"}]
    resp = client.secrets.transit.encrypt_data("k", batch_input=items, mount_point=mount)
    results = resp["data"]["batch_results"]
    assert [r["reference"] for r in results] == ["a", "b", ""]
    assert all(set(r) == {"ciphertext", "key_version", "reference"} for r in results)
    dec = client.secrets.transit.decrypt_data(
        "k", batch_input=[{"ciphertext": r["ciphertext"], "reference": r["reference"]}
                          for r in results], mount_point=mount)
    assert dec["data"]["batch_results"] == [
        {"plaintext": HELLO, "reference": "a"}, {"plaintext": "", "reference": "b"},
        {"plaintext": "YWJj", "reference": ""},
    ]


def test_batch_partial_failure_envelope(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    items = [{"plaintext": HELLO, "reference": "ok"}, {"plaintext": "%%", "reference": "bad"}]
    r = api(server, "POST", mount, "encrypt/k", json={"batch_input": items})
    assert r.status_code == 400
    assert r.headers["Content-Type"] == JSON
    body = r.json()
    assert list(body)[:8] == ENVELOPE_KEYS[:8] and "errors" not in body
    ok, bad = body["data"]["batch_results"]
    assert ok["ciphertext"].startswith("vault:v1:") and ok["reference"] == "ok"
    assert bad == {"error": "illegal base64 data at input byte 0", "reference": "bad"}
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.secrets.transit.encrypt_data("k", batch_input=items, mount_point=mount)

    r = api(server, "POST", mount, "encrypt/k",
            json={"batch_input": items, "partial_failure_response_code": 207})
    assert r.status_code == 207
    assert r.json()["data"]["batch_results"][1]["reference"] == "bad"
    for code in (0, 600):
        r = api(server, "POST", mount, "encrypt/k",
                json={"batch_input": items, "partial_failure_response_code": code})
        assert r.status_code == 400
        assert r.json()["warnings"] == [
            "invalid HTTP response code override from partial_failure_response_code, reverting to 400"
        ]
    r = api(server, "POST", mount, "encrypt/k",
            json={"batch_input": [items[1]], "partial_failure_response_code": 207})
    assert r.status_code == 400 and r.json()["warnings"] is None


def test_batch_decrypt_failures(server: ServerProcess, mount: str) -> None:
    ct = encrypt(server, mount, "k")
    r = api(server, "POST", mount, "decrypt/k", json={
        "batch_input": [{"ciphertext": ct, "reference": "1"}, {"ciphertext": "vault:v9:AAAA",
                                                              "reference": "2"}],
        "partial_failure_response_code": "202",
    })
    assert r.status_code == 202
    assert r.json()["data"]["batch_results"] == [
        {"plaintext": HELLO, "reference": "1"},
        {"error": "invalid ciphertext: version is too new", "plaintext": "", "reference": "2"},
    ]


def test_batch_internal_errors_only_is_500(server: ServerProcess, mount: str) -> None:
    assert api(server, "POST", mount, "keys/r", json={"type": "rsa-2048"}).status_code == 200
    garbage = "vault:v1:" + base64.b64encode(b"\x07" * 256).decode()
    r = api(server, "POST", mount, "decrypt/r", json={"batch_input": [{"ciphertext": garbage}]})
    assert r.status_code == 500
    item = r.json()["data"]["batch_results"][0]
    assert item["plaintext"] == "" and item["error"]
    r = api(server, "POST", mount, "decrypt/r", json={"ciphertext": garbage})
    assert r.status_code == 500 and err(r)[0].startswith("1 error occurred:\n\t* ")


def test_batch_context_rule(server: ServerProcess, mount: str) -> None:
    r = api(server, "POST", mount, "encrypt/k", json={"batch_input": [
        {"plaintext": HELLO}, {"plaintext": HELLO, "context": CTX}]})
    assert r.status_code == 400
    assert err(r) == ["context should be set either in all the request blocks or in none"]
    assert api(server, "GET", mount, "keys/k").status_code == 404
    r = api(server, "POST", mount, "encrypt/k", json={"batch_input": []})
    assert r.status_code == 400 and err(r) == ["missing batch input to process"]


@pytest.mark.parametrize(
    ("path", "batch", "detail"),
    [
        ("encrypt/k", [{"context": CTX}], "1 error(s) decoding:\n\n* '[0].plaintext' missing "
                                          "plaintext to encrypt"),
        ("encrypt/k", ["aGk="], "[0] expected a map, got 'string'"),
        ("encrypt/k", [{"plaintext": True}], "1 error(s) decoding:\n\n* '[0].plaintext' expected "
                                             "type 'string', got unconvertible type 'bool'"),
        ("decrypt/k", [{"reference": "r"}], "1 error(s) decoding:\n\n* '[0].ciphertext' missing "
                                            "ciphertext to decrypt"),
        ("decrypt/k", [{"ciphertext": ["x"]}], "1 error(s) decoding:\n\n* '[0].ciphertext' "
                                               "expected type 'string', got unconvertible type "
                                               "'[]interface {}'"),
    ],
)
def test_batch_strict_decoding_is_500(
    server: ServerProcess, mount: str, path: str, batch: list, detail: str
) -> None:
    r = api(server, "POST", mount, path, json={"batch_input": batch})
    assert r.status_code == 500
    assert err(r) == [f"1 error occurred:\n\t* failed to parse batch input: {detail}\n\n"]
    assert api(server, "GET", mount, "keys/k").status_code == 404


# --- rewrap ---------------------------------------------------------------------------------

def test_rewrap(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    v1 = encrypt(server, mount, "k")
    again = client.secrets.transit.rewrap_data("k", ciphertext=v1, mount_point=mount)["data"]
    assert again["key_version"] == 1 and again["ciphertext"] != v1
    client.secrets.transit.rotate_key("k", mount_point=mount)
    v2 = client.secrets.transit.rewrap_data("k", ciphertext=v1, mount_point=mount)["data"]
    assert v2["key_version"] == 2 and v2["ciphertext"].startswith("vault:v2:")
    r = api(server, "POST", mount, "decrypt/k", json={"ciphertext": v2["ciphertext"]})
    assert r.json()["data"] == {"plaintext": HELLO}
    r = api(server, "POST", mount, "rewrap/k", json={"ciphertext": v1, "key_version": 1})
    assert r.json()["data"]["key_version"] == 1


def test_rewrap_batch_with_bad_item_is_200(server: ServerProcess, mount: str) -> None:
    v1 = encrypt(server, mount, "k")
    r = api(server, "POST", mount, "rewrap/k", json={"batch_input": [
        {"ciphertext": v1, "reference": "good"}, {"ciphertext": "vault:v1:AAAA", "reference": "bad"},
        {"ciphertext": "", "reference": "empty"},
    ]})
    assert r.status_code == 200
    good, bad, empty = r.json()["data"]["batch_results"]
    assert good["key_version"] == 1 and good["reference"] == "good"
    assert bad == {"error": "invalid ciphertext length", "reference": "bad"}
    assert empty == {"error": "missing ciphertext to decrypt", "reference": "empty"}


def test_rewrap_errors(server: ServerProcess, mount: str) -> None:
    r = api(server, "POST", mount, "rewrap/nope", json={"ciphertext": "vault:v1:AAAA"})
    assert r.status_code == 400 and err(r) == ["encryption key not found"]
    assert api(server, "GET", mount, "keys/nope").status_code == 404
    encrypt(server, mount, "k")
    r = api(server, "POST", mount, "rewrap/k", json={})
    assert r.status_code == 400 and err(r) == ["missing ciphertext to decrypt"]
    assert api(server, "GET", mount, "rewrap/k").status_code == 405


# --- datakey --------------------------------------------------------------------------------

def test_datakey(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    client.secrets.transit.create_key("k", mount_point=mount)
    resp = client.secrets.transit.generate_data_key("k", key_type="plaintext", mount_point=mount)
    data = resp["data"]
    assert set(data) == {"ciphertext", "key_version", "plaintext"}
    assert len(base64.b64decode(data["plaintext"])) == 32
    dec = client.secrets.transit.decrypt_data("k", ciphertext=data["ciphertext"], mount_point=mount)
    assert dec["data"]["plaintext"] == data["plaintext"]
    wrapped = client.secrets.transit.generate_data_key("k", key_type="wrapped", bits=512,
                                                       mount_point=mount)["data"]
    assert set(wrapped) == {"ciphertext", "key_version"}
    dec = client.secrets.transit.decrypt_data("k", ciphertext=wrapped["ciphertext"],
                                              mount_point=mount)
    assert len(base64.b64decode(dec["data"]["plaintext"])) == 64


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("datakey/raw/k", {}, "Invalid path, must be 'plaintext' or 'wrapped'"),
        ("datakey/wrapped/missing", {}, "encryption key not found"),
        ("datakey/wrapped/k", {"bits": 100}, "invalid bit length"),
        ("datakey/wrapped/k", {"context": "#"}, "failed to base64-decode context"),
        ("datakey/wrapped/k", {"bits": "many"}, "Field validation failed"),
    ],
)
def test_datakey_errors(server: ServerProcess, mount: str, path: str, body: dict, message: str) -> None:
    api(server, "POST", mount, "keys/k")
    r = api(server, "POST", mount, path, json=body)
    assert r.status_code == 400 and err(r)[0].startswith(message)
    assert api(server, "GET", mount, "keys/missing").status_code == 404


def test_encrypt_details_seen_in_compat_diff(server: ServerProcess, mount: str) -> None:
    """Vault behaviours checked against OpenBao 2.7.2 (bench/compat_diff.py)."""
    assert api(server, "POST", mount, "keys/k", json={}).status_code == 200
    # No top-level `reference` on encrypt/decrypt: an ignored parameter.
    r = api(server, "POST", mount, "encrypt/k", json={"plaintext": HELLO, "reference": "r"})
    assert r.json()["warnings"] == ["Endpoint ignored these unrecognized parameters: [reference]"]
    # Weakly typed ints: a JSON bool is 0/1.
    r = api(server, "POST", mount, "encrypt/k", json={"plaintext": HELLO, "key_version": True})
    assert r.status_code == 200, r.text
    # Bad associated_data base64 fails in the policy's factory: a 500, also in a batch.
    msg = ("unable to get associated_data/additional_data from factory[0]: "
           "illegal base64 data at input byte 0")
    r = api(server, "POST", mount, "encrypt/k", json={"plaintext": HELLO, "associated_data": "!"})
    assert r.status_code == 500 and err(r) == [f"1 error occurred:\n\t* {msg}\n\n"]
    r = api(server, "POST", mount, "encrypt/k",
            json={"batch_input": [{"plaintext": HELLO, "associated_data": "!"}]})
    assert r.status_code == 500 and r.json()["data"]["batch_results"][0]["error"] == msg
    # padding_scheme / associated_data rejections do not set userErrorInBatch: still a 200.
    assert api(server, "POST", mount, "keys/rsa", json={"type": "rsa-2048"}).status_code == 200
    r = api(server, "POST", mount, "encrypt/rsa",
            json={"batch_input": [{"plaintext": HELLO, "associated_data": "aGVhZA=="}]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["batch_results"] == [
        {"error": "'[0].associated_data' provided for non-AEAD cipher suite rsa-2048",
         "reference": ""}]
    r = api(server, "POST", mount, "decrypt/k",
            json={"batch_input": [{"ciphertext": encrypt(server, mount, "k"),
                                   "padding_scheme": "oaep"}]})
    assert r.status_code == 200, r.text
    # x/crypto's chacha20poly1305 words the AEAD failure its own way.
    assert api(server, "POST", mount, "keys/c",
               json={"type": "chacha20-poly1305"}).status_code == 200
    r = api(server, "POST", mount, "decrypt/c",
            json={"ciphertext": "vault:v1:" + base64.b64encode(bytes(40)).decode()})
    assert err(r) == ["chacha20poly1305: message authentication failed"]
