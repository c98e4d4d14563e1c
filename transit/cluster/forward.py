"""Request forwarding: a standby re-issues a request to the active's cluster listener over
mutual TLS and hands back the answer verbatim (spec §2.1, §2.3; DESIGN §4).

The TLS identity is the advertisement's own certificate and key (every unsealed node can read
it), and the only trusted certificate is that same one, checked under the name
`fw-<node_id>`. One pooled HTTP/1.1 client per leader record; a new record (a new term, so a
new certificate) gets a new client and the old one is closed.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from transit.cluster.advert import LeaderRecord, ssl_client_context
from transit.errors import TransitError

log = logging.getLogger("transit.cluster.forward")

FORWARDED_BY = b"x-vault-forwarded-by"

# RFC 9110 §7.6.1 hop-by-hop fields, plus what the HTTP client recomputes itself.
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
_REQUEST_DROP = _HOP_BY_HOP | {b"host", b"content-length", FORWARDED_BY}
# The local ASGI server adds its own Date (and Server, if enabled): don't send two.
_RESPONSE_DROP = _HOP_BY_HOP | {b"date", b"server"}

Headers = list[tuple[bytes, bytes]]


class ForwardingError(TransitError):
    """The request could not be forwarded (connect, TLS, timeout, protocol). `maybe_sent`:
    whether it may have reached the active node (anything after the connection was made),
    so a write must not be sent again (the caller answers 503, not a 307 redirect)."""

    def __init__(self, message: str = "", *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


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


class Forwarder:
    def __init__(
        self, node_id: str, *, connect_timeout: float = 5.0, timeout: float = 90.0,
        max_connections: int = 100,
    ) -> None:
        self.node_id = node_id
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._limits = httpx.Limits(max_connections=max_connections,
                                    max_keepalive_connections=max_connections)
        self._record: LeaderRecord | None = None
        self._client: httpx.AsyncClient | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def _client_for(self, record: LeaderRecord) -> httpx.AsyncClient:
        if self._client is not None and self._record == record:
            return self._client
        old = self._client
        self._client = httpx.AsyncClient(
            verify=ssl_client_context(record), http1=True, http2=False,
            timeout=self._timeout, limits=self._limits, trust_env=False,
            base_url=cluster_base_url(record.cluster_addr), follow_redirects=False,
        )
        self._record = record
        if old is not None:  # requests still running on it finish first
            task = asyncio.create_task(old.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return self._client

    async def forward(
        self, record: LeaderRecord, method: str, path_qs: str, headers: Headers, body: bytes,
    ) -> tuple[int, Headers, bytes]:
        """Send the request to `record`'s cluster listener; (status, headers, raw body)."""
        try:
            client = self._client_for(record)
        except (OSError, ValueError) as exc:  # unusable cert/key in the record
            raise ForwardingError(f"cannot build the cluster TLS client: {exc}") from exc
        out = _filter(headers, _REQUEST_DROP)
        out.append((FORWARDED_BY, self.node_id.encode()))
        if not path_qs.startswith("/"):
            path_qs = "/" + path_qs
        try:
            request = client.build_request(
                method, path_qs, headers=out, content=body,
                extensions={"sni_hostname": record.tls_name},
            )
            response = await client.send(request, stream=True)
            try:
                chunks = [chunk async for chunk in response.aiter_raw()]
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
            raise ForwardingError(
                f"forwarding to {record.cluster_addr} failed: {type(exc).__name__}: {exc}",
                maybe_sent=not unsent,
            ) from exc
        except OSError as exc:
            raise ForwardingError(f"forwarding to {record.cluster_addr} failed: {exc}",
                                  maybe_sent=True) from exc
        return response.status_code, _filter(response.headers.raw, _RESPONSE_DROP), b"".join(chunks)

    async def close(self) -> None:
        client, self._client, self._record = self._client, None, None
        if client is not None:
            await client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
