"""Control characters in paths (issue 9, item 1): the API refuses them before anything else,
routes match whole strings, and the ACL fails closed on a path it should never see."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from transit.acl import ACL, parse_policy, requires_sudo
from transit.api.app import VaultApp
from transit.engines.framework import Engine, Route, name, opt
from transit.errors import UnsupportedPath
from transit.logical import READ, UPDATE

CONTROL = [chr(c) for c in (*range(0x20), 0x7F)]
IDS = [f"{ord(c):02X}" for c in CONTROL]
assert len(CONTROL) == 33


async def _noop(req: Any, d: Any) -> None:
    return None


def _engine() -> Engine:
    return Engine([
        Route(f"encrypt/{name('name')}", {UPDATE: _noop}),
        Route("data/(?P<path>.+)", {READ: _noop}),
        Route(f"keys/{name('name')}{opt('rest')}", {READ: _noop}),
        Route("seal|rotate", {UPDATE: _noop}),
    ])


# -- routes match whole strings -----------------------------------------------------------------


@pytest.mark.parametrize("ch", CONTROL, ids=IDS)
def test_routes_never_match_a_control_character_suffix(ch: str) -> None:
    eng = _engine()
    assert eng.match("encrypt/prod")[1] == {"name": "prod"}
    for path in (f"encrypt/prod{ch}", f"keys/prod{ch}", f"seal{ch}", f"rotate{ch}"):
        with pytest.raises(UnsupportedPath):
            eng.match(path)


def test_trailing_newline_is_not_end_of_string() -> None:
    """Python's `$` matches before a final "\\n"; the route table must not."""
    eng = _engine()
    for path in ("encrypt/prod\n", "keys/prod\n", "seal\n", "data/x\n\n"):
        with pytest.raises(UnsupportedPath):
            eng.match(path)
    # the compiled regex itself is anchored, for any caller that uses .match or .search
    for route in eng.routes:
        assert route.regex.match("seal\n") is None and route.regex.search("encrypt/a\n") is None
    # `.+` in a captured path still takes a "\n" in the middle only through DOTALL, which no
    # route uses; the API refuses such paths before they get here anyway
    with pytest.raises(UnsupportedPath):
        eng.match("data/a\nb")


def test_top_level_alternation_is_anchored_as_a_whole() -> None:
    eng = _engine()
    assert eng.match("seal")[0].pattern == "seal|rotate"
    assert eng.match("rotate")[0].pattern == "seal|rotate"
    for path in ("sealx", "xrotate", "seal/rotate"):
        with pytest.raises(UnsupportedPath):
            eng.match(path)


# -- the ACL fails closed -----------------------------------------------------------------------


@pytest.mark.parametrize("ch", CONTROL, ids=IDS)
def test_acl_denies_a_path_with_a_control_character(ch: str) -> None:
    a = ACL([parse_policy("p", """
        path "transit/*" { capabilities = ["create", "read", "update"] }
        path "transit/encrypt/prod" { capabilities = ["deny"] }
        path "sys/*" { capabilities = ["update"] }
    """)])
    assert not a.allowed("transit/encrypt/prod", "update").allowed
    assert a.allowed("transit/encrypt/other", "update").allowed
    for path in (f"transit/encrypt/prod{ch}", f"transit/encrypt/pr{ch}od",
                 f"transit/encrypt/other{ch}"):
        assert not a.allowed(path, "update").allowed
    assert requires_sudo(f"sys/seal{ch}", "update")
    assert requires_sudo(f"sys/rotate{ch}", "update")
    assert requires_sudo(f"transit/keys/k{ch}", "read")


def test_requires_sudo_is_unchanged_for_printable_paths() -> None:
    assert requires_sudo("sys/seal") and requires_sudo("sys/rotate")
    assert not requires_sudo("transit/encrypt/prod") and not requires_sudo("sys/mounts")


# -- the API refuses first ------------------------------------------------------------------------


class _NoCore:
    """Anything the app asks of the core is a failure: the 400 must come first."""

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"core.{attr} used for a path with a control character")


def _call(app: VaultApp, method: str, path: str, token: str = "root") -> tuple[int, bytes, bool]:
    sent: list[dict[str, Any]] = []
    body_read = False

    async def receive() -> dict[str, Any]:
        nonlocal body_read
        body_read = True
        return {"type": "http.request", "body": b'{"plaintext":"aGk="}', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": method, "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"), "query_string": b"",
        "headers": [(b"x-vault-token", token.encode())], "client": ("127.0.0.1", 1),
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"], body_read


@pytest.mark.parametrize("ch", CONTROL, ids=IDS)
def test_app_refuses_before_token_routing_acl_and_body(ch: str) -> None:
    app = VaultApp(_NoCore())  # type: ignore[arg-type]
    for method, path in (
        ("POST", f"/v1/transit/encrypt/prod{ch}"),
        ("POST", f"/v1/transit/enc{ch}rypt/prod"),
        ("PUT", f"/v1/sys/seal{ch}"),
        ("POST", f"/v1/sys/rotate{ch}"),
        ("GET", f"/v1/secret/data/denied{ch}"),
        ("GET", f"/v1/sys/health{ch}"),
        ("GET", f"/ui{ch}"),
        ("LIST", f"/v1/secret/metadata/{ch}"),
    ):
        status, body, body_read = _call(app, method, path)
        assert status == 400, (method, path)
        assert orjson.loads(body) == {"errors": []}
        assert not body_read


@pytest.mark.parametrize("ch", ["\x85", "\xa0", "\u200b", "\u2028", "\ufeff"])
def test_app_refuses_other_non_printable_runes(ch: str) -> None:
    app = VaultApp(_NoCore())  # type: ignore[arg-type]
    status, _, _ = _call(app, "POST", f"/v1/transit/encrypt/prod{ch}")
    assert status == 400


@pytest.mark.parametrize("messages", [
    [{"type": "http.disconnect"}],
    [{"type": "http.request", "body": b'{"plain', "more_body": True}, {"type": "http.disconnect"}],
])
def test_a_client_gone_mid_body_is_never_handled(messages: list[dict[str, Any]]) -> None:
    """A disconnect before the body is complete must not read as an empty body (a POST to
    `keys/k/rotate` with no body is a rotation): the core is never reached."""
    app = VaultApp(_NoCore())  # type: ignore[arg-type]
    sent: list[dict[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/transit/keys/k/rotate",
             "raw_path": b"/v1/transit/keys/k/rotate", "query_string": b"",
             "headers": [(b"content-length", b"100")], "client": ("127.0.0.1", 1)}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400 and not queue
    assert orjson.loads(sent[1]["body"]) == {
        "errors": ["client disconnected before the request body was complete"]}
