"""Unit tests: `random` and `hash` (spec §4.12-4.13), through TransitBackend.handle."""

from __future__ import annotations

import asyncio
import base64
import hashlib

from tests.unit.engines.transit.ops_helpers import b64, call, fails, new_backend, snapshot, write
from transit.crypto.encoding import b64decode as go_b64decode
from transit.engines.transit.tools import (
    HASH_FIELDS,
    RANDOM_FIELDS,
    hash_response,
    random_bytes_response,
)
from transit.errors import UnsupportedOperation, UserError
from transit.fields import FieldData
from transit.logical import READ


def test_random_default_is_32_base64_bytes() -> None:
    async def go(b):
        data = await write(b, "random")
        assert len(base64.b64decode(data["random_bytes"])) == 32
        assert await snapshot(b) == {}

    asyncio.run(go(new_backend()))


def test_random_bytes_and_format_from_body_url_and_source() -> None:
    async def go(b):
        assert len(bytes.fromhex((await write(b, "random", {"bytes": 10, "format": "hex"}))
                                 ["random_bytes"])) == 10
        assert len(base64.b64decode((await write(b, "random/7"))["random_bytes"])) == 7
        assert len(base64.b64decode((await write(b, "random/platform", {"bytes": "5"}))
                                    ["random_bytes"])) == 5
        assert len(base64.b64decode((await write(b, "random/all/12"))["random_bytes"])) == 12
        # the URL count wins over the body
        assert len(base64.b64decode((await write(b, "random/3", {"bytes": 9}))
                                    ["random_bytes"])) == 3
        resp = await call(b, "random/seal/4")
        assert resp.warnings == [
            "no seal/entropy augmentation available, using platform entropy source"
        ]

    asyncio.run(go(new_backend()))


def test_random_errors() -> None:
    async def go(b):
        cases = [
            ("random", {"bytes": 0}, '"bytes" cannot be less than 1'),
            ("random/platform/-1", {}, '"bytes" cannot be less than 1'),
            ("random", {"bytes": 131073}, '"bytes" should be less than 131072'),
            ("random", {"format": "b32"},
             'unsupported encoding format "b32"; must be "hex" or "base64"'),
            ("random/abc", {},
             'error parsing url-set byte count: strconv.Atoi: parsing "abc": invalid syntax'),
            ("random/seal/x", {},
             'error parsing url-set byte count: strconv.Atoi: parsing "x": invalid syntax'),
            ("random/moon/8", {},
             'unsupported entropy source "moon"; must be "platform" or "seal", or "all"'),
        ]
        for path, data, msg in cases:
            err = await fails(b, path, data, exc=UserError)
            assert err.message == msg, path
        err = await fails(b, "random", {"bytes": "many"}, exc=UserError)
        assert err.message == (
            'Field validation failed: error converting input many for field "bytes": '
            "cannot parse '' as int: strconv.ParseInt: parsing \"many\": invalid syntax")
        await fails(b, "random", op=READ, exc=UnsupportedOperation)

    asyncio.run(go(new_backend()))


def test_random_core_reusable_without_backend() -> None:
    resp = random_bytes_response(FieldData({"bytes": 4, "format": "hex"}, RANDOM_FIELDS))
    assert len(resp.data["random_bytes"]) == 8
    resp = random_bytes_response(FieldData({}, RANDOM_FIELDS), {"source": "16"})
    assert len(base64.b64decode(resp.data["random_bytes"])) == 16


def test_hash_vectors() -> None:
    async def go(b):
        data = b"hello world"
        for alg in ("sha2-224", "sha2-256", "sha2-384", "sha2-512",
                    "sha3-224", "sha3-256", "sha3-384", "sha3-512"):
            name = alg.replace("sha2-", "sha").replace("sha3-", "sha3_")
            want = hashlib.new(name, data).hexdigest()
            assert (await write(b, "hash", {"input": b64(data), "algorithm": alg}))["sum"] == want
            assert (await write(b, f"hash/{alg}", {"input": b64(data)}))["sum"] == want
        # default sha2-256 hex; base64 format; URL beats body
        want = hashlib.sha256(data).digest()
        assert (await write(b, "hash", {"input": b64(data)}))["sum"] == want.hex()
        got = await write(b, "hash/sha2-256", {"input": b64(data), "algorithm": "sha2-512",
                                               "format": "base64"})
        assert got["sum"] == base64.b64encode(want).decode()
        # empty input is fine
        assert (await write(b, "hash", {"input": ""}))["sum"] == hashlib.sha256().hexdigest()

    asyncio.run(go(new_backend()))


def test_hash_errors() -> None:
    async def go(b):
        cases = [
            ({}, "input missing"),
            ({"input": None}, "input missing"),
            ({"input": "!!"}, "unable to decode input as base64: illegal base64 data at input byte 0"),
            ({"input": "aGVsbG8"},
             "unable to decode input as base64: illegal base64 data at input byte 4"),
            ({"input": "", "format": "raw"},
             'unsupported encoding format raw; must be "hex" or "base64"'),
            ({"input": "", "algorithm": "md5"}, "unsupported algorithm md5"),
            ({"input": "", "algorithm": "sha1"}, "unsupported algorithm sha1"),
        ]
        for data, msg in cases:
            assert (await fails(b, "hash", data, exc=UserError)).message == msg
        assert (await fails(b, "hash/blake", {"input": ""}, exc=UserError)).message == (
            "unsupported algorithm blake")

    asyncio.run(go(new_backend()))


def test_hash_unknown_params_warn() -> None:
    async def go(b):
        resp = await call(b, "hash", {"input": "", "zzz": 1, "aaa": 2})
        assert resp.warnings == ["Endpoint ignored these unrecognized parameters: [aaa zzz]"]

    asyncio.run(go(new_backend()))


def test_hash_core_reusable_without_backend() -> None:
    resp = hash_response(FieldData({"input": b64("x"), "urlalgorithm": "sha2-512"}, HASH_FIELDS))
    assert resp.data == {"sum": hashlib.sha512(b"x").hexdigest()}


def test_go_helpers() -> None:
    assert go_b64decode("aGVs\r\nbG8=") == b"hello"
    for bad, off in (("a===", 1), ("aGVsbA=", 7), ("aGVsbG8=x", 8), ("abc", 0)):
        try:
            go_b64decode(bad)
        except ValueError as exc:
            assert str(exc) == f"illegal base64 data at input byte {off}"
        else:
            raise AssertionError(bad)
