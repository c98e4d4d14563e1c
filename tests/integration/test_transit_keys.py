"""keys/*, config/keys and cache-config against a real server (hvac and raw HTTP)."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest

from tests.helpers import ServerProcess

JSON = "application/json"


def api(server: ServerProcess, method: str, mount: str, path: str, **kw):
    return server.request(method, f"{mount}/{path}", **kw)


def errors_of(r) -> list[str]:
    assert r.headers["Content-Type"] == JSON
    body = r.json()
    assert set(body) == {"errors"}, body
    return body["errors"]


def wrapped(message: str) -> list[str]:
    return [f"1 error occurred:\n\t* {message}\n\n"]


# --- create / read --------------------------------------------------------------------------

def test_create_read_envelope(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    resp = client.secrets.transit.create_key("k", mount_point=mount)
    assert resp["data"]["name"] == "k" and resp["data"]["latest_version"] == 1

    r = api(server, "GET", mount, "keys/k")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == JSON
    assert r.headers.get("Cache-Control") == "no-store"
    body = r.json()
    assert list(body) == ["request_id", "lease_id", "renewable", "lease_duration", "data",
                          "wrap_info", "warnings", "auth", "mount_type"]
    assert body["mount_type"] == "transit" and body["warnings"] is None
    data = body["data"]
    assert list(data) == sorted(data)
    assert data["type"] == "aes256-gcm96"
    assert data["supports_encryption"] and data["supports_decryption"]
    assert not data["supports_signing"] and data["supports_derivation"]
    assert isinstance(data["keys"]["1"], int)
    assert data["auto_rotate_period"] == 0
    assert client.secrets.transit.read_key("k", mount_point=mount)["data"] == data


def test_create_existing_warns(server: ServerProcess, mount: str) -> None:
    assert api(server, "POST", mount, "keys/k").status_code == 200
    r = api(server, "PUT", mount, "keys/k", json={"type": "ed25519"})
    assert r.status_code == 200
    assert r.json()["warnings"] == ["key k already existed"]
    assert r.json()["data"]["type"] == "aes256-gcm96"


def test_create_key_types(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    for t in ("chacha20-poly1305", "ed25519", "ecdsa-p256", "rsa-2048"):
        data = client.secrets.transit.create_key(f"k-{t}", key_type=t, mount_point=mount)["data"]
        assert data["type"] == t
    # hvac's client-side type list predates aes128-gcm96: raw HTTP.
    r = api(server, "POST", mount, "keys/k-aes128", json={"type": "aes128-gcm96"})
    assert r.status_code == 200 and r.json()["data"]["type"] == "aes128-gcm96"
    ed = client.secrets.transit.read_key("k-ed25519", mount_point=mount)["data"]
    assert set(ed["keys"]["1"]) >= {"name", "public_key", "creation_time", "certificate_chain"}
    ec = client.secrets.transit.read_key("k-ecdsa-p256", mount_point=mount)["data"]
    assert ec["keys"]["1"]["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    r = api(server, "POST", mount, "keys/h", json={"type": "hmac", "key_size": "64"})
    assert r.status_code == 200
    assert r.json()["data"]["key_size"] == 64 and "keys" not in r.json()["data"]


def test_create_cli_strings_and_duration(server: ServerProcess, mount: str) -> None:
    r = api(server, "PUT", mount, "keys/d",
            json={"derived": "true", "convergent_encryption": "1", "auto_rotate_period": "90m"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["derived"] is True and data["convergent_encryption"] is True
    assert data["convergent_encryption_version"] == -1
    assert data["kdf"] == "hkdf_sha256"
    assert data["auto_rotate_period"] == 5400


@pytest.mark.parametrize(
    ("body", "status", "errors"),
    [
        ({"auto_rotate_period": "30m"}, 400,
         ["auto rotate period must be 0 to disable or at least an hour"]),
        ({"convergent_encryption": True}, 400,
         ["convergent encryption requires derivation to be enabled"]),
        ({"type": "aes-999"}, 400, ["unknown key type aes-999"]),
        ({"key_size": 32}, 400, ["key_size is not valid for algorithm aes256-gcm96"]),
        ({"type": "hmac", "key_size": 8}, 400, ["invalid key_size 8"]),
        ({"type": "hmac"}, 500,
         wrapped("invalid key size for HMAC key, must be between 32 and 512 bytes")),
        ({"type": "rsa-2048", "derived": True}, 500,
         wrapped("key derivation and convergent encryption not supported for keys of type rsa-2048")),
        ({"type": "ed25519", "derived": True, "convergent_encryption": True}, 500,
         wrapped("convergent encryption not supported for keys of type ed25519")),
    ],
)
def test_create_errors_store_nothing(
    server: ServerProcess, mount: str, body: dict, status: int, errors: list[str]
) -> None:
    r = api(server, "POST", mount, "keys/bad", json=body)
    assert r.status_code == status
    assert errors_of(r) == errors
    r = api(server, "GET", mount, "keys/bad")
    assert r.status_code == 404 and errors_of(r) == []
    assert api(server, "GET", mount, "keys", params={"list": "true"}).status_code == 404


@pytest.mark.parametrize(
    "body", [{"derived": "perhaps"}, {"key_size": "large"}, {"exportable": [1]},
             {"auto_rotate_period": "soon"}],
)
def test_create_wrong_types_are_400(server: ServerProcess, mount: str, body: dict) -> None:
    r = api(server, "POST", mount, "keys/bad", json=body)
    assert r.status_code == 400
    assert errors_of(r)[0].startswith("Field validation failed: error converting input")
    assert api(server, "GET", mount, "keys/bad").status_code == 404


@pytest.mark.parametrize("raw", [b"{bad json", b"[1,2]", b'{"type": "aes256-gcm96"'])
def test_create_malformed_json_is_400_and_stores_nothing(
    server: ServerProcess, mount: str, raw: bytes
) -> None:
    r = api(server, "POST", mount, "keys/bad", data=raw,
            headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert len(errors_of(r)) == 1
    assert api(server, "GET", mount, "keys/bad").status_code == 404


def test_create_unknown_params_warning(server: ServerProcess, mount: str) -> None:
    r = api(server, "POST", mount, "keys/k", json={"zeta": 1, "alpha": "x"})
    assert r.status_code == 200
    assert r.json()["warnings"] == ["Endpoint ignored these unrecognized parameters: [alpha zeta]"]


def test_read_missing_and_context(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    r = api(server, "GET", mount, "keys/nope")
    assert r.status_code == 404 and errors_of(r) == []
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.transit.read_key("nope", mount_point=mount)
    api(server, "POST", mount, "keys/ed", json={"type": "ed25519", "derived": True})
    assert api(server, "GET", mount, "keys/ed").json()["data"]["keys"]["1"]["public_key"] == ""
    r = api(server, "GET", mount, "keys/ed", params={"context": "Y3R4"})
    assert r.status_code == 200 and r.json()["data"]["keys"]["1"]["public_key"]
    r = api(server, "GET", mount, "keys/ed", params={"context": "%%%"})
    assert r.status_code == 400 and errors_of(r) == ["failed to base64-decode context"]


# --- list -----------------------------------------------------------------------------------

def test_list_get_query(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    r = api(server, "GET", mount, "keys", params={"list": "true"})
    assert r.status_code == 404 and errors_of(r) == []
    for n in ("zed", "alpha", "mid.dle"):
        client.secrets.transit.create_key(n, mount_point=mount)
    expected = ["alpha", "mid.dle", "zed"]
    r = api(server, "GET", mount, "keys", params={"list": "true"})
    assert r.status_code == 200 and r.json()["data"] == {"keys": expected}
    assert api(server, "GET", mount, "keys/", params={"list": "1"}).json()["data"]["keys"] == expected
    assert api(server, "GET", mount, "keys").status_code == 405


def test_list_verb_as_hvac_sends_it(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    r = api(server, "LIST", mount, "keys")
    assert r.status_code == 404 and errors_of(r) == []
    client.secrets.transit.create_key("b", mount_point=mount)
    client.secrets.transit.create_key("a", mount_point=mount)
    assert client.secrets.transit.list_keys(mount_point=mount)["data"]["keys"] == ["a", "b"]


def test_list_shows_import_folder_after_wrapping_key(server: ServerProcess, mount: str) -> None:
    api(server, "POST", mount, "keys/k")
    r = api(server, "GET", mount, "wrapping_key")
    assert r.status_code == 200, r.text
    r = api(server, "GET", mount, "keys", params={"list": "true"})
    assert r.json()["data"]["keys"] == ["import/", "k"]


# --- delete ---------------------------------------------------------------------------------

def test_delete(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    r = api(server, "DELETE", mount, "keys/nope")
    assert r.status_code == 400
    assert errors_of(r) == ["error deleting policy nope: could not delete key; not found"]
    client.secrets.transit.create_key("k", mount_point=mount)
    r = api(server, "DELETE", mount, "keys/k")
    assert r.status_code == 400
    assert errors_of(r) == ["error deleting policy k: deletion is not allowed for this key"]
    assert api(server, "GET", mount, "keys/k").status_code == 200
    client.secrets.transit.update_key_configuration("k", deletion_allowed=True, mount_point=mount)
    r = api(server, "DELETE", mount, "keys/k")
    assert r.status_code == 204 and r.content == b""
    assert r.headers["Content-Type"] == JSON
    assert api(server, "GET", mount, "keys/k").status_code == 404
    assert api(server, "POST", mount, "decrypt/k", json={"ciphertext": "vault:v1:AAAA"}).json() == {
        "errors": ["encryption key not found"]}


# --- config ---------------------------------------------------------------------------------

def test_config(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    client.secrets.transit.create_key("k", mount_point=mount)
    client.secrets.transit.rotate_key("k", mount_point=mount)
    r = api(server, "POST", mount, "keys/k/config", json={"min_decryption_version": 0})
    assert r.status_code == 200
    assert r.json()["warnings"] == [
        "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
    ]
    resp = client.secrets.transit.update_key_configuration(
        "k", min_decryption_version=2, mount_point=mount)
    assert resp["data"]["min_decryption_version"] == 2
    assert list(resp["data"]["keys"]) == ["2"]
    # hvac refuses min_encryption == min_decryption client-side; Vault accepts it.
    r = api(server, "POST", mount, "keys/k/config", json={"min_encryption_version": "2"})
    assert r.status_code == 200 and r.json()["data"]["min_encryption_version"] == 2
    assert api(server, "GET", mount, "keys/k/config").status_code == 405
    r = api(server, "PUT", mount, "keys/k/config", json={"exportable": "true"})
    assert r.status_code == 200 and r.json()["data"]["exportable"] is True
    r = api(server, "PUT", mount, "keys/k/config", json={"exportable": False})
    assert r.json()["data"]["exportable"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"min_decryption_version": 9}, "cannot set min decryption version of 9, latest key version is 2"),
        ({"min_decryption_version": -1}, "min decryption version cannot be negative"),
        ({"min_decryption_version": 2, "min_encryption_version": 1},
         "cannot set min encryption/decryption values; min encryption version of 1 must be "
         "greater than or equal to min decryption version of 2"),
        ({"auto_rotate_period": "59m", "deletion_allowed": True},
         "auto rotate period must be 0 to disable or at least an hour"),
        ({"deletion_allowed": "nah"}, "Field validation failed"),
    ],
)
def test_config_errors_leave_config_unchanged(
    server: ServerProcess, mount: str, body: dict, message: str
) -> None:
    api(server, "POST", mount, "keys/k")
    api(server, "POST", mount, "keys/k/rotate")
    before = api(server, "GET", mount, "keys/k").json()["data"]
    r = api(server, "POST", mount, "keys/k/config", json=body)
    assert r.status_code == 400
    assert errors_of(r)[0].startswith(message)
    assert api(server, "GET", mount, "keys/k").json()["data"] == before


def test_config_missing_key(server: ServerProcess, mount: str) -> None:
    r = api(server, "POST", mount, "keys/nope/config", json={"deletion_allowed": True})
    assert r.status_code == 400
    assert errors_of(r) == ["no existing key named nope could be found"]
    assert api(server, "GET", mount, "keys/nope").status_code == 404


# --- rotate / trim --------------------------------------------------------------------------

def test_rotate(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    r = api(server, "POST", mount, "keys/nope/rotate")
    assert r.status_code == 400 and errors_of(r) == ["key not found"]
    client.secrets.transit.create_key("k", mount_point=mount)
    resp = client.secrets.transit.rotate_key("k", mount_point=mount)
    assert resp["data"]["latest_version"] == 2
    assert sorted(resp["data"]["keys"]) == ["1", "2"]
    ct = client.secrets.transit.encrypt_data("k", plaintext="aGk=", mount_point=mount)
    assert ct["data"]["ciphertext"].startswith("vault:v2:")


def test_trim(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    r = api(server, "POST", mount, "keys/nope/trim", json={"min_available_version": 1})
    assert r.status_code == 400 and errors_of(r) == ["invalid key name"]
    client.secrets.transit.create_key("k", mount_point=mount)
    old = client.secrets.transit.encrypt_data("k", plaintext="aGk=", mount_point=mount)
    for _ in range(2):
        client.secrets.transit.rotate_key("k", mount_point=mount)
    cases = [
        ({}, "missing min_available_version"),
        ({"min_available_version": 2},
         "minimum available version cannot be set when minimum encryption version is not set"),
    ]
    for body, message in cases:
        r = api(server, "POST", mount, "keys/k/trim", json=body)
        assert r.status_code == 400 and errors_of(r) == [message]
    client.secrets.transit.update_key_configuration(
        "k", min_decryption_version=2, min_encryption_version=3, mount_point=mount)
    r = api(server, "POST", mount, "keys/k/trim", json={"min_available_version": 3})
    assert r.status_code == 400
    assert errors_of(r) == [
        "minimum available version cannot be greater than minimum decryption version"]
    resp = client.secrets.transit.trim_key("k", min_version=2, mount_point=mount)
    assert resp["data"]["min_available_version"] == 2
    r = api(server, "POST", mount, "keys/k/config", json={"min_decryption_version": 1})
    assert r.status_code == 400
    r = api(server, "POST", mount, "decrypt/k", json={"ciphertext": old["data"]["ciphertext"]})
    assert r.status_code == 400
    assert errors_of(r) == ["ciphertext or signature version is disallowed by policy (too old)"]


# --- mount config ---------------------------------------------------------------------------

def test_keys_config(server: ServerProcess, mount: str) -> None:
    r = api(server, "GET", mount, "config/keys")
    assert r.status_code == 200 and r.json()["data"] == {"disable_upsert": False}
    r = api(server, "POST", mount, "config/keys", json={"disable_upsert": True})
    assert r.status_code == 200 and r.json()["data"] == {"disable_upsert": True}
    r = api(server, "POST", mount, "config/keys", json={"disable_upsert": "sometimes"})
    assert r.status_code == 400
    assert api(server, "GET", mount, "config/keys").json()["data"] == {"disable_upsert": True}
    r = api(server, "POST", mount, "encrypt/new", json={"plaintext": "aGk="})
    assert r.status_code == 400 and errors_of(r) == ["encryption key not found"]
    assert api(server, "GET", mount, "keys/new").status_code == 404
    api(server, "POST", mount, "config/keys", json={})
    assert api(server, "GET", mount, "config/keys").json()["data"] == {"disable_upsert": False}
    assert api(server, "POST", mount, "encrypt/new", json={"plaintext": "aGk="}).status_code == 200


def test_keys_config_is_per_mount(server: ServerProcess, mount: str) -> None:
    api(server, "POST", mount, "config/keys", json={"disable_upsert": True})
    other = "t-other-" + mount[2:]
    assert server.request("POST", f"sys/mounts/{other}", json={"type": "transit"}).status_code == 204
    try:
        assert api(server, "GET", other, "config/keys").json()["data"] == {"disable_upsert": False}
        assert api(server, "POST", other, "encrypt/k", json={"plaintext": ""}).status_code == 200
    finally:
        server.request("DELETE", f"sys/mounts/{other}")


def test_cache_config(server: ServerProcess, mount: str) -> None:
    assert api(server, "GET", mount, "cache-config").json()["data"] == {"size": 0}
    for bad in (1, 9, -3):
        r = api(server, "POST", mount, "cache-config", json={"size": bad})
        assert r.status_code == 400
        assert errors_of(r) == ["size must be 0 or a value greater or equal to 10"]
    r = api(server, "POST", mount, "cache-config", json={"size": "10"})
    assert r.status_code == 200 and r.json()["data"] == {"size": 10}
    assert api(server, "GET", mount, "cache-config").json()["data"] == {"size": 10}
    r = api(server, "POST", mount, "cache-config", json={"size": "ten"})
    assert r.status_code == 400
    assert api(server, "GET", mount, "cache-config").json()["data"] == {"size": 10}


def test_http_layer_quirks_seen_in_compat_diff(server: ServerProcess, mount: str) -> None:
    """Wire details checked against OpenBao 2.7.2 (bench/compat_diff.py)."""
    # A bad ?list= is a bare 400.
    r = api(server, "GET", mount, "keys", params={"list": "maybe"})
    assert r.status_code == 400 and errors_of(r) == []
    # The trailing "/" of a list is appended before routing, so it shows in "no handler".
    r = server.request("LIST", "nomount-xyz/keys")
    assert r.status_code == 404
    assert errors_of(r) == ['no handler for route "nomount-xyz/keys/". route entry not found.']
    # Field validation errors: Vault's `error converting input %v for field %q: ...`.
    r = api(server, "POST", mount, "keys/x", json={"type": "hmac", "key_size": "abc"})
    assert errors_of(r) == ['Field validation failed: error converting input abc for field '
                            '"key_size": cannot parse \'\' as int: strconv.ParseInt: parsing '
                            '"abc": invalid syntax']
    r = api(server, "POST", mount, "keys/x", json={"auto_rotate_period": -5})
    assert errors_of(r) == ['Field validation failed: error converting input -5 for field '
                            '"auto_rotate_period": cannot provide negative value \'-5\'']
    r = api(server, "POST", mount, "keys/x", json={"derived": "notabool"})
    assert errors_of(r) == ['Field validation failed: error converting input notabool for field '
                            '"derived": cannot parse \'\' as bool: strconv.ParseBool: parsing '
                            '"notabool": invalid syntax']
    assert api(server, "GET", mount, "keys/x").status_code == 404


@pytest.mark.parametrize("period", ["99999999999999s", "9999999999h", 10**20, "9" * 400 + "h"])
def test_auto_rotate_period_beyond_go_duration_is_400(server, mount, period) -> None:
    """A period Go's time.Duration cannot hold is refused (it used to crash the periodic
    auto-rotation task of the mount); nothing is created."""
    r = server.request("POST", f"{mount}/keys/huge", json={"auto_rotate_period": period})
    assert r.status_code == 400, r.text
    assert "invalid duration" in r.json()["errors"][0]
    assert server.request("GET", f"{mount}/keys/huge").status_code == 404
