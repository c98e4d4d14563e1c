"""One HTTP/1.1 request and its answer, as the app sees them through ASGI 3: `receive` hands
over the body, `send` frames the answer (status line, headers, Content-Length or chunked).

The connection (transit/api/protocol.py) parses the request and feeds the body in; an
exchange writes its answer to the connection's corked writes (transit/api/cork.py). It
follows uvicorn's RequestResponseCycle message for message, at less cost per request: no
asyncio.Event (a future only when `receive` has to wait), header checks in two regex searches
instead of two per header, and no done-callback on the task.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from transit.api.cork import CorkedWrites
from transit.api.wire import JSON_HEADERS, error_body, sized

log = logging.getLogger("uvicorn.error")  # where uvicorn logged an app's exception

# RFC 9110 token characters for names; no control characters but tab in values
_BAD_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DISCONNECT = {"type": "http.disconnect"}


class Connection(Protocol):
    """What an exchange uses of its connection (transit/api/protocol.py)."""

    transport: asyncio.Transport
    corked: CorkedWrites
    flow: FlowControl
    loop: asyncio.AbstractEventLoop
    server_state: Any  # uvicorn's ServerState: `default_headers`
    tasks: set[asyncio.Task[None]]  # the server's request tasks

    def close(self) -> None: ...

    def close_after_answer(self, body_pending: bool) -> None: ...

    def on_response_complete(self, ex: Exchange) -> None: ...


class Exchange:
    """A request read by the connection and the answer the app sends for it."""

    __slots__ = (
        "conn", "scope", "keep_alive", "head_only", "task", "started",
        "body", "body_size", "more_body", "_news", "_waiter", "waiting_for_100_continue",
        "disconnected", "response_started", "response_complete", "chunked", "remaining",
        "cancelled", "cancel_answer",
    )

    def __init__(self, conn: Connection, scope: dict[str, Any], keep_alive: bool,
                 expect_100_continue: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.head_only = scope["method"] == "HEAD"
        self.task: asyncio.Task[None] | None = None
        self.started = False  # its task has begun to run
        # the request body: what was read and not yet received by the app
        self.body: list[bytes] = []
        self.body_size = 0
        self.more_body = True
        self._news = False  # body, its end or the disconnect came since the last receive
        self._waiter: asyncio.Future[None] | None = None
        self.waiting_for_100_continue = expect_100_continue
        # the answer
        self.disconnected = False  # nothing more is written (the client left, or refused)
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.remaining = 0  # of the Content-Length
        # cancelled by the connection (max_request_duration, a late body, the client left)
        self.cancelled = False
        self.cancel_answer: tuple[int, str] | None = None

    def wake(self) -> None:
        """Tell `receive` something came: body, its end, the disconnect or the answer's end."""
        self._news = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- running the app -----------------------------------------------------------------

    async def run(self, app: Any) -> None:
        conn = self.conn
        self.started = True
        try:
            if self.cancelled:  # by the connection before its task ran: no app call
                self.cancelled = False
                if self.cancel_answer is not None:
                    await self._answer_error(*self.cancel_answer)
                return
            try:
                await app(self.scope, self.receive, self.send)
            except asyncio.CancelledError:
                if not self.cancelled:
                    conn.close()  # e.g. the server's graceful shutdown ran out of time
                    raise
                self.cancelled = False
                task = self.task
                if task is not None and task.uncancel():  # cancelled by someone else too
                    conn.close()
                    raise
                if self.cancel_answer is not None:
                    await self._answer_error(*self.cancel_answer)
            except BaseException as exc:
                log.error("Exception in ASGI application\n", exc_info=exc)
                if not self.response_started:
                    self.keep_alive = False
                    await self._answer_error(500, "internal error")
                else:
                    conn.close()
            else:
                if not self.disconnected:
                    if not self.response_started:
                        log.error("ASGI callable returned without starting response.")
                        self.keep_alive = False
                        await self._answer_error(500, "internal error")
                    elif not self.response_complete:
                        log.error("ASGI callable returned without completing response.")
                        conn.close()
        finally:
            # (a task cancelled before its first step would never get here: the connection
            # does not cancel those: transit/api/protocol.py, `_cancel_request`)
            conn.tasks.discard(self.task)

    async def _answer_error(self, status: int, message: str) -> None:
        headers = list(JSON_HEADERS)
        if status == 408:
            headers.append((b"connection", b"close"))
        body = error_body([message])
        await self.send({"type": "http.response.start", "status": status,
                         "headers": sized(headers, body)})
        await self.send({"type": "http.response.body", "body": body})

    # -- ASGI ----------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        conn = self.conn
        if self.waiting_for_100_continue and not conn.transport.is_closing():
            conn.corked.write(_CONTINUE)
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            conn.flow.resume_reading()
            if not self._news:
                waiter = self._waiter
                if waiter is None or waiter.done():  # (a second receiver shares it)
                    waiter = self._waiter = conn.loop.create_future()
                await waiter
            self._news = False
        if self.disconnected or self.response_complete:
            return _DISCONNECT
        body = self.body
        self.body = []
        self.body_size = 0
        return {"type": "http.request", "body": b"".join(body), "more_body": self.more_body}

    async def send(self, message: dict[str, Any]) -> None:
        conn = self.conn
        if conn.flow.write_paused and not self.disconnected:
            await conn.flow.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got "
                                   f"'{kind}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            if self.more_body:  # answered before its body was all read: the rest of the
                self.keep_alive = False  # connection could not be told from that body
            conn.corked.write(self._head(message["status"], message.get("headers", ())))
        elif not self.response_complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got "
                                   f"'{kind}'.")
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            if self.head_only:
                self.remaining = 0
            elif self.chunked:
                chunk = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
                conn.corked.write(chunk if more_body else chunk + b"0\r\n\r\n")
            else:
                if len(body) > self.remaining:
                    raise RuntimeError("Response content longer than Content-Length")
                self.remaining -= len(body)
                conn.corked.write(body)
            if not more_body:
                if self.remaining:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.wake()
                if not self.keep_alive:
                    conn.close_after_answer(self.more_body)
                conn.on_response_complete(self)
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response "
                               "already completed.")

    def _head(self, status: int, headers: Any) -> bytes:
        """The status line and headers; sets the framing (Content-Length or chunked) and
        keep-alive from them. RuntimeError for a header that would break the framing."""
        out = [STATUS_LINE[status]]
        for name, value in self.conn.server_state.default_headers:
            out += (name, b": ", value, b"\r\n")
        names: list[bytes] = []
        values: list[bytes] = []
        length: bytes | None = None
        close = False
        for name, value in headers:
            names.append(name)
            values.append(value)
            name = name.lower()
            if name == b"content-length":
                if length is None and not self.chunked:
                    length = value
            elif name == b"transfer-encoding":
                if value.lower() == b"chunked":
                    self.chunked = True
                    length = None
            elif name == b"connection" and b"close" in (
                    t.strip() for t in value.lower().split(b",")):
                self.keep_alive = False
                close = True
            out += (name, b": ", value, b"\r\n")
        if _BAD_NAME.search(b"".join(names)):
            raise RuntimeError("Invalid HTTP header name.")
        if _BAD_VALUE.search(b"".join(values)):
            raise RuntimeError("Invalid HTTP header value.")
        if length is not None:
            self.remaining = int(length)
        if not self.keep_alive and not close:
            out.append(b"connection: close\r\n")
        if (length is None and not self.chunked and not self.head_only
                and status not in (204, 304)):
            self.chunked = True
            out.append(b"transfer-encoding: chunked\r\n")
        out.append(b"\r\n")
        return b"".join(out)
