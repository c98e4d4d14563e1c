"""The `vault:v<N>:` format (transit.crypto.ciphertext)."""

import pytest

from transit.crypto.ciphertext import header, max_version, max_version_of, open_many, split
from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.errors import CryptoError, TransitError


@pytest.mark.parametrize("value,msg", [
    ("vault:1:abc", "invalid ciphertext: no prefix"),
    ("vault:v1", "invalid ciphertext: wrong number of fields"),
    ("vault:vx:abc", "invalid ciphertext: version number could not be decoded"),
])
def test_split_errors(value: str, msg: str) -> None:
    with pytest.raises(CryptoError, match=msg):
        split(value, "ciphertext")


def test_split_ok_and_hmac_wording() -> None:
    assert split("vault:v12:a:b", "ciphertext") == (12, "a:b")
    assert split("vault:v+3:x", "HMAC") == (3, "x")
    with pytest.raises(CryptoError, match="^invalid HMAC to verify: no prefix$"):
        split("x", "HMAC", no_prefix="invalid HMAC to verify: no prefix")


def test_header() -> None:
    assert header(1) == "vault:v1:" and header(63) == "vault:v63:"
    assert header(64) == "vault:v64:" and header(1000) == "vault:v1000:"


def test_max_version() -> None:
    assert max_version(["vault:v3:abc", "vault:v12:x", None, "junk", "vault:vx:y"]) == 12
    # non-ASCII digits (str.isdigit() says yes, int() refuses "²"): not a version
    assert max_version(["vault:v\u00b2:abc", "vault:v\u0661:x", "vault:v2:y"]) == 2


@pytest.mark.parametrize("values", [
    ["vault:v3:abc"], ["vault:v3:a", "vault:v3:b", "vault:v3:c"],
    ["vault:v3:a", "vault:v12:b", "vault:v3:c"], ["vault:v12:a", "vault:v1:b"],
    ["vault:v1:a", "vault:v1"], ["junk", "vault:v4:a"], ["vault:vx:a", "vault:vx:b"],
    # a value with a newline must not let a later one's prefix be taken as its own
    ["vault:v1:a\nvault:v1:b", "vault:v9:c"], ["vault:v1:a", "x\nvault:v1:", "vault:v7:"],
    ["vault:v\u00b2:a", "vault:v\u00b2:b"], ["vault:v2:", "vault:v2:"],
])
def test_max_version_of_a_batch_is_max_version(values: list[str]) -> None:
    assert max_version_of(values) == max_version(values)
    assert max_version([]) == 0


def test_open_many_short_path_and_slow_path() -> None:
    p = Policy.create("k", KeyType.AES256_GCM96)
    good, _ = p.encrypt(b"hello")
    values = [good, "vault:v2:" + good[9:], good[:-4], "junk"]

    def slow(ct: str) -> bytes | TransitError:
        try:
            return p.decrypt(ct)
        except TransitError as exc:
            return exc

    aead = p.keys[1]._cache.get("aead") or p._base_aead(p.keys[1])
    out = open_many(values, {1: aead}, slow)
    assert out[0] == b"hello"
    assert [str(e) for e in out[1:]] == [
        "invalid ciphertext: version is too new",
        "cipher: message authentication failed",
        "invalid ciphertext: no prefix",
    ]
