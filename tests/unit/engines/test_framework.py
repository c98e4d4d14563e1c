"""The route table's matching (transit/engines/framework.py `Engine.match`): first route that
matches the whole path wins; remembered matches give the same answer as a fresh match, hand out
a fresh parameter dict each time, and stay bounded."""

from __future__ import annotations

import pytest

from transit.engines import framework
from transit.engines.framework import Engine, Route
from transit.errors import UnsupportedPath
from transit.logical import READ


async def _noop(req: object, d: object) -> None:
    return None


def _engine() -> Engine:
    return Engine([
        Route(r"keys/(?P<name>[\w.-]+)/rotate", {READ: _noop}),
        Route(r"keys/(?P<name>[\w.-]+)", {READ: _noop}),
        Route(r"encrypt/(?P<name>[\w.-]+)", {READ: _noop}),
    ])


def test_a_remembered_match_is_the_same_and_its_params_are_a_fresh_dict() -> None:
    e = _engine()
    first_route, first = e.match("encrypt/app-1")
    assert first_route is e.routes[2] and first == {"name": "app-1"}
    first["name"] = "tampered"  # a caller's change must not leak into the next match
    again_route, again = e.match("encrypt/app-1")
    assert again_route is first_route and again == {"name": "app-1"} and again is not first
    assert e.match("keys/app-1/rotate")[0] is e.routes[0]
    assert e.match("keys/app-1")[0] is e.routes[1]


def test_no_match_is_never_remembered_and_memory_is_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(framework, "MATCH_MEMORY", 8)
    e = _engine()
    for _ in range(2):
        with pytest.raises(UnsupportedPath):
            e.match("encrypt/app\n")  # the whole path or nothing
    for i in range(50):
        assert e.match(f"encrypt/k{i}")[1] == {"name": f"k{i}"}
        assert len(e._matches) <= 8
    assert "encrypt/app\n" not in e._matches
    long = "encrypt/" + "k" * 10_000  # a hostile key name: matched, never remembered
    e._matches.clear()
    assert e.match(long)[1] == {"name": "k" * 10_000}
    assert e._matches == {}
