"""The HTTP/1.1 server protocol of every listener: httptools (llhttp) parses, the app is
called through ASGI 3 (one `Exchange` per request, transit/api/exchange.py), answers leave
corked at the end of the loop's turn (transit/api/cork.py). uvicorn's Server still runs the
listeners (sockets, signals, graceful shutdown); this replaces its HttpToolsProtocol, which
cost about twice as much per request (a task done-callback, an asyncio.Event, a keep-alive
timer armed and cancelled, two regex searches per answer header).

LIST: llhttp rejects methods it does not know, and hvac sends the literal `LIST` verb. When
a request starts with `LIST ` at a message boundary, the parser is fed `GET ` and the method
restored in the scope. A `LIST` in the middle of a pipelined chunk is not recognised
(clients such as hvac, requests and the Go client do not pipeline).

Upgrade (WebSocket, h2c) is not supported: such a request is answered as plain HTTP and the
connection closed after it.

Limits (`HttpLimits`, transit/api/limits.py; docs/configuration.md, Listener hardening):
- reading: a request's headers must arrive within `read_header_timeout` and the whole request
  within `read_timeout`, both counted from its first byte (a new connection: from the accept;
  one read while an earlier request is handled: from that answer, as Go reads it only then).
  A late header closes the connection without an answer, as Go does; a late body gets 408.
  The timer is armed only when a read ends inside a request, so the usual case, a small
  request in one read, arms none.
- headers: more than `max_header_bytes` before the end of the headers gets 431. Bytes are
  counted per read, so the cut comes within one read (at most 256 KiB) of the bound.
- idle keep-alive connections are closed after the config's `timeout_keep_alive`: one lazy
  timer per connection, re-armed only when it fires while the connection is busy.
- writing: with `write_timeout`, an answer not written by then (counted from when its request
  is handled) closes the connection, and aborts it LINGER later if the client still reads
  nothing.
- pipelining: at most MAX_PIPELINED requests wait behind the one being handled; then the rest
  of the connection is dropped and it is closed after their answers. An answer sent before
  its request's body was all read closes the connection (the rest of the body is drained for
  LINGER), as the next request could not be told from that body.
- handling: a request unanswered after `max_request_duration` gets 500 `context deadline
  exceeded` and its task is cancelled; a request whose client leaves before its body is in is
  cancelled too (it is never handled on a truncated body). One lazy timer per connection.
TLS: the client certificate presented in the handshake (transit/api/tls.py asks for one
without verifying it) is put in every request's scope as the ASGI TLS extension,
`scope["extensions"]["tls"]["client_cert_chain"]` (PEM strings; empty without a certificate),
for the TLS certificate auth method. Python's ssl gives the leaf only.
- connections over `max_connections` get 503 and are closed (reset beyond REFUSAL_SLACK more).
Refusals (and the 400 for a request that does not parse) are written, then the write side is
shut and the rest of the request drained for LINGER seconds, so the client reads the answer
instead of a reset (Go's closeWriteAndWait); one that comes while an earlier pipelined
request is being handled waits for its answer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.utils import get_local_addr, get_remote_addr

from transit.api.cork import CorkedWrites
from transit.api.exchange import Exchange
from transit.api.limits import REFUSAL_SLACK, HttpLimits
from transit.api.wire import JSON_HEADERS, error_body

LINGER = 1.0  # seconds
# Requests read ahead (pipelined) and queued behind the one being handled, per connection; a
# client that sends more gets the answers of these, then the connection is closed (memory
# stays bounded: Go reads one request at a time instead).
MAX_PIPELINED = 64
_EARLY = 0.002  # loop timers may fire up to a millisecond early
_DEADLINE = (500, "context deadline exceeded")
_BODY_TIMEOUT = (408, "timed out reading the request body")
_BAD_REQUEST = b"Invalid HTTP request received."  # uvicorn's words, kept for clients' sake
_DEFAULT_LIMITS = HttpLimits()
_ASGI = {"version": "3.0", "spec_version": "2.3"}


class VaultHttpToolsProtocol(asyncio.Protocol):
    """One client connection (uvicorn's Server makes one per accept)."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.app_state = app_state
        self.root_path: str = config.root_path
        self.timeout_keep_alive: float = config.timeout_keep_alive
        self._limits: HttpLimits = getattr(config, "http_limits", _DEFAULT_LIMITS)
        self._first_deadline = min(self._limits.read_header_timeout, self._limits.read_timeout)
        self.parser = httptools.HttpRequestParser(self)
        # answer the first of pipelined requests even when a later one says Connection: close
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.corked: CorkedWrites = None  # type: ignore[assignment]
        self.flow: FlowControl = None  # type: ignore[assignment]
        self._server: tuple[str, int] | None = None
        self._client: tuple[str, int] | None = None
        self._scheme = "http"
        self._tls: dict[str, Any] | None = None  # the ASGI TLS extension (TLS connections)
        # the request being read
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_100 = False
        self._at_boundary = True  # no request partly read
        self._list_pending = False
        self._headers_done = False  # the headers of the request being read are parsed
        self._header_bytes = 0
        self._discarding = False  # refused or over MAX_PIPELINED: reads are dropped
        self._raw_body = -1  # body bytes of an upgrade request still to come (-1: none)
        self._abort_timer: asyncio.TimerHandle | None = None
        # the exchanges: the last one read, the one whose body is being read, the one whose
        # app runs, the ones read after it
        self.cycle: Exchange | None = None
        self._reading: Exchange | None = None
        self.running: Exchange | None = None
        self.pipeline: deque[Exchange] = deque()
        self._request_started = 0.0
        # timers
        self._read_started = 0.0
        self._read_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._duration_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None  # answered everything, nothing read since
        self._idle_timer: asyncio.TimerHandle | None = None
        # a refusal waiting for the answer of an earlier pipelined request (`_refuse`)
        self._deferred_refusal: tuple[int, str] | None = None

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.connections.add(self)
        self.transport = transport
        self.corked = CorkedWrites(transport, self.loop)
        self.flow = FlowControl(transport)
        self._server = get_local_addr(transport)  # type: ignore[assignment]
        self._client = get_remote_addr(transport)
        self._tls = tls_extension(transport)
        if self._tls is not None:
            self._scheme = "https"
        cap = self._limits.max_connections
        if cap and len(self.connections) > cap:
            if len(self.connections) > cap + REFUSAL_SLACK:
                transport.abort()
            else:
                self._refuse(503, "too many open connections")
            return
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        for timer in (self._read_timer, self._write_timer, self._duration_timer,
                      self._idle_timer, self._abort_timer):
            if timer is not None:
                timer.cancel()
        self._read_timer = self._write_timer = self._duration_timer = self._idle_timer = None
        self._abort_timer = None
        if self._reading is not None and self._reading is self.running:
            self._cancel_request(None)  # its client left before its body was in
        for ex in (self.running, self.cycle):
            if ex is not None and not ex.response_complete:
                ex.disconnected = True
                ex.wake()
        if self.flow is not None:
            self.flow.resume_writing()
        if exc is None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        if not self._headers_done:
            self._header_bytes += len(data)
        if self._raw_body >= 0:
            self._on_raw_body(data)
            return
        if self._at_boundary and data[:5] == b"LIST ":
            data = b"GET " + data[5:]
            self._list_pending = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # llhttp stops at the end of an upgrade request's headers: read its body by its
            # Content-Length here (then the connection closes: keep_alive is off for it)
            if self._raw_body > 0:  # (on_message_complete left the request open for it)
                self._on_raw_body(data[exc.args[0]:])
            else:
                self._raw_body = -1
                self._discarding = True
            return
        except httptools.HttpParserError:
            reading = self._reading  # (its body did not parse)
            if reading is not None:
                if reading.response_complete:  # answered before its body: no second answer
                    self._discarding = True
                    self.close()
                    return
                if reading is self.running:  # never handled on a broken body
                    self._cancel_request(None)
                elif self.pipeline and self.pipeline[-1] is reading:  # never started
                    self.pipeline.pop()
                    reading.disconnected = True
            self._refuse(400, "")
            return
        if self._discarding:  # over MAX_PIPELINED (on_headers_complete): the rest is dropped
            self._cancel_read_timer()
            return
        if self._at_boundary:  # (each request's read timer ends with it: on_message_complete)
            self._header_bytes = 0
            return
        if self.transport.is_closing():
            return
        if self._read_timer is None:
            self._arm_read_timer()
        if not self._headers_done and self._header_bytes > self._limits.max_header_bytes:
            self._refuse(431, "request header fields too large")

    def _on_raw_body(self, data: bytes) -> None:
        """Body bytes of an upgrade request (llhttp does not parse them), fed to the parser
        callbacks as llhttp would."""
        data = data[:self._raw_body]
        self._raw_body -= len(data)
        if data:
            self.on_body(data)
        if not self._raw_body:
            self._raw_body = -1
            self._discarding = True  # nothing follows on this connection
            self.on_message_complete()
        elif self._read_timer is None:
            self._arm_read_timer()

    def eof_received(self) -> None:
        # the client's FIN: returning None lets uvloop close the transport at once, so what
        # is corked goes first. (Over TLS, a FIN without close_notify closes the connection
        # without telling the protocol; an answer completed in that turn is lost, as one
        # still being handled always was.)
        self.corked.flush()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def close(self) -> None:
        """Close the connection once what the exchanges wrote (still corked) is out."""
        self.corked.flush()
        self.transport.close()

    def close_after_answer(self, body_pending: bool) -> None:
        """An answer with `connection: close` is complete. When its request's body was not
        all read, the rest is read and dropped for up to LINGER after the write side is shut,
        so that the client reads the answer rather than a reset (Go's closeWriteAndWait)."""
        transport = self.transport
        if not body_pending or transport.is_closing() or not transport.can_write_eof():
            self.close()
            return
        self._discarding = True
        self.corked.refuse()  # what is written goes out; nothing may follow the EOF
        transport.write_eof()
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(LINGER, transport.close)

    def shutdown(self) -> None:
        """The server is stopping: close when idle, else after the answer being handled."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.close()
        else:
            cycle.keep_alive = False

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._at_boundary = False
        self._idle_since = None
        self._url = b""
        self._headers = []
        self._expect_100 = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace (RFC 9110 §5.5)
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_100 = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._header_bytes = 0
        if self._discarding:  # over MAX_PIPELINED: the rest of the read is dropped
            return
        if self.running is not None and len(self.pipeline) >= MAX_PIPELINED:
            self._discarding = True  # this request and the rest of the read are dropped
            self.pipeline[-1].keep_alive = False  # closed after the last one taken
            return
        parser = self.parser
        version = parser.get_http_version()
        if self._list_pending:
            self._list_pending = False
            method = "LIST"
        else:
            method = parser.get_method().decode("ascii")
        url = httptools.parse_url(self._url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        root = self.root_path
        scope: dict[str, Any] = {
            "type": "http", "asgi": _ASGI, "http_version": version,
            "server": self._server, "client": self._client, "scheme": self._scheme,
            "method": method, "root_path": root,
            "path": root + path if root else path,
            "raw_path": root.encode("ascii") + raw_path if root else raw_path,
            "query_string": url.query or b"", "headers": self._headers,
            "state": self.app_state.copy(),
        }
        if self._tls is not None:
            scope["extensions"] = {"tls": self._tls}
        keep_alive = version != "1.0" and parser.should_keep_alive()
        if parser.should_upgrade():  # (Upgrade is not offered: answered as plain HTTP)
            keep_alive = False
            self._raw_body = _declared_length(self._headers)
        ex = self.cycle = self._reading = Exchange(self, scope, keep_alive, self._expect_100)
        if self.running is None:
            self._start(ex)
        else:  # pipelined: handled after the one running
            self.flow.pause_reading()
            self.pipeline.append(ex)

    def on_body(self, body: bytes) -> None:
        ex = self._reading
        if ex is None or ex.response_complete:
            return
        ex.body.append(body)
        ex.body_size += len(body)
        if ex.body_size > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        ex.wake()

    def on_message_complete(self) -> None:
        if self._raw_body > 0:  # an upgrade request's body: read by `_on_raw_body`
            return
        ex = self._reading
        self._at_boundary = True
        self._headers_done = False
        self._reading = None
        if self._read_timer is not None:  # its read deadline is over (a request that
            self._cancel_read_timer()  # follows in the same read gets its own: data_received)
        if ex is None:
            return
        if ex.response_complete:  # answered before its body was in (e.g. a 413)
            if self.running is None and not self.pipeline:
                self._became_idle()
            return
        ex.more_body = False
        ex.wake()

    # -- exchanges -----------------------------------------------------------------------

    def _start(self, ex: Exchange) -> None:
        self.running = ex
        task = ex.task = self.loop.create_task(ex.run(self.app))
        self.tasks.add(task)
        if self._limits.write_timeout:  # from when it is handled to the end of its answer
            if self._write_timer is not None:
                self._write_timer.cancel()
            self._write_timer = self.loop.call_later(self._limits.write_timeout,
                                                     self._on_write_timer)
        self._request_started = self.loop.time()
        if self._duration_timer is None:
            self._duration_timer = self.loop.call_at(
                self._request_started + self._limits.max_request_duration,
                self._on_duration_timer)

    def on_response_complete(self, ex: Exchange) -> None:
        """`ex` sent its whole answer (still corked: it leaves at the end of the turn)."""
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self.server_state.total_requests += 1
        if self.running is ex:
            self.running = None
        if self._deferred_refusal is not None and not self.pipeline:
            # the answers of the requests read before it are out: the refusal follows them
            status, message = self._deferred_refusal
            self._deferred_refusal = None
            self._refuse(status, message)
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._start(self.pipeline.popleft())
        elif self._at_boundary:
            self._became_idle()
        if not self._at_boundary and not self._discarding:
            # a request partly read meanwhile: its read deadlines start now (Go reads the
            # next request only after answering; `_on_read_timer` waits for this)
            self._cancel_read_timer()
            self._arm_read_timer()

    def _became_idle(self) -> None:
        """Everything read is answered: the idle keep-alive timeout runs from now."""
        if self._discarding or self.transport.is_closing():
            return
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(self._idle_since + self.timeout_keep_alive,
                                                 self._on_idle_timer)

    def _cancel_request(self, answer: tuple[int, str] | None) -> bool:
        """Cancel the task of the request being handled, to be answered `answer` (None: no
        answer, the connection is gone or going). False if no request is being handled."""
        ex = self.running
        if ex is None or ex.task is None or ex.task.done() or ex.response_complete:
            return False
        if self.flow.write_paused:  # the client reads nothing: no answer can reach it
            answer = None
            self.transport.abort()
        elif ex.response_started:  # too late to answer: cut the answer short
            answer = None
            self.close()
        if answer is None:
            ex.disconnected = True  # nothing more is written for it
        ex.cancelled = True
        ex.cancel_answer = answer
        if ex.started:
            ex.task.cancel()
        # else its task has not run yet: it answers without calling the app (a task
        # cancelled before its first step would never run its `finally`)
        return True

    # -- timers --------------------------------------------------------------------------

    def _arm_read_timer(self) -> None:
        """The read deadlines of the request being read (or of a new connection's first) run
        from now."""
        self._read_started = self.loop.time()
        self._read_timer = self.loop.call_at(self._read_started + self._first_deadline,
                                             self._on_read_timer)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _on_read_timer(self) -> None:
        self._read_timer = None
        if self._discarding or self.transport.is_closing():
            return
        if self.running is not None and self.running is not self._reading:
            return  # a later request, partly read: on_response_complete re-arms it
        body = self._headers_done and not self._at_boundary
        limits = self._limits
        due = self._read_started + (limits.read_timeout if body else limits.read_header_timeout)
        if self.loop.time() < due - _EARLY:
            self._read_timer = self.loop.call_at(due, self._on_read_timer)
            return
        if not body:  # no request yet, or its headers are late: close, no answer (Go)
            self.close()
            return
        self._discarding = True
        if self.running is self.cycle and self._cancel_request(_BODY_TIMEOUT):
            # the app answers 408 and the connection closes; in case it never does:
            self._read_timer = self.loop.call_later(max(LINGER, limits.read_header_timeout),
                                                    self.close)
        else:
            self.close()

    def _on_write_timer(self) -> None:
        """The answer was not written in time: close, and abort if the client still has not
        read what is buffered LINGER later (a close waits for the buffer to drain)."""
        self._write_timer = None
        self.close()
        if self._abort_timer is None:
            self._abort_timer = self.loop.call_later(LINGER, self.transport.abort)

    def _on_idle_timer(self) -> None:
        # uvloop runs due timers before the turn-end flush: `close` sends what is corked
        self._idle_timer = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return  # busy: the next answer that leaves it idle arms it again
        due = since + self.timeout_keep_alive
        if self.loop.time() < due - _EARLY:
            self._idle_timer = self.loop.call_at(due, self._on_idle_timer)
        else:
            self.close()

    def _on_duration_timer(self) -> None:
        self._duration_timer = None
        ex = self.running
        if ex is None or ex.task is None or ex.task.done():
            return  # idle: the next request arms it again
        due = self._request_started + self._limits.max_request_duration
        if self.loop.time() < due - _EARLY:
            self._duration_timer = self.loop.call_at(due, self._on_duration_timer)
            return
        self._cancel_request(_DEADLINE)

    # -- refusals ------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` (400: plain text, as to a request that does not parse; else a
        Vault error body with `message`) and close (see the module docstring). While
        requests read before it (pipelined) are still being handled or queued, their answers
        go out first and the refusal after them, as Go (which reads the next request only
        after answering) has it; meanwhile reads are dropped (each of those requests is
        bounded by max_request_duration)."""
        transport = self.transport
        self._discarding = True
        self._cancel_read_timer()
        running = self.running
        if (running is not None and not running.response_complete and not running.disconnected
                and not transport.is_closing()):
            self._deferred_refusal = (status, message)  # sent by on_response_complete
            return
        if transport.is_closing() or self.corked.refused:  # closed, or its write side shut
            return
        self.pipeline.clear()
        for ex in (self.cycle, running):  # the one read, the one running
            if ex is not None and not ex.response_complete:
                ex.disconnected = True  # a pipelined answer must not follow this one
        self.corked.refuse()  # what was written goes first; nothing more after it
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        if status == 400:
            body = _BAD_REQUEST
            head.append(b"content-type: text/plain; charset=utf-8\r\n")
        else:
            body = error_body([message])
            for name, value in JSON_HEADERS:
                head += [name, b": ", value, b"\r\n"]
        head += [b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body]
        transport.write(b"".join(head))
        if transport.can_write_eof():
            transport.write_eof()
            self._read_timer = self.loop.call_later(LINGER, transport.close)
        else:
            transport.close()


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The body length an upgrade request declares (llhttp leaves its body unparsed);
    HttpParserError (a 400) for a chunked one, which is not supported."""
    length = 0
    for name, value in headers:
        if name == b"transfer-encoding":
            raise httptools.HttpParserError("a chunked body on an upgrade request")
        if name == b"content-length":
            if not value.isdigit():
                raise httptools.HttpParserError("invalid Content-Length")
            length = int(value)
    return length


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection (None when it is not TLS): the client's
    certificate as `client_cert_chain` (PEM, leaf only; [] when it sent none)."""
    sslobj = transport.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    try:
        der = sslobj.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        der = None
    return {"client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else []}
