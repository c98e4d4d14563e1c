"""The HTTP edge's one typed request (transit/api/edge.py) and the layers that share it.

In process: `parse` and `Incoming.read_body` alone; the real VaultApp over an in-memory core,
behind the real QuotaGate and ForwardingGate, with ASGI scopes built by hand (as uvicorn
builds them: lower-case header names, raw bytes values). The standby cases give the real core
a fake HA controller (a performance standby whose leader is elsewhere) and a recording
forwarder in place of the cluster port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from transit import errors
from transit.api.app import REQUEST_KEY, VaultApp
from transit.api.edge import CLIENT_ADDR_HEADER, EDGE_KEY, GONE, Incoming, incoming, parse
from transit.api.forwarding import ForwardingGate
from transit.api.quota_gate import QuotaGate
from transit.cluster.listener import FORWARDED_SCOPE
from transit.core import Core
from transit.logical import Request
from transit.ratelimit import Buckets
from transit.storage.inmem import InmemBackend

Headers = list[tuple[bytes, bytes]]
ENCRYPT = b'{"plaintext": "aGk="}'


def _scope(path: str, headers: Headers, *, method: str = "POST", query: bytes = b"",
           forwarded: bool = False, client: tuple[str, int] | None = ("10.0.0.7", 5000)
           ) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": query, "headers": headers, "client": client,
        "server": ("127.0.0.1", 8200),
    }
    if forwarded:
        scope[FORWARDED_SCOPE] = True
    return scope


class Receiver:
    """An ASGI `receive` over fixed messages that counts its calls."""

    def __init__(self, *chunks: bytes, disconnect_after: bool = False) -> None:
        self.messages: list[dict[str, Any]] = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)]
        if disconnect_after:
            self.messages[-1]["more_body"] = True
            self.messages.append({"type": "http.disconnect"})
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return self.messages.pop(0) if self.messages else {"type": "http.disconnect"}


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: Any


async def _call(app: Callable[..., Awaitable[None]], scope: dict[str, Any],
                receive: Receiver) -> Answer:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    raw = sent[1]["body"]
    return Answer(sent[0]["status"], dict(sent[0]["headers"]),
                  orjson.loads(raw) if raw[:1] in (b"{", b"[") else raw)


def _headers(body: bytes, *extra: tuple[bytes, bytes], token: bytes = b"root") -> Headers:
    return [(b"host", b"127.0.0.1:8200"), (b"x-vault-token", token),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), *extra]


async def _dev_core() -> Core:
    core = Core(InmemBackend())
    await core.setup_dev("root")
    return core


# -- parse: one pass over the headers --------------------------------------------------------


def test_parse_missing_headers_gives_the_defaults() -> None:
    inc = parse(_scope("/v1/sys/health", [], method="GET", client=None))
    assert (inc.token, inc.content_length, inc.headers, tuple(inc.index)) == ("", -1, {}, ())
    assert (inc.inconsistent, inc.no_forwarding, inc.prometheus) == (b"", False, False)
    assert inc.client == ("", 0) and not inc.forwarded and inc.body is None
    assert inc.wrap_ttl is None and inc.vault_request is None and inc.forwarded_by is None


def test_parse_duplicates_keep_each_layers_rule() -> None:
    inc = parse(_scope("/v1/transit/encrypt/k", [
        (b"x-vault-token", b"first"), (b"x-vault-token", b"second"),
        (b"authorization", b"Bearer ignored"),
        (b"content-type", b"text/plain"), (b"content-type", b"application/json"),
        (b"x-vault-wrap-ttl", b"1m"), (b"x-vault-wrap-ttl", b"5m"),
        (b"x-vault-index", b"a"), (b"x-vault-index", b"b"),
        (b"x-vault-inconsistent", b"Forward-Active-Node"), (b"x-vault-inconsistent", b"fail"),
        (b"content-length", b"12"), (b"content-length", b"abc"), (b"content-length", b"7"),
        (b"x-vault-request", b"true"), (b"x-vault-forwarded-by", b"node-b"),
    ], query=b"a=1"))
    assert inc.token == "first"  # Go's Header.Get: the first wins, and beats a bearer
    assert inc.headers["content-type"] == "application/json"  # the last wins
    assert inc.wrap_ttl == "5m" and inc.vault_request == "true"
    assert inc.forwarded_by == "node-b"
    assert list(inc.index) == ["a", "b"]  # every value, in order
    assert inc.inconsistent == b"Forward-Active-Node"  # the first
    assert inc.content_length == 12  # the largest declared: never under-counted
    assert "x-vault-token" not in inc.headers and "authorization" not in inc.headers
    assert (inc.method, inc.raw_path, inc.query) == ("POST", b"/v1/transit/encrypt/k", b"a=1")


def test_parse_bearer_is_case_insensitive_and_only_a_fallback() -> None:
    assert parse(_scope("/v1/x", [(b"authorization", b"bEaReR  tok1 ")])).token == "tok1"
    assert parse(_scope("/v1/x", [(b"authorization", b"Basic dXNlcg=="),
                                  (b"authorization", b"Bearer tok2")])).token == "tok2"
    assert parse(_scope("/v1/x", [(b"authorization", b"Bearer tok3"),
                                  (b"x-vault-token", b"tok4")])).token == "tok4"


def test_parse_non_utf8_bytes_decode_as_latin1() -> None:
    inc = parse(_scope("/v1/x", [(b"x-vault-token", b"\xff\xfeok"),
                                 (b"x-vault-custom", b"caf\xe9"),
                                 (b"content-length", b"\xd9\xa3")]))  # Arabic-Indic 3
    assert inc.token == "\xff\xfeok" and inc.headers["x-vault-custom"] == "caf\xe9"
    assert inc.content_length == -1  # not ASCII digits: absent


def test_parse_no_request_forwarding_needs_a_value() -> None:
    assert not parse(_scope("/v1/x", [(b"x-vault-no-request-forwarding", b"")])).no_forwarding
    assert parse(_scope("/v1/x", [(b"x-vault-no-request-forwarding", b""),
                                  (b"x-vault-no-request-forwarding", b"1")])).no_forwarding


def test_parse_prometheus_accept() -> None:
    for accept, want in ((b"application/openmetrics-text; version=1.0.0", True),
                         (b"text/plain, prometheus/telemetry", True),
                         (b"application/json", False)):
        assert parse(_scope("/v1/sys/metrics", [(b"accept", accept)])).prometheus is want


def test_forwarded_client_is_believed_only_on_the_cluster_port() -> None:
    headers = [(CLIENT_ADDR_HEADER, b"192.0.2.9:4711"), (CLIENT_ADDR_HEADER, b"6.6.6.6:1")]
    assert parse(_scope("/v1/x", headers)).client == ("10.0.0.7", 5000)
    assert parse(_scope("/v1/x", headers, forwarded=True)).client == ("192.0.2.9", 4711)
    ipv6 = parse(_scope("/v1/x", [(CLIENT_ADDR_HEADER, b"::1:x")], forwarded=True))
    assert ipv6.client == ("::1", 0)  # a port that is not a number: 0
    bare = parse(_scope("/v1/x", [(CLIENT_ADDR_HEADER, b"nohost")], forwarded=True))
    assert bare.client == ("10.0.0.7", 5000)  # no host part: the socket's address


def test_incoming_is_parsed_once_per_scope() -> None:
    scope = _scope("/v1/x", [(b"x-vault-token", b"t")])
    first = incoming(scope)
    assert scope[EDGE_KEY] is first and incoming(scope) is first
    assert first.request_id == first.request_id and len(first.request_id) == 36


# -- read_body: once, within the limit ----------------------------------------------------


def _read(inc: Incoming, receive: Receiver, limit: int) -> bytes:
    return asyncio.run(inc.read_body(receive, limit))


def test_body_is_read_once_and_kept() -> None:
    inc = parse(_scope("/v1/x", []))
    receive = Receiver(b"ab", b"", b"cd")
    assert _read(inc, receive, 4) == b"abcd" and receive.calls == 3
    assert _read(inc, receive, 4) == b"abcd" and receive.calls == 3  # kept, not re-read


def test_body_over_the_limit() -> None:
    declared = parse(_scope("/v1/x", [(b"content-length", b"5")]))
    receive = Receiver(b"abcde")
    with pytest.raises(errors.RequestTooLarge):
        _read(declared, receive, 4)
    assert receive.calls == 0  # refused on the declared length, nothing read
    for chunks in ((b"abcde",), (b"ab", b"cde")):  # no length declared (chunked)
        with pytest.raises(errors.RequestTooLarge):
            _read(parse(_scope("/v1/x", [])), Receiver(*chunks), 4)
    assert _read(parse(_scope("/v1/x", [])), Receiver(b"abcd"), 4) == b"abcd"  # at the limit


def test_body_cut_by_a_disconnect_is_never_handled() -> None:
    for receive in (Receiver(b"ab", disconnect_after=True), Receiver()):
        inc = parse(_scope("/v1/x", []))
        if receive.messages == []:
            receive.messages.append({"type": "http.disconnect"})
        with pytest.raises(errors.UserError, match=GONE):
            _read(inc, receive, 100)
        assert inc.body is None


# -- the real app and quota gate over one Incoming ------------------------------------------


def test_status_endpoints_are_all_under_sys() -> None:
    """VaultApp looks them up only for paths under sys/ (one startswith on the hot path)."""
    from transit.api.status import APP_ANSWERED, STATUS_HANDLERS

    assert all(path.startswith("sys/") for path in [*STATUS_HANDLERS, *APP_ANSWERED])



def test_app_reads_the_one_parse_and_the_body_once() -> None:
    async def go() -> None:
        core = await _dev_core()
        app = QuotaGate(VaultApp(core, max_request_size=64), core, Buckets.create(16))
        await _call(app, _scope("/v1/transit/keys/k", _headers(b"")), Receiver(b""))
        scope = _scope("/v1/transit/encrypt/k", _headers(ENCRYPT, (b"x-vault-token", b"bad")))
        receive = Receiver(ENCRYPT[:5], ENCRYPT[5:])
        answer = await _call(app, scope, receive)
        assert answer.status == 200 and answer.body["data"]["ciphertext"].startswith("vault:v1:")
        inc = scope[EDGE_KEY]
        assert inc.body == ENCRYPT and receive.calls == 2  # the first token won
        req: Request = scope[REQUEST_KEY]
        assert req.id == inc.request_id == answer.body["request_id"]
        assert (req.remote_addr, req.remote_port) == ("10.0.0.7", 5000)
        assert req.headers is inc.headers

        # a bearer token alone; a non-UTF-8 token is just a wrong token
        bearer = [(k, v) for k, v in _headers(ENCRYPT) if k != b"x-vault-token"]
        answer = await _call(app, _scope("/v1/transit/encrypt/k",
                                         [*bearer, (b"authorization", b"Bearer root")]),
                             Receiver(ENCRYPT))
        assert answer.status == 200
        answer = await _call(app, _scope("/v1/transit/encrypt/k",
                                         _headers(ENCRYPT, token=b"r\xf6\xf6t")),
                             Receiver(ENCRYPT))
        assert (answer.status, answer.body) == (403, {"errors": ["permission denied"]})

        # over max_request_size: declared, or streamed without a length
        big = b'{"plaintext": "' + b"A" * 80 + b'"}'
        receive = Receiver(big)
        answer = await _call(app, _scope("/v1/transit/encrypt/k", _headers(big)), receive)
        assert (answer.status, answer.body) == (413, {"errors": ["http: request body too large"]})
        assert receive.calls == 0
        chunked = [(k, v) for k, v in _headers(big) if k != b"content-length"]
        answer = await _call(app, _scope("/v1/transit/encrypt/k", chunked),
                             Receiver(big[:40], big[40:]))
        assert answer.status == 413

        # the wrap TTL header reaches the core through the one parse
        answer = await _call(app, _scope("/v1/transit/encrypt/k",
                                         _headers(ENCRYPT, (b"x-vault-wrap-ttl", b"60s"))),
                             Receiver(ENCRYPT))
        assert answer.status == 200 and answer.body["wrap_info"]["ttl"] == 60

        # answered before the body: a bad path and an unknown verb never read it
        for scope in (_scope("/v1/transit/\x07", _headers(big)),
                      _scope("/v1/transit/encrypt/k", _headers(big), method="FOO")):
            receive = Receiver(big)
            answer = await _call(app, scope, receive)
            assert answer.status in (400, 405) and receive.calls == 0

    asyncio.run(go())


# -- the forwarding gate over a fake HA state ---------------------------------------------


@dataclass
class Leader:
    node_id: str = "active-node"
    api_addr: str = "https://active.example:8200"


class StandbyHa:
    """What Core and the forwarding gate read of the HA controller, as a standby."""

    def __init__(self) -> None:
        self.state, self.epoch, self.fresh, self.is_active, self.activating = (
            "standby", 1, True, False, False)

    @property
    def serving(self) -> bool:
        return False

    async def activated(self) -> None:
        return None

    async def leader(self) -> Leader:
        return Leader()

    async def await_leader(self) -> Leader:
        return Leader()

    async def refresh_leader(self) -> Leader:
        return Leader()

    def forget_leader(self) -> None:
        return None

    def deposed(self, why: str = "") -> None:
        return None


class Forwarder:
    """Records what the gate sends to the active node and answers for it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Headers, bytes]] = []

    async def forward(self, record: Any, method: str, path_qs: str, headers: Headers,
                      body: bytes) -> tuple[int, Headers, bytes]:
        self.sent.append((method, path_qs, headers, body))
        return 200, [(b"content-type", b"application/json")], b'{"from":"active"}'


async def _standby(perf: bool = True) -> tuple[Core, ForwardingGate, Forwarder]:
    core = await _dev_core()
    app = VaultApp(core, max_request_size=64)
    await _call(app, _scope("/v1/transit/keys/k", _headers(b"")), Receiver(b""))
    core.ha = StandbyHa()  # type: ignore[assignment]
    forwarder = Forwarder()
    core.forwarder = forwarder  # type: ignore[assignment]
    core.perf_standby_enabled = perf
    core.perf_loaded = perf
    return core, ForwardingGate(app, core, max_request_size=64), forwarder


def test_perf_standby_serves_a_known_key_locally() -> None:
    async def go() -> None:
        core, gate, forwarder = await _standby()
        assert core.perf_standby
        scope = _scope("/v1/transit/encrypt/k", _headers(ENCRYPT))
        receive = Receiver(ENCRYPT)
        answer = await _call(gate, scope, receive)
        assert answer.status == 200 and answer.body["data"]["ciphertext"].startswith("vault:")
        assert forwarder.sent == [] and receive.calls == 1
        assert scope[EDGE_KEY].local_attempt is False  # reset after the attempt

    asyncio.run(go())


def test_local_attempt_then_forward_reuses_the_one_read() -> None:
    """An unknown key on a performance standby: the app raises ForwardToActive out of the
    local attempt, and the gate forwards the same bytes, read once, with the same scope."""

    async def go() -> None:
        _, gate, forwarder = await _standby()
        scope = _scope("/v1/transit/encrypt/elsewhere",
                       _headers(ENCRYPT, (CLIENT_ADDR_HEADER, b"6.6.6.6:1")), query=b"x=1")
        receive = Receiver(ENCRYPT[:3], ENCRYPT[3:])
        answer = await _call(gate, scope, receive)
        assert (answer.status, answer.body) == (200, {"from": "active"})
        assert receive.calls == 2  # read once, by the local attempt
        [(method, path_qs, headers, body)] = forwarder.sent
        assert (method, path_qs, body) == ("POST", "/v1/transit/encrypt/elsewhere?x=1", ENCRYPT)
        # the client's own copy of the address header is dropped, the real one added
        assert [v for k, v in headers if k == CLIENT_ADDR_HEADER] == [b"10.0.0.7:5000"]
        assert scope[EDGE_KEY].local_attempt is False

    asyncio.run(go())


def test_standby_refuses_a_body_over_the_limit_before_any_attempt() -> None:
    async def go() -> None:
        _, gate, forwarder = await _standby()
        big = b'{"plaintext": "' + b"A" * 80 + b'"}'
        for headers in (_headers(big), [h for h in _headers(big) if h[0] != b"content-length"]):
            scope = _scope("/v1/transit/encrypt/k", headers)
            answer = await _call(gate, scope, Receiver(big[:30], big[30:]))
            assert (answer.status, answer.body) == (
                413, {"errors": ["http: request body too large"]})
            assert REQUEST_KEY not in scope  # the app never ran
        assert forwarder.sent == []

    asyncio.run(go())


def test_standby_forwards_a_write_and_redirects_on_request() -> None:
    async def go() -> None:
        _, gate, forwarder = await _standby(perf=False)
        receive = Receiver(b"{}")
        answer = await _call(gate, _scope("/v1/transit/keys/new", _headers(b"{}")), receive)
        assert answer.status == 200 and forwarder.sent[0][3] == b"{}" and receive.calls == 1
        receive = Receiver(b"{}")
        scope = _scope("/v1/transit/keys/new", _headers(
            b"{}", (b"x-vault-no-request-forwarding", b"true")), query=b"a=b")
        answer = await _call(gate, scope, receive)
        assert answer.status == 307 and receive.calls == 0  # before the body
        assert answer.headers[b"location"] == b"https://active.example:8200/v1/transit/keys/new?a=b"
        assert len(forwarder.sent) == 1

    asyncio.run(go())


def test_forwarded_request_runs_as_its_real_client() -> None:
    async def active() -> None:
        core = await _dev_core()
        app = VaultApp(core)
        await _call(app, _scope("/v1/transit/keys/k", _headers(b"")), Receiver(b""))
        gate = QuotaGate(app, core, Buckets.create(16))
        scope = _scope("/v1/transit/encrypt/k",
                       _headers(ENCRYPT, (CLIENT_ADDR_HEADER, b"192.0.2.9:4711")),
                       forwarded=True)
        assert (await _call(gate, scope, Receiver(ENCRYPT))).status == 200
        req: Request = scope[REQUEST_KEY]
        assert (req.remote_addr, req.remote_port) == ("192.0.2.9", 4711)
        scope = _scope("/v1/transit/encrypt/k",
                       _headers(ENCRYPT, (CLIENT_ADDR_HEADER, b"192.0.2.9:4711")))
        assert (await _call(gate, scope, Receiver(ENCRYPT))).status == 200
        assert scope[REQUEST_KEY].remote_addr == "10.0.0.7"  # a client's copy: ignored

    asyncio.run(active())
