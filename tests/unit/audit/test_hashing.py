"""The audit HMAC of entries (transit/audit/hashing.py): format, nesting, exempt keys, raw logs."""

from __future__ import annotations

import re

from tests.unit.audit.helpers import ACCESSOR, TOKEN, expected
from transit.audit.hashing import Hasher, identified_hmac


def test_identified_hmac_format() -> None:
    assert identified_hmac("salt", "x") == expected("salt", "x")
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", identified_hmac("s", "v"))


def test_hash_nested_lists_numbers_untouched() -> None:
    h = Hasher("s1")
    data = {
        "plaintext": "p", "n": 7, "f": 1.5, "b": True, "none": None,
        "nested": {"a": "x", "deep": {"b": ["y", 3, {"c": "z"}]}},
        "batch_input": [{"plaintext": "q", "context": "c"}],
    }
    out = h.data(data)
    assert out["plaintext"] == expected("s1", "p")
    assert (out["n"], out["f"], out["b"], out["none"]) == (7, 1.5, True, None)
    assert out["nested"]["a"] == expected("s1", "x")
    assert out["nested"]["deep"]["b"][0] == expected("s1", "y")
    assert out["nested"]["deep"]["b"][1] == 3
    assert out["nested"]["deep"]["b"][2]["c"] == expected("s1", "z")
    assert out["batch_input"][0] == {"plaintext": expected("s1", "q"),
                                     "context": expected("s1", "c")}
    assert data["plaintext"] == "p" and data["nested"]["a"] == "x"  # input untouched
    assert set(out) == set(data)  # keys never hashed


def test_hash_exempt_keys_apply_to_nearest_key() -> None:
    h = Hasher("s")
    out = h.data({"name": "k", "other": "v", "items": {"name": "inner", "x": ["a"]},
                  "tags": ["t1", "t2"]}, frozenset({"name", "tags"}))
    assert out["name"] == "k" and out["items"]["name"] == "inner"
    assert out["tags"] == ["t1", "t2"]
    assert out["other"] == expected("s", "v") and out["items"]["x"] == [expected("s", "a")]


def test_log_raw_and_hmac_accessor() -> None:
    raw = Hasher("s", log_raw=True)
    assert raw.data({"a": "b"}) == {"a": "b"}
    assert raw.token(TOKEN) == TOKEN
    assert raw.hash("x") == expected("s", "x")  # audit-hash hashes whatever log_raw says
    clear_acc = Hasher("s", hmac_accessor=False)
    assert clear_acc.accessor(ACCESSOR) == ACCESSOR
    assert clear_acc.token(TOKEN) == expected("s", TOKEN)
    assert Hasher("s").accessor(ACCESSOR) == expected("s", ACCESSOR)
    assert Hasher("s").token("") == ""
