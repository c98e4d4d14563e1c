"""random and hash against a real server (hvac and raw HTTP), spec §4.12-4.13."""

from __future__ import annotations

import base64
import hashlib

import hvac
import hvac.exceptions
import pytest

from tests.helpers import ServerProcess
from tests.integration.ops_helpers import api, b64, error, ok


def test_random_hvac_and_raw(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    resp = client.secrets.transit.generate_random_bytes(n_bytes=16, mount_point=mount)
    assert len(base64.b64decode(resp["data"]["random_bytes"])) == 16
    resp = client.secrets.transit.generate_random_bytes(
        n_bytes=8, output_format="hex", mount_point=mount)
    assert len(bytes.fromhex(resp["data"]["random_bytes"])) == 8

    r = api(server, "POST", mount, "random")
    body = r.json()
    assert list(body) == ["request_id", "lease_id", "renewable", "lease_duration", "data",
                          "wrap_info", "warnings", "auth", "mount_type"]
    assert len(base64.b64decode(ok(r)["random_bytes"])) == 32
    assert len(base64.b64decode(ok(api(server, "PUT", mount, "random/24"))["random_bytes"])) == 24
    data = ok(api(server, "POST", mount, "random/all/5", json={"format": "hex"}))
    assert len(data["random_bytes"]) == 10
    r = api(server, "POST", mount, "random/seal", json={"bytes": "3"})
    assert len(base64.b64decode(ok(r)["random_bytes"])) == 3
    assert r.json()["warnings"] == [
        "no seal/entropy augmentation available, using platform entropy source"]


@pytest.mark.parametrize(("path", "body", "msg"), [
    ("random", {"bytes": 0}, '"bytes" cannot be less than 1'),
    ("random", {"bytes": 200000}, '"bytes" should be less than 131072'),
    ("random", {"format": "b85"}, 'unsupported encoding format "b85"; must be "hex" or "base64"'),
    ("random/xyz", None,
     'error parsing url-set byte count: strconv.Atoi: parsing "xyz": invalid syntax'),
    ("random/moon/4", None,
     'unsupported entropy source "moon"; must be "platform" or "seal", or "all"'),
])
def test_random_errors(server: ServerProcess, mount: str, path: str, body, msg: str) -> None:
    assert error(api(server, "POST", mount, path, json=body)) == msg


def test_random_bad_requests(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    r = api(server, "POST", mount, "random", data="{not json", headers={
        "Content-Type": "application/json"})
    assert r.status_code == 400 and "errors" in r.json()
    assert error(api(server, "POST", mount, "random", json={"bytes": "lots"})).startswith(
        "Field validation failed")
    r = api(server, "GET", mount, "random")
    assert r.status_code == 405
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.secrets.transit.generate_random_bytes(n_bytes=-5, mount_point=mount)


def test_hash_hvac_and_raw(server: ServerProcess, mount: str, client: hvac.Client) -> None:
    data = b"hello world"
    resp = client.secrets.transit.hash_data(hash_input=b64(data), mount_point=mount)
    assert resp["data"]["sum"] == hashlib.sha256(data).hexdigest()
    resp = client.secrets.transit.hash_data(hash_input=b64(data), algorithm="sha2-512",
                                            output_format="base64", mount_point=mount)
    assert resp["data"]["sum"] == b64(hashlib.sha512(data).digest())
    got = ok(api(server, "POST", mount, "hash/sha3-256", json={"input": b64(data)}))
    assert got == {"sum": hashlib.sha3_256(data).hexdigest()}
    r = api(server, "POST", mount, "hash", json={"input": "", "extra": 1})
    assert ok(r) == {"sum": hashlib.sha256().hexdigest()}
    assert r.json()["warnings"] == ["Endpoint ignored these unrecognized parameters: [extra]"]


@pytest.mark.parametrize(("path", "body", "msg"), [
    ("hash", {}, "input missing"),
    ("hash", {"input": "a"}, "unable to decode input as base64: illegal base64 data at input byte 0"),
    ("hash", {"input": "", "format": "raw"},
     'unsupported encoding format raw; must be "hex" or "base64"'),
    ("hash/md5", {"input": ""}, "unsupported algorithm md5"),
    ("hash", {"input": ["x"]}, None),
])
def test_hash_errors(server: ServerProcess, mount: str, path: str, body, msg) -> None:
    got = error(api(server, "POST", mount, path, json=body))
    if msg is None:
        assert got.startswith("Field validation failed")
    else:
        assert got == msg


def test_random_url_segments_like_vault(server: ServerProcess, mount: str) -> None:
    """Vault's pattern is random + OptionalGenericNameRegex(source) + OptionalParamRegex(urlbytes)
    (compat-diff vs OpenBao 2.7.2)."""
    r = api(server, "POST", mount, "random/a/b/c", json={})
    assert error(r) == 'error parsing url-set byte count: strconv.Atoi: parsing "b/c": invalid syntax'
    # "-1" is no name, so it is urlbytes with an empty source: ignored, the default 32 bytes.
    assert len(base64.b64decode(ok(api(server, "POST", mount, "random/-1"))["random_bytes"])) == 32
    # The (empty) path capture `source` overrides a body `source`, with Vault's warning.
    r = api(server, "POST", mount, "random", json={"source": "bogus"})
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == ["Endpoint replaced the value of these parameters with the "
                                    "values captured from the endpoint's path: [source]"]
