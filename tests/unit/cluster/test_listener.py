"""ClusterListener + Forwarder over real mTLS on loopback, with a tiny ASGI app behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from transit.api.protocol import VaultHttpToolsProtocol
from transit.cluster.advert import LeaderRecord
from transit.cluster.forward import (
    NOT_ACTIVE_HEADER,
    NOT_ACTIVE_HEADERS,
    Forwarder,
    ForwardingError,
    LeaderNotActive,
    cluster_base_url,
    cluster_host_port,
)
from transit.cluster.listener import ClusterListener


class EchoApp:
    """Answers 418 with a JSON echo of what it received, plus some custom headers."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.scopes.append(scope)
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        echo = {
            "method": scope["method"], "path": scope["path"],
            "query": scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "body": body.decode(), "forwarded": scope.get("transit.forwarded", False),
        }
        await send({"type": "http.response.start", "status": 418, "headers": [
            (b"content-type", b"application/json"), (b"x-custom", b"one"),
            (b"x-custom", b"two"), (b"cache-control", b"no-store"),
        ]})
        await send({"type": "http.response.body", "body": orjson.dumps(echo)})


async def _with_listener(record: LeaderRecord, app: EchoApp, fn: Any) -> Any:
    listener = ClusterListener(app, "127.0.0.1:0", record, http=VaultHttpToolsProtocol)
    await listener.start()
    try:
        live = LeaderRecord(record.node_id, record.api_addr, f"https://127.0.0.1:{listener.port}",
                            record.cert_pem, record.key_pem)
        return await fn(live, listener)
    finally:
        await listener.stop()


def test_cluster_base_url() -> None:
    assert cluster_base_url("https://a:8201") == "https://a:8201"
    assert cluster_base_url("http://a:8201/x") == "https://a:8201"
    assert cluster_base_url("a:8201") == "https://a:8201"
    with pytest.raises(ForwardingError):
        cluster_base_url("")


def test_cluster_host_port() -> None:
    assert cluster_host_port("https://a:8201") == ("a", 8201)
    assert cluster_host_port("10.0.0.5:8201/x") == ("10.0.0.5", 8201)
    assert cluster_host_port("[::1]:8201") == ("::1", 8201)
    for bad in ("a", ":8201", "a:port", ""):
        with pytest.raises(ForwardingError) as info:
            cluster_host_port(bad)
        assert info.value.maybe_sent is False


def test_forward_round_trip_is_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a key file would land
    record = LeaderRecord.create("active-1", "https://a:8200", "")
    app = EchoApp()

    async def go(live: LeaderRecord, listener: ClusterListener) -> Any:
        # the key stays in memory: nothing named after it in the temporary directory, and
        # no open file of this process holds it
        assert os.listdir(tmp_path) == []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/self/fd/{fd}")
                assert "transit-cluster" not in target or "memfd:" in target, target
        fwd = Forwarder("standby-9")
        try:
            headers = [
                (b"x-vault-token", b"s.abc"), (b"content-type", b"application/json"),
                (b"connection", b"keep-alive, x-hop"), (b"x-hop", b"drop me"),
                (b"host", b"client-facing:8200"), (b"x-vault-forwarded-by", b"spoofed"),
            ]
            first = await fwd.forward(live, "PUT", "/v1/transit/encrypt/k?a=1&b=%2F", headers,
                                      b'{"plaintext":"aGk="}')
            second = await fwd.forward(live, "LIST", "/v1/transit/keys", [], b"")
            return first, second
        finally:
            await fwd.close()

    (status, headers, body), (s2, _h2, b2) = asyncio.run(_with_listener(record, app, go))
    assert os.listdir(tmp_path) == []
    assert status == 418
    assert [v for k, v in headers if k.lower() == b"x-custom"] == [b"one", b"two"]
    assert (b"cache-control", b"no-store") in [(k.lower(), v) for k, v in headers]
    assert not [k for k, _ in headers if k.lower() in (b"date", b"transfer-encoding")]
    echo = orjson.loads(body)
    assert echo["method"] == "PUT" and echo["path"] == "/v1/transit/encrypt/k"
    assert echo["query"] == "a=1&b=%2F" and echo["body"] == '{"plaintext":"aGk="}'
    got = {k: v for k, v in echo["headers"]}
    assert got["x-vault-token"] == "s.abc"
    assert [v for k, v in echo["headers"] if k == "x-vault-forwarded-by"] == ["standby-9"]
    assert "x-hop" not in got and got.get("host") != "client-facing:8200"
    assert echo["forwarded"] is True
    assert all(scope["transit.forwarded"] is True for scope in app.scopes)
    assert s2 == 418 and orjson.loads(b2)["method"] == "LIST"


def test_wrong_cert_is_refused() -> None:
    record = LeaderRecord.create("active-1", "https://a:8200", "")
    app = EchoApp()

    async def go(live: LeaderRecord, _listener: ClusterListener) -> list[str]:
        impostor = LeaderRecord.create("active-1", live.api_addr, live.cluster_addr)
        wrong_name = LeaderRecord("active-2", live.api_addr, live.cluster_addr,
                                  live.cert_pem, live.key_pem)
        errors = []
        for bad in (impostor, wrong_name):
            fwd = Forwarder("standby-9", connect_timeout=2, timeout=5)
            try:
                with pytest.raises(ForwardingError) as info:
                    await fwd.forward(bad, "GET", "/v1/sys/health", [], b"")
                errors.append(str(info.value))
            finally:
                await fwd.close()
        return errors

    errors = asyncio.run(_with_listener(record, app, go))
    assert len(errors) == 2 and app.scopes == []


def test_forward_to_nothing_listening_raises() -> None:
    from tests.helpers import free_port

    record = LeaderRecord.create("gone", "https://a:8200", f"127.0.0.1:{free_port()}")

    async def go() -> None:
        fwd = Forwarder("standby-9", connect_timeout=1, timeout=2)
        try:
            with pytest.raises(ForwardingError):
                await fwd.forward(record, "GET", "/v1/x", [], b"")
        finally:
            await fwd.close()

    asyncio.run(go())


def test_listener_start_stop_and_bind_error() -> None:
    record = LeaderRecord.create("active-1", "https://a:8200", "")

    async def go() -> None:
        a = ClusterListener(EchoApp(), "127.0.0.1:0", record, http=VaultHttpToolsProtocol)
        await a.start()
        assert a.running
        b = ClusterListener(EchoApp(), f"127.0.0.1:{a.port}", record,
                            http=VaultHttpToolsProtocol)
        with pytest.raises(OSError):
            await b.start()
        assert not b.running
        await a.stop()
        assert not a.running
        await a.stop()  # idempotent

    asyncio.run(go())


class NotActiveApp(EchoApp):
    """Answers 503 "node is not active", with the typed header when `marked`."""

    def __init__(self, marked: bool) -> None:
        super().__init__()
        self.marked = marked

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        headers = NOT_ACTIVE_HEADERS if self.marked else [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body",
                    "body": orjson.dumps({"errors": ["node is not active"]})})


@pytest.mark.parametrize("marked", [True, False])
def test_not_active_is_a_header_not_a_body_text(marked: bool) -> None:
    """Only the typed header makes the forwarder say the leader changed (LeaderNotActive,
    nothing was done: re-send); the same 503 text without it is an answer, relayed as is."""
    record = LeaderRecord.create("active-1", "https://a:8200", "")

    async def go(live: LeaderRecord, listener: ClusterListener) -> Any:
        fwd = Forwarder("standby-9")
        try:
            return await fwd.forward(live, "POST", "/v1/transit/keys/k/rotate", [], b"")
        except LeaderNotActive as exc:
            return exc
        finally:
            await fwd.close()

    got = asyncio.run(_with_listener(record, NotActiveApp(marked), go))
    if marked:
        assert isinstance(got, LeaderNotActive) and not got.maybe_sent
    else:
        status, headers, body = got
        assert status == 503 and orjson.loads(body) == {"errors": ["node is not active"]}
        assert NOT_ACTIVE_HEADER not in [k.lower() for k, _ in headers]
