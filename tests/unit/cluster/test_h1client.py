"""transit.cluster.h1client against a scripted server on loopback (plain TCP, so the server
can answer anything, well-formed or not): connections are reused only when that is safe, a
request is never sent twice, and `maybe_sent` is False only when no byte of it left."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.helpers import free_port
from transit.cluster.h1client import H1Error, H1Pool, encode_request

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """Runs `script` for every connection; counts connections and the requests read."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()  # a client closed a connection
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # (cancelled: the test is over)
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and Content-Length body), or None at the client's close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


async def answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      server: Server, answer: bytes = OK) -> None:
    while await server.read_request(reader) is not None:
        writer.write(answer)
        await writer.drain()


def pool(server: Server, **kw: Any) -> H1Pool:
    return H1Pool("127.0.0.1", server.port, None, **kw)


def run(script: Script, go: Callable[[Server], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with Server(script) as server:
            return await go(server)
    return asyncio.run(main())


def test_sequential_requests_share_one_keep_alive_connection() -> None:
    async def go(server: Server) -> list[Any]:
        p = pool(server)
        try:
            return [await p.request("POST", "/v1/x", [(b"x-a", b"1")], b"{}") for _ in range(5)]
        finally:
            await p.close()

    answers = run(answer_each, go)
    assert [a[0] for a in answers] == [200] * 5
    assert answers[0][2] == b"{}"
    assert (b"content-type", b"application/json") in answers[0][1]


def test_the_request_is_written_as_given() -> None:
    async def go(server: Server) -> Server:
        p = pool(server)
        try:
            await p.request("LIST", "/v1/a%20b?q=%41", [(b"x-v", b"caf\xe9"), (b"x-v", b"2")],
                            b"")
            await p.request("PUT", "/v1/k", [], b"")
        finally:
            await p.close()
        return server

    server = run(answer_each, go)
    assert server.requests[0] == (
        b"LIST /v1/a%20b?q=%41 HTTP/1.1\r\nhost: 127.0.0.1:" + str(server.port).encode()
        + b"\r\nx-v: caf\xe9\r\nx-v: 2\r\n\r\n")
    assert server.requests[1].endswith(b"\r\ncontent-length: 0\r\n\r\n")  # a write says so


@pytest.mark.parametrize("target,headers", [
    ("/v1/a b", []), ("/v1/a\r\nx: y", []), ("", []), ("/v1/x", [(b"x", b"a\r\nb: c")]),
    ("/v1/x", [(b"bad name", b"v")]), ("/v1/x", [(b"x", b"a\x00")]),
])
def test_what_cannot_be_written_verbatim_is_not_sent(target: str, headers: Any) -> None:
    with pytest.raises(H1Error) as info:
        encode_request("GET", target, b"h:1", headers, b"")
    assert info.value.maybe_sent is False


def test_connection_close_and_idle_close_by_the_server_open_a_new_connection() -> None:
    closing = OK.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        if server.connections == 1:  # answers, says it closes
            await server.read_request(reader)
            writer.write(closing)
        elif server.connections == 2:  # answers, then closes while idle
            await server.read_request(reader)
            writer.write(OK)
            await writer.drain()
        else:
            await answer_each(reader, writer, server)

    async def go(server: Server) -> tuple[list[int], int]:
        p = pool(server)
        try:
            first = await p.request("GET", "/1", [], b"")
            second = await p.request("GET", "/2", [], b"")
            await asyncio.sleep(0.2)  # the server's close reaches the client
            third = await p.request("GET", "/3", [], b"")
            return [first[0], second[0], third[0]], server.connections
        finally:
            await p.close()

    statuses, connections = run(script, go)
    assert statuses == [200, 200, 200]
    assert connections == 3


def test_a_lost_answer_is_maybe_sent_and_never_retried() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        await server.read_request(reader)  # read, then close without answering

    async def go(server: Server) -> tuple[H1Error, int]:
        p = pool(server)
        try:
            with pytest.raises(H1Error) as info:
                await p.request("POST", "/v1/transit/keys/k/rotate", [], b"")
            return info.value, len(server.requests)
        finally:
            await p.close()

    err, seen = run(script, go)
    assert err.maybe_sent is True
    assert seen == 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}",  # cut short, then closed
    b"NOT HTTP AT ALL\r\n\r\n",
])
def test_a_broken_answer_is_maybe_sent(answer: bytes) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        await server.read_request(reader)
        writer.write(answer)
        await writer.drain()

    async def go(server: Server) -> H1Error:
        p = pool(server)
        try:
            with pytest.raises(H1Error) as info:
                await p.request("POST", "/v1/x", [], b"{}")
            return info.value
        finally:
            await p.close()

    assert run(script, go).maybe_sent is True


def test_a_late_answer_times_out_and_its_connection_is_not_reused() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            await server.read_request(reader)  # never answers; returns at the client's close
        else:
            await answer_each(reader, writer, server)

    async def go(server: Server) -> tuple[H1Error, int, int]:
        p = pool(server, read_timeout=0.3)
        try:
            with pytest.raises(H1Error) as info:
                await p.request("POST", "/slow", [], b"{}")
            async with asyncio.timeout(5):
                await server.closed.wait()  # the client closed that connection
            status = (await p.request("POST", "/next", [], b"{}"))[0]
            return info.value, status, server.connections
        finally:
            await p.close()

    err, status, connections = run(script, go)
    assert err.maybe_sent is True
    assert status == 200 and connections == 2


def test_a_cancelled_request_closes_its_connection() -> None:
    started = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            started.set()
            await server.read_request(reader)  # returns at the client's close
        else:
            await answer_each(reader, writer, server)

    async def go(server: Server) -> tuple[int, int]:
        p = pool(server)
        try:
            task = asyncio.ensure_future(p.request("POST", "/slow", [], b"{}"))
            async with asyncio.timeout(5):
                await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with asyncio.timeout(5):
                await server.closed.wait()
            status = (await p.request("POST", "/next", [], b"{}"))[0]
            return status, server.connections
        finally:
            await p.close()

    assert run(script, go) == (200, 2)


def test_at_the_limit_a_request_waits_for_a_free_connection_then_gives_up_unsent() -> None:
    release = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        while await server.read_request(reader) is not None:
            if server.requests[-1].startswith(b"POST /slow"):
                await release.wait()
            writer.write(OK)
            await writer.drain()

    async def go(server: Server) -> tuple[list[int], H1Error, int, list[bytes]]:
        p = pool(server, limit=1, pool_timeout=0.3)
        try:
            slow = asyncio.ensure_future(p.request("POST", "/slow", [], b"{}"))
            async with asyncio.timeout(5):
                while not server.requests:  # /slow holds the one connection
                    await asyncio.sleep(0.01)
            with pytest.raises(H1Error) as info:  # waits 0.3 s for the one connection
                await p.request("POST", "/too-late", [], b"{}")
            queued = asyncio.ensure_future(p.request("POST", "/queued", [], b"{}"))
            await asyncio.sleep(0.05)
            assert not queued.done()  # waiting for the connection /slow holds
            release.set()
            statuses = [(await slow)[0], (await queued)[0]]
            heads = [r.split(b" HTTP")[0] for r in server.requests]
            return statuses, info.value, server.connections, heads
        finally:
            await p.close()

    statuses, err, connections, heads = run(script, go)
    assert statuses == [200, 200]
    assert err.maybe_sent is False
    assert connections == 1
    assert heads == [b"POST /slow", b"POST /queued"]  # /too-late never left


def test_interim_chunked_and_head_answers() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        while (request := await server.read_request(reader)) is not None:
            if request.startswith(b"POST /continue"):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
            elif request.startswith(b"GET /chunked"):
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                             b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            elif request.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n")
            await writer.drain()

    async def go(server: Server) -> list[Any]:
        p = pool(server)
        try:
            return [await p.request("POST", "/continue", [], b"{}"),
                    await p.request("GET", "/chunked", [], b""),
                    await p.request("HEAD", "/v1/sys/health", [], b""),
                    await p.request("GET", "/chunked", [], b"")]
        finally:
            await p.close()

    cont, chunked, head, again = run(script, go)
    assert cont[0] == 200 and cont[2] == b"{}"
    assert chunked[2] == b"abcde" and again[2] == b"abcde"
    assert head[0] == 200 and head[2] == b"" and (b"content-length", b"1234") in head[1]


def test_an_extra_answer_is_not_taken_for_the_next_request() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        while await server.read_request(reader) is not None:
            if len(server.requests) == 1:
                writer.write(OK + OK.replace(b"{}", b"[]"))  # one request, two answers
            else:
                writer.write(OK)
            await writer.drain()

    async def go(server: Server) -> list[Any]:
        p = pool(server)
        try:
            first = await p.request("GET", "/1", [], b"")
            second = await p.request("GET", "/2", [], b"")
            return [first[2], second[2], server.connections]
        finally:
            await p.close()

    assert run(script, go) == [b"{}", b"{}", 2]


def test_nothing_listening_is_not_sent() -> None:
    port = free_port()

    async def go() -> H1Error:
        p = H1Pool("127.0.0.1", port, None, connect_timeout=2)
        try:
            with pytest.raises(H1Error) as info:
                await p.request("POST", "/v1/x", [], b"{}")
            return info.value
        finally:
            await p.close()

    assert asyncio.run(go()).maybe_sent is False


def test_an_answer_framed_only_by_the_close_is_maybe_sent() -> None:
    # over TLS a close cannot be told from a truncation, and the active always frames its
    # answers: a body that ends with the connection is not taken as a whole answer
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{\"ok\":1}")
        await writer.drain()

    async def go(server: Server) -> H1Error:
        p = pool(server)
        try:
            with pytest.raises(H1Error) as info:
                await p.request("POST", "/v1/x", [], b"{}")
            return info.value
        finally:
            await p.close()

    assert run(script, go).maybe_sent is True


def test_a_reused_connection_closed_before_its_answer_is_maybe_sent() -> None:
    # the first answer's state must not make the close look like an empty second answer
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await writer.drain()
        await server.read_request(reader)  # read the second request, then close: no answer

    async def go(server: Server) -> tuple[int, H1Error]:
        p = pool(server)
        try:
            first = await p.request("GET", "/1", [], b"")
            with pytest.raises(H1Error) as info:
                await p.request("POST", "/v1/transit/keys/k/rotate", [], b"")
            return first[0], info.value
        finally:
            await p.close()

    status, err = run(script, go)
    assert status == 200
    assert err.maybe_sent is True


def test_an_upgrade_answer_is_a_failure_not_a_crash() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n"
                     b"connection: upgrade\r\n\r\n")
        await writer.drain()
        await server.read_request(reader)

    async def go(server: Server) -> H1Error:
        p = pool(server)
        try:
            with pytest.raises(H1Error) as info:
                await p.request("GET", "/v1/x", [], b"")
            return info.value
        finally:
            await p.close()

    assert run(script, go).maybe_sent is True


def test_closing_the_pool_fails_waiters_without_opening_a_connection() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        await server.read_request(reader)
        await server.read_request(reader)  # never answers; returns at the close

    async def go(server: Server) -> tuple[H1Error, H1Error, int]:
        p = pool(server, limit=1)
        busy = asyncio.ensure_future(p.request("POST", "/busy", [], b"{}"))
        async with asyncio.timeout(5):
            while not server.requests:
                await asyncio.sleep(0.01)
        waiting = asyncio.ensure_future(p.request("POST", "/waiting", [], b"{}"))
        await asyncio.sleep(0.05)
        await p.close()
        errors = []
        for task in (busy, waiting):
            with pytest.raises(H1Error) as info:
                await task
            errors.append(info.value)
        await asyncio.sleep(0.1)
        return errors[0], errors[1], server.connections

    busy, waiting, connections = run(script, go)
    assert busy.maybe_sent is True  # it was written: outcome unknown
    assert waiting.maybe_sent is False
    assert connections == 1
