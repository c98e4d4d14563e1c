"""Request forwarding: a standby re-issues a request to the active's cluster listener over
mutual TLS and hands back the answer verbatim (spec §2.1, §2.3; DESIGN §4).

The TLS identity is the advertisement's own certificate and key (every unsealed node can read
it), and the only trusted certificate is that same one, checked under the name
`fw-<node_id>`. One client per leader record; a new record (a new term, so a new certificate)
gets a new client, and the old one is closed once the requests still running on it are done.

Transport: HTTP/1.1 keep-alive connections over that mutual TLS (`h1client.py`: one request
at a time per connection, httptools' parser, TLS in uvloop); the active's listener
(`listener.py`) is our own API protocol, uvicorn with httptools. Chosen by measurement
(bench/forward_transports.py, bench/results/2026-12-07-forwarding.md and
2026-12-07-night-forwarding-h1.md), client-side CPU per request (what the standby pays) and
server-side (the active): httpx 1.3-2.4 ms / 0.18-0.28 ms (httpcore's pool re-checks every
pooled connection, a poll(2) each, on every request); httpx over HTTP/2 to hypercorn 1.0 ms /
0.5-0.6 ms (h2 is pure Python on both sides); grpcio 0.17-0.22 ms / 0.21-0.29 ms (and its
BoringSSL refuses our P-521 certificate); aiohttp 0.09-0.13 ms / 0.04-0.055 ms; h1client less
again (the figures are in the results file).

What the client must not do on its own, and how it is kept from it:
- replay: h1client never retries, and a request whose connection fails after the first byte
  was written is `maybe_sent`, so the caller answers 503 "outcome unknown";
- add or keep state: it has no cookie jar, adds only Host and Content-Length, does not
  decompress or follow redirects, and sends the path, query and header bytes as they
  arrived (a value that cannot be written verbatim - CR, LF, NUL - is not sent at all).
`ForwardingError.maybe_sent` is False only for failures before any byte was written
(connect, TLS handshake, pool wait, an unusable certificate): anything later may have reached
the active node.
"""

from __future__ import annotations

import asyncio
import logging

from transit.cluster.advert import LeaderRecord, ssl_client_context
from transit.cluster.h1client import H1Error, H1Pool, Headers
from transit.errors import TransitError

log = logging.getLogger("transit.cluster.forward")

FORWARDED_BY = b"x-vault-forwarded-by"
# On the cluster port only: the node answering is not the active node and did nothing with
# the request (errors.NotActive), so it is safe to send it to the new active node. A 503 without
# it ("node is not active" after the handler ran) may have written, and is never re-sent.
NOT_ACTIVE_HEADER = b"x-transit-not-active"
NOT_ACTIVE_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                      (NOT_ACTIVE_HEADER, b"1")]

# RFC 9110 §7.6.1 hop-by-hop fields, plus what the HTTP client recomputes itself.
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
# Expect: the standby holds the whole body already (its own listener answered the client's
# 100-continue); forwarded, it would make the client wait for a second one.
_REQUEST_DROP = _HOP_BY_HOP | {b"host", b"content-length", b"expect", FORWARDED_BY}
# The local ASGI server adds its own Date (and Server, if enabled): don't send two.
_RESPONSE_DROP = _HOP_BY_HOP | {b"date", b"server"}


class ForwardingError(TransitError):
    """The request could not be forwarded (connect, TLS, timeout, protocol). `maybe_sent`:
    whether it may have reached the active node (anything after the connection was made),
    so a write must not be sent again (the caller answers 503, not a 307 redirect)."""

    def __init__(self, message: str = "", *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class LeaderNotActive(ForwardingError):
    """The node we forwarded to answered that it is not the active node and did nothing with
    the request (`NOT_ACTIVE_HEADER`): look up the leader again and send it there."""


def cluster_host_port(cluster_addr: str) -> tuple[str, int]:
    """(host, port) from a cluster_addr: `h:8201`, `[::1]:8201`, `https://h:8201` (the scheme
    is ignored: always TLS)."""
    base = cluster_base_url(cluster_addr)[len("https://"):]
    host, sep, port = base.rpartition(":")
    try:
        if not sep or not host:
            raise ValueError("no host and port")
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError(f"port {number} out of range")
        return host.strip("[]"), number
    except ValueError as exc:
        raise ForwardingError(f"invalid cluster address {cluster_addr!r}: {exc}") from None


def cluster_base_url(cluster_addr: str) -> str:
    """`https://host:port` from a cluster_addr (its scheme is ignored: always https)."""
    addr = cluster_addr.strip()
    if "://" in addr:
        addr = addr.split("://", 1)[1]
    addr = addr.split("/", 1)[0]
    if not addr:
        raise ForwardingError(f"invalid cluster address {cluster_addr!r}")
    return f"https://{addr}"


def _filter(headers: Headers, drop: frozenset[bytes]) -> Headers:
    extra: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":  # names listed in Connection are hop-by-hop too
            extra.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return [(n, v) for n, v in headers if n.lower() not in drop and n.lower() not in extra]


class _Client:
    """The connection pool of one leader record, with its requests in flight."""

    def __init__(self, record: LeaderRecord, *, connect_timeout: float, timeout: float,
                 max_connections: int) -> None:
        self.record = record
        host, port = cluster_host_port(record.cluster_addr)
        ctx = ssl_client_context(record)  # OSError / ValueError: unusable cert or key
        self.pool = H1Pool(host, port, ctx, server_hostname=record.tls_name,
                           limit=max_connections, connect_timeout=connect_timeout,
                           read_timeout=timeout, pool_timeout=timeout)
        self.inflight = 0
        self.retired = False

    async def close(self) -> None:
        await self.pool.close()


class Forwarder:
    def __init__(
        self, node_id: str, *, connect_timeout: float = 5.0, timeout: float = 90.0,
        max_connections: int = 100,
    ) -> None:
        self.node_id = node_id
        self._forwarded_by = (FORWARDED_BY, node_id.encode())
        # connect_timeout: TCP + TLS handshake of a new connection; timeout: the wait for
        # the answer, and for a free connection when all are busy
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._max_connections = max_connections
        self._client: _Client | None = None
        self._retired: set[_Client] = set()  # replaced, requests still running on them
        self._closing: set[asyncio.Task[None]] = set()

    def _client_for(self, record: LeaderRecord) -> _Client:
        client = self._client
        if client is not None and client.record == record:
            return client
        self._client = _Client(record, connect_timeout=self._connect_timeout,
                               timeout=self._timeout, max_connections=self._max_connections)
        if client is not None:
            client.retired = True
            self._retired.add(client)
            if client.inflight == 0:
                self._close_later(client)
        return self._client

    def _close_later(self, client: _Client) -> None:
        self._retired.discard(client)
        task = asyncio.get_running_loop().create_task(client.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def forward(
        self, record: LeaderRecord, method: str, path_qs: str, headers: Headers, body: bytes,
    ) -> tuple[int, Headers, bytes]:
        """Send the request to `record`'s cluster listener; (status, headers, raw body).

        Raises ForwardingError when it could not be sent or answered (`maybe_sent` says
        which), and LeaderNotActive when `record` is no longer the active node."""
        try:
            client = self._client_for(record)
        except (OSError, ValueError) as exc:  # unusable cert/key in the record
            raise ForwardingError(f"cannot build the cluster TLS client: {exc}") from exc
        out = _filter(headers, _REQUEST_DROP)
        out.append(self._forwarded_by)
        if not path_qs.startswith("/"):
            path_qs = "/" + path_qs
        client.inflight += 1
        try:
            status, raw, data = await client.pool.request(method, path_qs, out, body)
        except H1Error as exc:
            raise ForwardingError(f"forwarding to {record.cluster_addr} failed: {exc}",
                                  maybe_sent=exc.maybe_sent) from exc
        finally:
            client.inflight -= 1
            if client.retired and client.inflight == 0:
                self._close_later(client)
        if status == 503 and any(name.lower() == NOT_ACTIVE_HEADER for name, _ in raw):
            raise LeaderNotActive(f"{record.node_id} is no longer the active node")
        return status, _filter(raw, _RESPONSE_DROP), data

    async def close(self) -> None:
        client, self._client = self._client, None
        retired, self._retired = self._retired, set()
        for c in [*retired, *([client] if client is not None else [])]:
            await c.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
