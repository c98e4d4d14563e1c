"""uvicorn's httptools protocol, taught Vault's `LIST` verb and Go's http.Server limits.

LIST: llhttp (behind httptools) rejects methods it does not know, and hvac sends the literal
`LIST` verb. h11 would accept it but is about three times slower, so instead: when a request
starts with `LIST ` at a message boundary, feed the parser `GET ` and restore the method in
the ASGI scope before the app task runs. A `LIST` in the middle of a pipelined chunk is not
recognised (clients such as hvac, requests and the Go client do not pipeline).

Limits (`HttpLimits`, transit/api/limits.py; docs/configuration.md, Listener hardening):
- reading: a request's headers must arrive within `read_header_timeout` and the whole request
  within `read_timeout`, both counted from its first byte (a new connection: from the accept).
  A late header closes the connection without an answer, as Go does; a late body gets 408.
  The timer is armed only when a read ends inside a request, so the usual case, a small
  request in one read, arms none.
- headers: more than `max_header_bytes` before the end of the headers gets 431. Bytes are
  counted per read, so the cut comes within one read (at most 256 KiB) of the bound.
- idle keep-alive connections: uvicorn's `timeout_keep_alive`.
- writing: with `write_timeout`, an answer not written by then closes the connection.
- handling: a request unanswered after `max_request_duration` gets 500 `context deadline
  exceeded` and its task is cancelled; a request whose client leaves before its body is in is
  cancelled too (it is never handled on a truncated body). One lazy timer per connection,
  re-armed only when it fires during a younger request.
TLS: the client certificate presented in the handshake (transit/api/tls.py asks for one
without verifying it) is put in every request's scope as the ASGI TLS extension,
`scope["extensions"]["tls"]["client_cert_chain"]` (PEM strings; empty without a certificate),
for the TLS certificate auth method. Python's ssl gives the leaf only.
- connections over `max_connections` get 503 and are closed (reset beyond REFUSAL_SLACK more).
Refusals are written, then the write side is shut and the rest of the request drained for
LINGER seconds, so the client reads the answer instead of a reset (Go's closeWriteAndWait);
one that comes while an earlier pipelined request is being handled waits for its answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from transit.api.limits import REFUSAL_SLACK, HttpLimits
from transit.api.wire import JSON_HEADERS, error_body, sized

LINGER = 1.0  # seconds
_EARLY = 0.002  # loop timers may fire up to a millisecond early
_DEADLINE = (500, "context deadline exceeded")
_BODY_TIMEOUT = (408, "timed out reading the request body")
_DEFAULT_LIMITS = HttpLimits()


class VaultHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits: HttpLimits = getattr(self.config, "http_limits", _DEFAULT_LIMITS)
        self._first_deadline = min(self._limits.read_header_timeout, self._limits.read_timeout)
        self._inner_app = self.app
        self.app = self._guarded_app
        self._at_boundary = True  # no request partly read
        self._list_pending = False
        self._headers_done = False  # the headers of the request being read are parsed
        self._header_bytes = 0
        self._discarding = False  # refused: reads are dropped until the close
        self._read_started = 0.0
        self._read_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        # the request being handled, for max_request_duration and cancellation
        self._request_task: asyncio.Task[None] | None = None
        self._request_cycle: RequestResponseCycle | None = None
        self._request_started = 0.0
        self._duration_timer: asyncio.TimerHandle | None = None
        self._cancelled: asyncio.Task[None] | None = None
        self._cancel_answer: tuple[int, str] | None = None
        self._tls: dict[str, Any] | None = None  # the ASGI TLS extension (TLS connections)
        self._corked: CorkedWrites | None = None  # the transport as request cycles see it
        # a refusal waiting for the answer of an earlier pipelined request (`_refuse`)
        self._deferred_refusal: tuple[int, str] | None = None

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = tls_extension(transport)
        self._corked = CorkedWrites(transport, self.loop)
        cap = self._limits.max_connections
        if cap and len(self.connections) > cap:
            if len(self.connections) > cap + REFUSAL_SLACK:
                transport.abort()
            else:
                self._refuse(503, "too many open connections")
            return
        self._read_started = self.loop.time()
        self._read_timer = self.loop.call_at(self._read_started + self._first_deadline,
                                             self._on_read_timer)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._read_timer, self._write_timer, self._duration_timer):
            if timer is not None:
                timer.cancel()
        self._read_timer = self._write_timer = self._duration_timer = None
        if not self._at_boundary and self._headers_done:  # the client left mid-body
            self._cancel_request(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        # a pipelined answer still corked goes before anything uvicorn writes to the
        # transport itself (its 400 for a malformed request)
        self._flush_corked()
        if not self._headers_done:
            self._header_bytes += len(data)
        if self._at_boundary and data[:5] == b"LIST ":
            data = b"GET " + data[5:]
            self._list_pending = True
        super().data_received(data)
        if self._at_boundary:
            self._header_bytes = 0
            if self._read_timer is not None:
                if self.cycle is not None:  # the first request is in: its deadline is over
                    self._read_timer.cancel()
                    self._read_timer = None
            elif (self.timeout_keep_alive_task is None and self.cycle is not None
                  and self.cycle.response_complete and not self.pipeline
                  and not self.transport.is_closing()):
                # bytes that began no request (a stray CRLF) cancelled the idle timer
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler)
            return
        if self.transport.is_closing():  # e.g. uvicorn answered 400 to a malformed request
            return
        if self._read_timer is None:
            self._read_started = self.loop.time()
            self._read_timer = self.loop.call_at(self._read_started + self._first_deadline,
                                                 self._on_read_timer)
        if not self._headers_done and self._header_bytes > self._limits.max_header_bytes:
            self._refuse(431, "request header fields too large")

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._at_boundary = False
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._header_bytes = 0
        if self._limits.write_timeout and self._write_timer is None:
            self._write_timer = self.loop.call_later(self._limits.write_timeout,
                                                     self._on_write_timer)
        # The scope dict is shared with the request cycle whose task has been created but
        # not run yet, so the method can still be put back.
        if self._list_pending:
            self._list_pending = False
            scope = self.scope
            super().on_headers_complete()
            scope["method"] = "LIST"
        else:
            super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and self._corked is not None:
            cycle.transport = self._corked  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._at_boundary = True
        self._headers_done = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # (its bytes leave at the end of this turn of the event loop: CorkedWrites)
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._deferred_refusal is not None and not self.pipeline:
            # the answers of the requests read before it are out: the refusal follows them
            status, message = self._deferred_refusal
            self._deferred_refusal = None
            self._refuse(status, message)
        super().on_response_complete()
        if not self._at_boundary:  # the next request is being read: its deadline applies
            self._unset_keepalive_if_required()

    # -- request tasks -------------------------------------------------------------------

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn 0.55's, keeping the task and its start for max_request_duration
        if self.config.reset_contextvars:
            task = self.loop.create_task(cycle.run_asgi(app), context=contextvars.Context())
        else:
            task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        self._request_task = task
        self._request_cycle = cycle
        self._request_started = self.loop.time()
        if self._duration_timer is None:
            self._duration_timer = self.loop.call_at(
                self._request_started + self._limits.max_request_duration,
                self._on_duration_timer)

    async def _guarded_app(self, scope: Any, receive: Any, send: Any) -> None:
        """The app, answering for it when this protocol cancelled it (`_cancel_request`)."""
        try:
            await self._inner_app(scope, receive, send)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task is not self._cancelled:
                raise
            self._cancelled = None
            if task.uncancel():  # cancelled by someone else as well (shutdown)
                raise
            answer = self._cancel_answer
            if answer is not None:
                status, message = answer
                headers = list(JSON_HEADERS)
                if status == 408:
                    headers.append((b"connection", b"close"))
                body = error_body([message])
                await send({"type": "http.response.start", "status": status,
                            "headers": sized(headers, body)})
                await send({"type": "http.response.body", "body": body})

    def _cancel_request(self, answer: tuple[int, str] | None) -> bool:
        """Cancel the task of the request being handled, to be answered `answer` (None: no
        answer, the connection is gone or going). False if no request is being handled."""
        task, cycle = self._request_task, self._request_cycle
        if task is None or task.done() or cycle is None or cycle.response_complete:
            return False
        if cycle.response_started:  # too late to answer: cut the answer short
            answer = None
            self._close()
        if answer is None:
            cycle.disconnected = True  # uvicorn adds no answer of its own
        self._cancelled = task
        self._cancel_answer = answer
        task.cancel()
        return True

    # -- timers --------------------------------------------------------------------------

    def _on_read_timer(self) -> None:
        self._read_timer = None
        if self._discarding or self.transport.is_closing():
            return
        body = self._headers_done and not self._at_boundary
        limits = self._limits
        due = self._read_started + (limits.read_timeout if body else limits.read_header_timeout)
        if self.loop.time() < due - _EARLY:
            self._read_timer = self.loop.call_at(due, self._on_read_timer)
            return
        if not body:  # no request yet, or its headers are late: close, no answer (Go)
            self._close()
            return
        self._discarding = True
        if self._request_cycle is self.cycle and self._cancel_request(_BODY_TIMEOUT):
            # the app answers 408 and uvicorn closes; in case it never does:
            self._read_timer = self.loop.call_later(max(LINGER, limits.read_header_timeout),
                                                    self._close)
        else:
            self._close()

    def _on_write_timer(self) -> None:
        self._write_timer = None
        self._close()

    def _flush_corked(self) -> None:
        """Send what the request cycles wrote and is still corked (CorkedWrites), now."""
        if self._corked is not None:
            self._corked.flush()

    def _close(self) -> None:
        """Close the connection once what the request cycles wrote (still corked) is out."""
        self._flush_corked()
        self.transport.close()

    def shutdown(self) -> None:
        # uvicorn closes an idle connection at once: its last answer may still be corked
        self._flush_corked()
        super().shutdown()

    def timeout_keep_alive_handler(self) -> None:
        # uvloop runs due timers before the turn-end flush: a turn as long as the idle
        # timeout (a stalled process) would otherwise close over a corked answer
        if not self.transport.is_closing():
            self._close()

    def eof_received(self) -> None:
        # the client's FIN: uvicorn lets uvloop close the transport at once (it returns
        # None), which would drop an answer still corked. (Over TLS, a FIN without
        # close_notify closes the connection without telling the protocol; an answer
        # completed in that turn is lost, as one still being handled always was.)
        self._flush_corked()

    def _on_duration_timer(self) -> None:
        self._duration_timer = None
        task = self._request_task
        if task is None or task.done():
            return  # idle: the next request arms it again
        due = self._request_started + self._limits.max_request_duration
        if self.loop.time() < due - _EARLY:
            self._duration_timer = self.loop.call_at(due, self._on_duration_timer)
            return
        self._cancel_request(_DEADLINE)

    # -- refusals ------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` and close (see the module docstring). While requests read before
        it (pipelined) are still being handled or queued, their answers go out first and the
        refusal after them, as Go (which reads the next request only after answering) has
        it; meanwhile reads are dropped (each of those requests is bounded by
        max_request_duration)."""
        transport = self.transport
        self._discarding = True
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        running = self._request_cycle
        if (running is not None and not running.response_complete and not running.disconnected
                and not transport.is_closing()):
            self._deferred_refusal = (status, message)  # sent by on_response_complete
            return
        self.pipeline.clear()
        for cycle in (self.cycle, self._request_cycle):  # the one read, the one running
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # a pipelined answer must not follow this one
        if self._corked is not None:
            self._corked.refuse()  # what was written goes first; nothing more after it
        body = error_body([message])
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        for name, value in JSON_HEADERS:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-length: ", str(len(body)).encode(), b"\r\nconnection: close\r\n\r\n",
                 body]
        transport.write(b"".join(head))
        if transport.can_write_eof():
            transport.write_eof()
            self._read_timer = self.loop.call_later(LINGER, transport.close)
        else:
            transport.close()


class CorkedWrites:
    """A connection's transport as its request cycles see it: what they write in one turn of
    the event loop goes out in one `write` at the end of that turn.

    - An answer's status line and headers leave in the same send(2) and TCP segment as its
      body instead of one each (uvicorn writes them separately; the second send cost about a
      tenth of an encrypt's CPU).
    - The answers that the requests of many connections completed in the same turn leave
      back to back at its end, not each between the next requests' work. A client waiting
      on several connections is then woken once for the batch instead of once per answer:
      on a 2-vCPU VM this took a dev node from 76-78 to 58-59 µs of CPU per encrypt (system
      time 15-17 → 6 µs) and from about 13,000 to 17,000 req/s
      (bench/results/2026-12-08-encrypt-cost.md). An answer waits for the rest of the turn:
      at most the handling of the requests read with it.
    - Whatever the protocol writes or closes on the raw transport (refusals, timeouts,
      uvicorn's 400 and idle close, shutdown, the client's FIN) flushes this first, so
      answers keep their order and none completed is dropped."""

    __slots__ = ("_transport", "_loop", "_chunks", "_scheduled", "_refused")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._chunks: list[bytes] = []
        self._scheduled = False
        self._refused = False

    def refuse(self) -> None:
        """The protocol is answering a refusal itself and closing: send what is pending now
        and drop every later write (the write side may be shut already)."""
        self.flush()
        self._refused = True

    def write(self, data: bytes) -> None:
        if not data or self._refused:
            return
        self._chunks.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn_ended)

    def _turn_ended(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        chunks = self._chunks
        if chunks:
            self._chunks = []
            if self._transport.is_closing():  # gone meanwhile: nobody to read it
                return
            self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


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
