"""The raw-bytes pre-scan of Vault's JSON limits (transit/api/jsonlimits.py)."""

from __future__ import annotations

import orjson
import pytest

from transit.api.jsonlimits import (
    ARRAY_ERROR,
    DEPTH_ERROR,
    OBJECT_ERROR,
    STRING_ERROR,
    JSONLimits,
)

SMALL = JSONLimits(max_depth=3, max_string_value_length=8, max_object_entry_count=3,
                   max_array_element_count=3)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a":{"b":{"c":1}}}', None),
        (b'{"a":{"b":{"c":{}}}}', DEPTH_ERROR),
        (b"[[[[]]]]", DEPTH_ERROR),
        (b'{"a":"12345678"}', None),
        (b'{"a":"123456789"}', STRING_ERROR),
        (b'{"123456789":1}', STRING_ERROR),
        (b'{"a":"1234567\\""}', STRING_ERROR),  # raw length, as Vault counts it
        (b'{"a":1,"b":2,"c":3}', None),
        (b'{"a":1,"b":2,"c":3,"d":4}', OBJECT_ERROR),
        (b'{"a":[1,2,3]}', None),
        (b'{"a":[1,2,3,4]}', ARRAY_ERROR),
        (b'["a","b","c","d"]', ARRAY_ERROR),
        (b'[{},{},{},{}]', ARRAY_ERROR),
        (b'["a,b,c,d"]', None),  # commas inside a string are not elements
        (b'["[[[[[[", "]]]"]', None),  # nor brackets
        (b'[[1,2,3],[1,2,3],[1,2,3]]', None),  # counts are per container
        (b'{"a":', None),  # malformed: the decoder reports it
        (b'"' + b"x" * 100, STRING_ERROR),  # unterminated string
    ],
)
def test_small_limits(body: bytes, expected: str | None) -> None:
    assert SMALL.check(body) == expected
    assert SMALL._scan(body) == expected  # the full scan, without the small-body shortcut


def test_defaults_are_vaults() -> None:
    d = JSONLimits()
    assert (d.max_depth, d.max_string_value_length, d.max_object_entry_count,
            d.max_array_element_count) == (300, 1024 * 1024, 10_000, 10_000)
    assert d.check(b'{"a":' * 300 + b"1" + b"}" * 300) is None
    assert d.check(b'{"a":' * 301 + b"1" + b"}" * 301) == DEPTH_ERROR
    assert d.check(orjson.dumps(list(range(10_000)))) is None
    assert d.check(orjson.dumps(list(range(10_001)))) == ARRAY_ERROR
    assert d.check(orjson.dumps({str(i): i for i in range(10_001)})) == OBJECT_ERROR
    assert d.check(orjson.dumps({"p": "x" * (1024 * 1024)})) is None
    assert d.check(orjson.dumps({"p": "x" * (1024 * 1024 + 1)})) == STRING_ERROR


def test_small_bodies_skip_the_scan_only_when_safe() -> None:
    # short, but deeper than the limit: the bracket count sends it to the scan
    assert SMALL.check(b"[[[[1]]]]") == DEPTH_ERROR
    assert JSONLimits().check(b'{"plaintext":"aGVsbG8="}') is None
