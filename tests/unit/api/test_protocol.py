"""The HTTP protocol's write corking (transit/api/protocol.py `CorkedWrites`): an answer's head
and body leave in one transport write; a head alone still leaves at the end of the loop turn."""

from __future__ import annotations

import asyncio

from transit.api.protocol import CorkedWrites


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

