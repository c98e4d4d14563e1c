"""The forwarding transport (transit.cluster.h1client → the cluster listener, real mutual TLS on
loopback): what reaches the active is what the client sent, what comes back is what the active
answered, and `maybe_sent` says whether a failed request may have reached it."""

from __future__ import annotations

import asyncio
import gzip
import socket
from typing import Any

import pytest

from tests.helpers import free_port
from transit.api.protocol import VaultHttpToolsProtocol
from transit.cluster.advert import LeaderRecord
from transit.cluster.forward import Forwarder, ForwardingError
from transit.cluster.listener import ClusterListener


class RecordingApp:
    """Records every request (raw path, query, headers, body) and answers what `answers`
    maps the raw path to (default: 200 with an empty JSON object)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.answers: dict[bytes, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}
        self.delay = 0.0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.seen.append({"method": scope["method"], "raw_path": scope["raw_path"],
                          "query": scope["query_string"], "headers": list(scope["headers"]),
                          "body": body})
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers, out = self.answers.get(
            scope["raw_path"], (200, [(b"content-type", b"application/json")], b"{}"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})


async def _serve(app: RecordingApp, fn: Any, record: LeaderRecord | None = None) -> Any:
    record = record or LeaderRecord.create("active-1", "https://a:8200", "")
    listener = ClusterListener(app, "127.0.0.1:0", record, http=VaultHttpToolsProtocol)
    await listener.start()
    try:
        live = LeaderRecord(record.node_id, record.api_addr, f"127.0.0.1:{listener.port}",
                            record.cert_pem, record.key_pem)
        return await fn(live)
    finally:
        await listener.stop()


def test_request_reaches_the_active_as_sent() -> None:
    app = RecordingApp()
    path = "/v1/secret/data/a%20b/%2E%2E/%2Fx?list=true&q=%41%2f&flag"

    async def go(live: LeaderRecord) -> None:
        fwd = Forwarder("standby-9")
        try:
            await fwd.forward(live, "POST", path, [
                (b"x-vault-token", b"s.abc"), (b"x-dup", b"1"), (b"x-dup", b"2"),
                (b"connection", b"x-hop"), (b"x-hop", b"1"), (b"content-length", b"999"),
            ], b"\x00\xffbinary")
            await fwd.forward(live, "POST", "/v1/transit/keys/k/rotate", [], b"")
            await fwd.forward(live, "DELETE", "/v1/secret/metadata/x", [], b"")
            await fwd.forward(live, "LIST", "v1/transit/keys", [], b"")
            await fwd.forward(live, "POST", "/v1/big", [
                (b"expect", b"100-continue"), (b"x-name", "café ✓".encode())], b"x" * 100_000)
            await fwd.forward(live, "POST", "/v1/latin1", [(b"x-name", b"caf\xe9")], b"{}")
            for bad in (b"a\r\nx-injected: 1", b"a\nb", b"a\x00b"):  # would end the line
                with pytest.raises(ForwardingError) as unsafe:
                    await fwd.forward(live, "POST", "/v1/x", [(b"x-name", bad)], b"{}")
                assert unsafe.value.maybe_sent is False
            with pytest.raises(ForwardingError) as target:
                await fwd.forward(live, "GET", "/v1/a b HTTP/1.1\r\nx: y", [], b"")
            assert target.value.maybe_sent is False
        finally:
            await fwd.close()

    asyncio.run(_serve(app, go))
    first, empty_post, delete, listing, big, latin1 = app.seen  # the unsafe ones never left
    assert first["raw_path"] == b"/v1/secret/data/a%20b/%2E%2E/%2Fx"
    assert first["query"] == b"list=true&q=%41%2f&flag"
    assert first["body"] == b"\x00\xffbinary"
    names = [k for k, _ in first["headers"]]
    # nothing invented by the HTTP client: no user-agent, accept, accept-encoding or a
    # content-type the client did not send; only host and content-length are recomputed
    assert sorted(set(names)) == [b"content-length", b"host", b"x-dup", b"x-vault-forwarded-by",
                                  b"x-vault-token"], names
    assert [v for k, v in first["headers"] if k == b"x-dup"] == [b"1", b"2"]
    assert dict(first["headers"])[b"content-length"] == b"8"
    assert [v for k, v in first["headers"] if k == b"x-vault-forwarded-by"] == [b"standby-9"]
    assert empty_post["method"] == "POST" and empty_post["body"] == b""
    assert delete["method"] == "DELETE" and listing["method"] == "LIST"
    assert listing["raw_path"] == b"/v1/transit/keys"
    # the body arrived in one piece without waiting for a second 100-continue; header bytes
    # (UTF-8 here) unchanged
    assert big["body"] == b"x" * 100_000
    assert [v for k, v in big["headers"] if k == b"x-name"] == ["café ✓".encode()]
    assert b"expect" not in [k for k, _ in big["headers"]]
    # bytes that are not UTF-8 go out as they came in too
    assert [v for k, v in latin1["headers"] if k == b"x-name"] == [b"caf\xe9"]


def test_answer_comes_back_verbatim_and_leaves_no_state() -> None:
    app = RecordingApp()
    packed = gzip.compress(b'{"data":{}}')
    app.answers[b"/v1/gz"] = (200, [(b"content-type", b"application/json"),
                                    (b"content-encoding", b"gzip")], packed)
    app.answers[b"/v1/cookie"] = (200, [(b"set-cookie", b"a=1; Path=/"),
                                        (b"set-cookie", b"b=2; Path=/")], b"{}")
    app.answers[b"/v1/none"] = (204, [], b"")
    app.answers[b"/v1/moved"] = (307, [(b"location", b"https://elsewhere/v1/x")], b"")
    big = b"x" * (3 << 20)
    app.answers[b"/v1/big"] = (200, [(b"content-type", b"application/octet-stream")], big)

    async def go(live: LeaderRecord) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        fwd = Forwarder("standby-9")
        try:
            return [await fwd.forward(live, "GET", p, [], b"")
                    for p in ("/v1/gz", "/v1/cookie", "/v1/after", "/v1/none", "/v1/moved",
                              "/v1/big")]
        finally:
            await fwd.close()

    gz, cookie, _after, none, moved, large = asyncio.run(_serve(app, go))
    assert gz[2] == packed and (b"content-encoding", b"gzip") in gz[1]  # not decompressed
    assert [v for k, v in cookie[1] if k.lower() == b"set-cookie"] == [b"a=1; Path=/",
                                                                       b"b=2; Path=/"]
    after_headers = [k for k, _ in app.seen[2]["headers"]]
    assert b"cookie" not in after_headers  # no cookie jar between clients
    assert none[0] == 204 and none[2] == b""
    assert moved[0] == 307 and (b"location", b"https://elsewhere/v1/x") in moved[1]
    assert len(app.seen) == 6  # the redirect was not followed
    assert large[2] == big


def test_failures_say_whether_the_request_may_have_been_sent() -> None:
    app = RecordingApp()

    async def go(live: LeaderRecord) -> tuple[ForwardingError, ForwardingError, ForwardingError]:
        # the active ran it and its answer did not come in time: maybe sent
        app.delay = 2.0
        fwd = Forwarder("standby-9", connect_timeout=1, timeout=0.5)
        try:
            with pytest.raises(ForwardingError) as slow:
                await fwd.forward(live, "POST", "/v1/transit/keys/slow", [], b"{}")
        finally:
            await fwd.close()
        # nothing listening: certainly not sent
        dead = LeaderRecord(live.node_id, live.api_addr, f"127.0.0.1:{free_port()}",
                            live.cert_pem, live.key_pem)
        fwd = Forwarder("standby-9", connect_timeout=1, timeout=5)
        try:
            with pytest.raises(ForwardingError) as refused:
                await fwd.forward(dead, "POST", "/v1/transit/keys/x", [], b"{}")
        finally:
            await fwd.close()
        # a peer that accepts TCP but never completes the TLS handshake (a stopped process):
        # the connect timeout fires before anything was sent
        with socket.socket() as mute:
            mute.bind(("127.0.0.1", 0))
            mute.listen(8)
            silent = LeaderRecord(live.node_id, live.api_addr,
                                  f"127.0.0.1:{mute.getsockname()[1]}", live.cert_pem,
                                  live.key_pem)
            fwd = Forwarder("standby-9", connect_timeout=0.5, timeout=5)
            try:
                with pytest.raises(ForwardingError) as handshake:
                    await fwd.forward(silent, "POST", "/v1/transit/keys/x", [], b"{}")
            finally:
                await fwd.close()
        return slow.value, refused.value, handshake.value

    slow, refused, handshake = asyncio.run(_serve(app, go))
    assert slow.maybe_sent is True
    assert [s["raw_path"] for s in app.seen] == [b"/v1/transit/keys/slow"]
    assert refused.maybe_sent is False
    assert handshake.maybe_sent is False


def test_a_new_leader_record_lets_requests_in_flight_finish() -> None:
    app = RecordingApp()
    app.delay = 0.5

    async def go(live: LeaderRecord) -> tuple[Any, Any]:
        fwd = Forwarder("standby-9")
        try:
            slow = asyncio.ensure_future(fwd.forward(live, "GET", "/v1/slow", [], b""))
            async with asyncio.timeout(10):  # in flight: the active is handling it
                while not app.seen:
                    await asyncio.sleep(0.01)
            # same listener, another record value (a new term would bring a new certificate)
            newer = LeaderRecord(live.node_id, live.api_addr, live.cluster_addr, live.cert_pem,
                                 live.key_pem, epoch=live.epoch + 1)
            fresh = await fwd.forward(newer, "GET", "/v1/fresh", [], b"")
            return await slow, fresh
        finally:
            await fwd.close()

    slow, fresh = asyncio.run(_serve(app, go))
    assert slow[0] == 200 and fresh[0] == 200


def test_unusable_record_is_not_sent() -> None:
    bad = LeaderRecord("active-1", "https://a:8200", "127.0.0.1:1", "not a cert", "not a key")

    async def go() -> ForwardingError:
        fwd = Forwarder("standby-9")
        try:
            with pytest.raises(ForwardingError) as info:
                await fwd.forward(bad, "GET", "/v1/x", [], b"")
            return info.value
        finally:
            await fwd.close()

    assert asyncio.run(go()).maybe_sent is False
