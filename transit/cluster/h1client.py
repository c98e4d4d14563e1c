"""A small HTTP/1.1 client for request forwarding: keep-alive connections over TLS, one
request at a time on each (no pipelining), answers parsed by httptools (llhttp, the parser of
our own listener), and never a retry.

Why not a general-purpose client: a forwarded encrypt is a 300-byte request and answer, and a
general client's per-request machinery (request and response objects, header multidicts, URL
objects, middlewares, payload registries, timers) cost the standby more CPU than the TLS and
the socket writes themselves: aiohttp 3.14 about 45 µs of Python per forward, this client
about a quarter of that (bench/forward_transports.py, bench/results/). Headers go out as the
bytes they arrived as; nothing is added but `Host` and `Content-Length`.

Failure semantics, which the forwarding gate depends on (never replay a write whose outcome is
unknown): `H1Error.maybe_sent` is False only when no byte of the request was written (connect,
TLS handshake, waiting for a free connection, a request that cannot be written verbatim);
anything later - a lost connection, a late or malformed answer, a cancelled wait - is True,
and the connection it happened on is aborted (socket and pool slot freed at once), never
reused. Answers: Content-Length or chunked; one framed by the close alone is a failure
(maybe_sent), since over TLS a close without close_notify cannot be told from a truncation and
the active's listener always frames its answers; 1xx interim answers are skipped; a HEAD
answer ends with its headers (its connection is then closed, as llhttp would wait for the
body Content-Length announces); 101 is a failure.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
from typing import Any, cast

import httptools

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]

# A request line target and header fields that could not be written verbatim (they would end
# the line or the head early: request smuggling) - refused, nothing is sent.
_UNSAFE = re.compile(rb"[\r\n\x00]")
_UNSAFE_TARGET = re.compile(rb"[\x00-\x20\x7f]")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


class H1Error(Exception):
    """The request failed; `maybe_sent`: whether any of it may have reached the server."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


def encode_request(method: str, target: str, host: bytes, headers: Headers, body: bytes
                   ) -> bytes:
    """The request's bytes; H1Error (not sent) for anything that cannot go out verbatim."""
    m = method.encode("ascii", "replace")
    t = target.encode("latin-1", "replace")
    if _TOKEN.fullmatch(m) is None:
        raise H1Error(f"cannot send the method {method!r}", maybe_sent=False)
    if not t or _UNSAFE_TARGET.search(t) is not None:
        raise H1Error(f"cannot send the request target {target!r}", maybe_sent=False)
    parts = [m, b" ", t, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None or _UNSAFE.search(value) is not None:
            raise H1Error(f"cannot send the header {name!r} verbatim", maybe_sent=False)
        parts += [name, b": ", value, b"\r\n"]
    if body or m in _BODY_METHODS:
        parts += [b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body]
    else:
        parts.append(b"\r\n")
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `waiter` is the answer of the request in flight."""

    def __init__(self, pool: H1Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.head_only = False
        self.status = 0
        self.headers: Headers = []
        self.body: list[bytes] = []
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        why = f"{type(exc).__name__}: {exc}" if exc else "closed by the server"
        self._fail(H1Error(f"the connection ended before the answer did ({why})",
                           maybe_sent=True))

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing asked: a server talking out of turn
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(H1Error(f"invalid answer: {type(exc).__name__}: {exc}",
                               maybe_sent=True))

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.waiter is None:  # a second answer in the chunk that ended the first
            self.abort()
        self.status = 0
        self.headers = []
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.head_only and self.status >= 200:
            # llhttp would wait for the body Content-Length announces; a HEAD answer has none
            self._answer(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer: the real one follows
            return
        if self.waiter is not None:
            self._answer(keep_alive=self.parser.should_keep_alive())

    # -- the request ---------------------------------------------------------------------

    def _answer(self, *, keep_alive: bool) -> None:
        waiter, self.waiter = self.waiter, None
        body = self.body
        answer = (self.status, self.headers, body[0] if len(body) == 1 else b"".join(body))
        self.status, self.headers, self.body = 0, [], []
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)
        if keep_alive and not self.closed:
            self.pool._release(self)
        else:
            self.close()

    def _fail(self, exc: H1Error) -> None:
        """The request in flight failed: its connection is dropped at once (`abort`: nothing
        still buffered is sent, the socket and its pool slot go together)."""
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    async def send(self, data: bytes, *, head_only: bool, timeout: float) -> Answer:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise H1Error("the connection closed before the request was written",
                          maybe_sent=False)
        loop = self.pool.loop
        waiter: asyncio.Future[Answer] = loop.create_future()
        self.waiter = waiter
        self.head_only = head_only
        self.transport.write(data)
        timer = loop.call_later(timeout, self._late, waiter, timeout)
        try:
            return await waiter
        except asyncio.CancelledError:  # the caller gave up: the answer would come to nobody
            if self.waiter is waiter:  # (once answered, the connection may serve another)
                self._fail(H1Error("cancelled", maybe_sent=True))
            raise
        finally:
            timer.cancel()

    def _late(self, waiter: asyncio.Future[Answer], timeout: float) -> None:
        if self.waiter is waiter:
            self._fail(H1Error(f"no answer within {timeout:g} s", maybe_sent=True))

    def close(self) -> None:
        """An orderly close, after a complete answer (`Connection: close`, HEAD)."""
        self._forget()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self._forget()
        if self.transport is not None:
            self.transport.abort()

    def _forget(self) -> None:
        """Out of the pool's count, once (the pool ignores one it never counted)."""
        if not self.closed:
            self.closed = True
            self.pool._lost(self)


class H1Pool:
    """Keep-alive connections to one server: at most `limit` open, an idle one reused
    last-in-first-out (and only within `keepalive` seconds of its last answer, well inside
    the server's own idle timeout). Timeouts: `connect_timeout` for TCP and the TLS handshake
    of a new connection, `pool_timeout` for waiting for a free one when `limit` are busy,
    `read_timeout` for an answer once the request is written."""

    def __init__(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None, *,
        server_hostname: str | None = None,
        limit: int = 100, connect_timeout: float = 5.0, read_timeout: float = 90.0,
        pool_timeout: float = 90.0, keepalive: float = 15.0,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.host_header = (f"[{host}]:{port}" if ":" in host else f"{host}:{port}").encode()
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_timeout = pool_timeout
        self.keepalive = keepalive
        self._idle: list[_Connection] = []
        self._open = 0  # connections open or being opened
        self._all: set[_Connection] = set()
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = (
            collections.deque())
        self._closed = False

    async def request(self, method: str, target: str, headers: Headers, body: bytes
                      ) -> Answer:
        """Send one request and return (status, headers, body) of its answer."""
        data = encode_request(method, target, self.host_header, headers, body)
        conn = await self._acquire()
        return await conn.send(data, head_only=method == "HEAD", timeout=self.read_timeout)

    # -- the pool ------------------------------------------------------------------------

    async def _acquire(self) -> _Connection:
        deadline = self.loop.time() + self.pool_timeout
        while True:
            if self._closed:
                raise H1Error("the client is closed", maybe_sent=False)
            conn = self._take_idle()
            if conn is not None:
                return conn
            if self._open < self.limit:
                return await self._connect(self.loop.time() + self.connect_timeout)
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    conn = await waiter
            except TimeoutError:
                self._discard_waiter(waiter)
                raise H1Error("no free connection in time", maybe_sent=False) from None
            except BaseException:
                self._discard_waiter(waiter)
                raise
            if (conn is not None and not conn.closed and conn.transport is not None
                    and not conn.transport.is_closing()):
                return conn
            # None (a connection closed, so one may be opened), or the connection handed
            # over was closed by the server before this task ran: go round again

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                continue
            if now - conn.idle_since > self.keepalive:
                conn.close()
                continue
            return conn
        return None

    async def _connect(self, deadline: float) -> _Connection:
        self._open += 1
        try:
            async with asyncio.timeout_at(deadline):
                if self._ssl is None:  # plain TCP (tests)
                    _, conn = await self.loop.create_connection(
                        lambda: _Connection(self), self.host, self.port)
                else:
                    _, conn = await self.loop.create_connection(
                        lambda: _Connection(self), self.host, self.port, ssl=self._ssl,
                        server_hostname=self._server_hostname,
                        ssl_handshake_timeout=max(0.1, deadline - self.loop.time()))
        except BaseException as exc:
            self._open -= 1
            self._wake(None)
            if isinstance(exc, (OSError, TimeoutError, ValueError, OverflowError)):
                raise H1Error(f"cannot connect to {self.host}:{self.port}: "
                              f"{type(exc).__name__}: {exc}", maybe_sent=False) from exc
            raise
        if conn.closed or self._closed:  # ended (or the pool closed) before this task resumed
            self._open -= 1
            self._wake(None)
            conn.abort()
            raise H1Error("the client is closed" if self._closed else
                          "the connection closed before the request was written",
                          maybe_sent=False)
        self._all.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        if self._wake(conn):
            return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)

    def _lost(self, conn: _Connection) -> None:
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1
            if conn in self._idle:  # closed by the server while idle
                self._idle.remove(conn)
            self._wake(None)

    def _wake(self, conn: _Connection | None) -> bool:
        """Hand `conn` (or, None, the right to open one) to the oldest waiter still waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _discard_waiter(self, waiter: asyncio.Future[Any]) -> None:
        """A waiter gave up (timeout, cancelled): if it was handed something meanwhile, the
        next waiter gets it."""
        try:
            self._waiters.remove(waiter)
        except ValueError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                conn = waiter.result()
                if conn is not None:
                    self._release(conn)
                else:
                    self._wake(None)

    async def close(self) -> None:
        """Close every connection now (requests in flight fail with maybe_sent=True, waiters
        for a connection with maybe_sent=False)."""
        self._closed = True
        waiters, self._waiters = self._waiters, collections.deque()
        for waiter in waiters:  # before the connections: their close would wake them
            if not waiter.done():
                waiter.set_exception(H1Error("the client is closed", maybe_sent=False))
        for conn in list(self._all):
            conn._fail(H1Error("the forwarding client was closed during the request",
                               maybe_sent=True))
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks
