"""The HTTP protocol's write corking (transit/api/cork.py `CorkedWrites`): an answer's head
and body leave in one transport write at the end of the loop turn; whatever the protocol does
on the raw transport before then (a 400, a timeout, the idle close, shutdown, the client's
FIN) sends the corked answer first, so none is dropped or overtaken."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from uvicorn.server import ServerState

from transit.api.cork import LARGE, CorkedWrites
from transit.api.limits import HttpLimits, LimitedConfig
from transit.api.protocol import VaultHttpToolsProtocol


class _Recorder:
    """The two transport methods CorkedWrites calls, recording what reaches the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_head_and_body_written_in_one_turn_leave_in_one_write() -> None:
    async def go() -> None:
        rec = _Recorder()
        corked = CorkedWrites(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        corked.write(b"{}")
        corked.write(b"")
        assert rec.writes == []
        corked.flush()  # the answer is complete
        assert rec.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        await asyncio.sleep(0)  # the end-of-turn flush finds nothing more
        assert len(rec.writes) == 1
    asyncio.run(go())


def test_a_streamed_head_leaves_at_the_end_of_the_turn() -> None:
    async def go() -> None:
        rec = _Recorder()
        corked = CorkedWrites(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await asyncio.sleep(0)
        assert rec.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
        corked.write(b"5\r\nhello\r\n")
        await asyncio.sleep(0)
        assert rec.writes[1:] == [b"5\r\nhello\r\n"]
    asyncio.run(go())


def test_a_large_write_goes_out_at_once_behind_what_is_pending() -> None:
    # a streamed answer's big chunks must reach the transport within the turn, so that its
    # flow control (pause_writing, then Exchange.send waits) holds the app back
    async def go() -> None:
        rec = _Recorder()
        corked = CorkedWrites(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"head")
        big = b"x" * (LARGE + 1)
        corked.write(big)
        assert rec.writes == [b"head" + big]
        corked.write(b"small")
        assert len(rec.writes) == 1
        await asyncio.sleep(0)
        assert rec.writes[1:] == [b"small"]
    asyncio.run(go())


def test_close_sends_what_is_pending_first_and_the_rest_delegates() -> None:
    async def go() -> None:
        rec = _Recorder()
        corked = CorkedWrites(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"last answer")
        corked.close()
        assert rec.writes == [b"last answer"] and rec.closed and corked.is_closing()
        assert corked.get_extra_info("peername") == "info:peername"
        await asyncio.sleep(0)
        assert rec.writes == [b"last answer"]
    asyncio.run(go())


def test_what_is_pending_when_the_connection_goes_is_dropped_not_written() -> None:
    async def go() -> None:
        rec = _Recorder()
        corked = CorkedWrites(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        rec.close()  # the peer left: the transport closed under the cycle
        await asyncio.sleep(0)
        corked.flush()
        assert rec.writes == []  # _Recorder fails a write after close
    asyncio.run(go())


def test_after_a_refusal_pending_data_goes_first_and_later_writes_are_dropped() -> None:
    async def go() -> None:
        rec = _Recorder()
        corked = CorkedWrites(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        corked.refuse()
        assert rec.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        corked.write(b"a late answer")
        await asyncio.sleep(0)
        corked.flush()
        assert rec.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    asyncio.run(go())



class _Transport(asyncio.Transport):
    """A connection's raw transport: records writes (a write after close is recorded as lost)
    and closes."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        data = bytes(data)
        status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "?"
        self.events.append(f"lost {status}" if self.closing else status)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.events.append("close")
        self.closing = True

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000),
                "sockname": ("127.0.0.1", 8200)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _idle_timeout(p: VaultHttpToolsProtocol) -> None:
    # the idle timer firing after a turn as long as the idle timeout (a stalled process)
    assert p._idle_since is not None
    p._idle_since -= p.timeout_keep_alive
    p._on_idle_timer()


def _raw_close(p: VaultHttpToolsProtocol) -> None:
    if not p.eof_received():  # what uvloop does at the client's FIN when this is falsy
        p.transport.close()


@pytest.mark.parametrize("event", [
    pytest.param(lambda p: p.data_received(b"\x00 not http\r\n\r\n"), id="malformed-next"),
    pytest.param(lambda p: p.shutdown(), id="shutdown"),
    pytest.param(_idle_timeout, id="idle-timeout"),
    pytest.param(_raw_close, id="client-fin"),
    pytest.param(lambda p: p._on_write_timer(), id="write-timeout"),
])
def test_a_corked_answer_goes_out_before_the_protocol_closes_or_answers_itself(
        event: Callable[[VaultHttpToolsProtocol], None]) -> None:
    # uvloop runs timers and socket callbacks before the end-of-turn flush: each of these can
    # come between an answer's completion and its flush
    async def go() -> list[str]:
        config = LimitedConfig(_ok, http_limits=HttpLimits(write_timeout=30.0), loop="uvloop",
                               lifespan="off", access_log=False, log_level="critical")
        config.load()
        p = VaultHttpToolsProtocol(config=config, server_state=ServerState(), app_state={},
                                   _loop=asyncio.get_running_loop())
        t = _Transport()
        p.connection_made(t)
        p.data_received(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(50):  # until the answer is complete and corked
            if p.corked._chunks:
                break
            await asyncio.sleep(0)
        assert t.events == [] and p.corked._chunks
        event(p)
        for _ in range(5):
            await asyncio.sleep(0)
        return t.events

    events = asyncio.run(go())
    assert events[0] == "200", events
    assert not any(e.startswith("lost") for e in events), events
    assert events[-1] == "close" or events == ["200"], events
