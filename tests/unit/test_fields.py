"""Vault's weak field typing (spec §1.5) and the framework's route dispatch."""

from __future__ import annotations

import asyncio

import pytest

from transit.engines.framework import Engine, Route, name
from transit.errors import UnsupportedOperation, UnsupportedPath, UserError
from transit.fields import Field, FieldData, FieldType, parse_bool, parse_duration
from transit.logical import READ, UPDATE, Request, Response


@pytest.mark.parametrize("raw", [True, "1", "t", "T", "TRUE", "true", "True", 1])
def test_bool_true(raw: object) -> None:
    assert parse_bool(raw) is True


@pytest.mark.parametrize("raw", [False, "0", "f", "F", "FALSE", "false", "False", 0])
def test_bool_false(raw: object) -> None:
    assert parse_bool(raw) is False


@pytest.mark.parametrize("raw", ["yes", "", "2", 2, None, [], "tRue"])
def test_bool_rejects(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_bool(raw)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(3600, 3600), ("3600", 3600), ("1h", 3600), ("90m", 5400), ("1h30m", 5400), ("0", 0),
     ("1.5h", 5400), ("500ms", 0), ("", 0), ("2562047h47m16.854775807s", 9223372036)],
)
def test_duration(raw: object, seconds: int) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["1x", "h", "1h2", True, "abc",
                                 # past Go's int64 nanoseconds; the first is infinite as a float
                                 "9" * 400 + "h", "2562048h", "-2562048h"])
def test_duration_rejects(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(raw)


def test_fielddata_coerces_and_defaults() -> None:
    schema = {
        "bits": Field(FieldType.INT, 256), "derived": Field(FieldType.BOOL, False),
        "name": Field(FieldType.STRING, ""), "items": Field(FieldType.SLICE, []),
    }
    d = FieldData({"bits": "128", "derived": "true", "name": None}, schema)
    d.validate()
    assert d.get("bits") == 128
    assert d.get("derived") is True
    assert d.get("name") == ""  # JSON null means absent
    assert d.get("items") == [] and d.get("items") is not schema["items"].default
    assert d.present("bits") and not d.present("name")


def test_fielddata_rejects_bad_type() -> None:
    d = FieldData({"bits": "abc"}, {"bits": Field(FieldType.INT, 256)})
    with pytest.raises(UserError, match=r'Field validation failed: error converting input .* "bits"'):
        d.validate()


def _engine() -> Engine:
    async def read(req: Request, d: FieldData) -> Response:
        return Response(data={"name": d.get("name"), "x": d.get("x")})

    async def write(req: Request, d: FieldData) -> None:
        return None

    return Engine([
        Route(f"things/{name('name')}", {READ: read, UPDATE: write},
              {"name": Field(), "x": Field(FieldType.INT, 0)}),
    ])


def test_dispatch_warnings_and_errors() -> None:
    engine = _engine()
    resp = asyncio.run(engine.handle(Request(READ, "things/a.b-c", {"x": "3", "zz": 1, "name": "q"}, None)))
    assert resp is not None and resp.data == {"name": "a.b-c", "x": 3}
    assert resp.warnings == [
        "Endpoint ignored these unrecognized parameters: [zz]",
        "Endpoint replaced the value of these parameters with the values captured from the "
        "endpoint's path: [name]",
    ]
    # A write returning nothing gets no warnings (there is no response to carry them).
    assert asyncio.run(engine.handle(Request(UPDATE, "things/a", {"zz": 1}, None))) is None
    with pytest.raises(UnsupportedPath):
        asyncio.run(engine.handle(Request(READ, "things/a/b", {}, None)))
    with pytest.raises(UnsupportedPath):
        asyncio.run(engine.handle(Request(READ, "things/-bad", {}, None)))
    with pytest.raises(UnsupportedOperation):
        asyncio.run(engine.handle(Request("delete", "things/a", {}, None)))
