"""One typed request at the HTTP edge: the headers parsed in one pass, the body read once.

The API listener's chain (QuotaGate → ForwardingGate → VaultApp, transit/server.py) used to
scan `scope["headers"]` in every layer and read the body in several places (the standby's
local attempt copied the scope and replayed the body into the app). Now the first layer that
sees an HTTP request builds an `Incoming` (`incoming(scope)`), stores it in the scope under
`EDGE_KEY`, and every later layer reads that object instead:

- the headers are parsed in ONE pass over `scope["headers"]`, with the rules each layer used
  before: the first `X-Vault-Token` and the first `Authorization: Bearer` win (Go's
  `Header.Get`); the other `X-Vault-*` headers and `Content-Type` keep their last value (the
  dict the logical request carries, lower-case names); every `X-Vault-Index` value is kept in
  order; the first `X-Vault-Inconsistent` and `X-Transit-Forwarded-Client` count; a non-empty
  `X-Vault-No-Request-Forwarding` anywhere counts; a `Content-Length` that is not all digits
  counts as absent, and of several the largest counts (a request declaring too much anywhere
  is refused). Header names arrive lower-cased from the HTTP parser; values are decoded as
  Latin-1, so any byte string decodes (as Go keeps header bytes as they are).
- the body is read on first demand (`await read_body(receive, limit)`), within the listener's
  `max_request_size`, and kept: a later layer, or the app after a local attempt, gets the same
  bytes without touching `receive` again. Nothing reads it eagerly, so every answer given
  before the body (a bad path, 405, a redirect, a 429) still comes first.
- the client's address is resolved once: on the cluster port (a request forwarded by a
  standby) the address the standby put in `X-Transit-Forwarded-Client`, else the socket's;
  likewise its TLS client certificate (`X-Transit-Forwarded-Client-Cert`, else the
  connection's, from the ASGI TLS extension that transit/api/protocol.py fills): never the
  standby's own cluster certificate.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transit import errors
from transit.api.wire import new_request_id
from transit.cluster.listener import FORWARDED_SCOPE
from transit.gocompat import is_digits

# The scope key holding the request's `Incoming`.
EDGE_KEY = "transit.incoming"
# The client's address, added by the forwarding standby (any copy the client sent is dropped)
# and believed only on the mutual-TLS cluster listener (transit/api/forwarding.py).
CLIENT_ADDR_HEADER = b"x-transit-forwarded-client"
# Likewise the TLS client certificate the standby's client presented (TLS certificate
# logins): base64 DER of the leaf, or "-" for a TLS connection without one; absent when the
# client did not use TLS.
CLIENT_CERT_HEADER = b"x-transit-forwarded-client-cert"
# The client left before its body was complete: the answer goes nowhere, but nothing runs.
GONE = "client disconnected before the request body was complete"

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_NO_CLIENT = ("", 0)
# Headers every client sends that no layer reads: skipped with one set lookup.
_TRANSPORT = frozenset({b"host", b"user-agent", b"accept-encoding", b"connection"})


@dataclass(slots=True)
class Incoming:
    """One HTTP request as the API layers need it (build it with `incoming(scope)`)."""

    method: str
    path: str  # percent-decoded by the HTTP parser
    raw_path: bytes
    query: bytes
    client: tuple[str, int]  # the real client (see the module docstring)
    forwarded: bool  # received on the cluster port, from a standby
    # the client's token: the first X-Vault-Token, else the first "Authorization: Bearer"
    # (Go's Header.Get), else ""
    token: str = ""
    content_length: int = -1  # -1: none (or not a number)
    # X-Vault-* headers and Content-Type (last value wins), lower-case names: the logical
    # request's `headers` (wrap TTL, X-Vault-Request, forwarded-by, audit's view of them)
    headers: dict[str, str] = field(default_factory=dict)
    index: Sequence[str] = ()  # every X-Vault-Index, in order
    inconsistent: bytes = b""  # the first X-Vault-Inconsistent
    no_forwarding: bool = False  # a non-empty X-Vault-No-Request-Forwarding
    prometheus: bool = False  # an Accept asking for Prometheus text (sys/metrics)
    local_attempt: bool = False  # a performance standby tries it here before forwarding
    # the client's TLS certificate chain (PEM, leaf first; [] over TLS without one; None
    # without TLS), see the module docstring
    client_certs: list[str] | None = None
    body: bytes | None = None  # None until read (`read_body`)
    _id: str = ""

    @property
    def wrap_ttl(self) -> str | None:
        return self.headers.get("x-vault-wrap-ttl")

    @property
    def vault_request(self) -> str | None:
        return self.headers.get("x-vault-request")

    @property
    def forwarded_by(self) -> str | None:
        return self.headers.get("x-vault-forwarded-by")

    @property
    def request_id(self) -> str:
        """This request's id (a random UUID), made on first use and kept."""
        if not self._id:
            self._id = new_request_id()
        return self._id

    async def read_body(self, receive: Receive, limit: int) -> bytes:
        """The whole body, read once and kept. RequestTooLarge when the declared length or
        the bytes received pass `limit`; UserError when the client leaves before the end
        (never handle a request on a truncated body)."""
        body = self.body
        if body is not None:
            return body
        if self.content_length > limit:
            raise errors.RequestTooLarge()
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.UserError(GONE)
        body = message.get("body", b"")
        if message.get("more_body"):
            chunks = [body]
            size = len(body)
            while message.get("more_body"):
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise errors.UserError(GONE)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise errors.RequestTooLarge()
                chunks.append(chunk)
            body = b"".join(chunks)
        elif len(body) > limit:
            raise errors.RequestTooLarge()
        self.body = body
        return body


def incoming(scope: MutableMapping[str, Any]) -> Incoming:
    """The request's `Incoming`: the one in the scope, else parsed now and stored there."""
    found: Incoming | None = scope.get(EDGE_KEY)
    if found is None:
        found = scope[EDGE_KEY] = parse(scope)
    return found


def parse(scope: MutableMapping[str, Any]) -> Incoming:
    """Build an `Incoming` from an HTTP scope: one pass over its headers."""
    token: str | None = None
    bearer: str | None = None
    content_length = -1
    headers: dict[str, str] = {}
    index: list[str] | None = None
    inconsistent: bytes | None = None
    no_forwarding = False
    prometheus = False
    client_header: bytes | None = None
    cert_header: bytes | None = None
    for k, v in scope["headers"]:
        if k == b"x-vault-token":
            if token is None:
                token = v.decode("latin-1")
        elif k == b"content-type":
            headers["content-type"] = v.decode("latin-1")
        elif k == b"content-length":
            n = int(v) if v.isdigit() else -1
            if n > content_length:
                content_length = n
        elif k in _TRANSPORT:
            continue
        elif k.startswith(b"x-vault-"):
            name = k.decode("latin-1")
            value = v.decode("latin-1")
            headers[name] = value
            if k == b"x-vault-index":
                if index is None:
                    index = [value]
                else:
                    index.append(value)
            elif k == b"x-vault-inconsistent":
                if inconsistent is None:
                    inconsistent = v
            elif k == b"x-vault-no-request-forwarding":
                no_forwarding = no_forwarding or bool(v)
        elif k == b"authorization":
            if bearer is None and v[:7].lower() == b"bearer ":
                bearer = v[7:].decode("latin-1").strip()
        elif k == b"accept":
            if v.startswith(b"application/openmetrics-text") or b"prometheus/telemetry" in v:
                prometheus = True
        elif k == CLIENT_ADDR_HEADER:
            if client_header is None:
                client_header = v
        elif k == CLIENT_CERT_HEADER:
            if cert_header is None:
                cert_header = v
    forwarded = FORWARDED_SCOPE in scope and bool(scope[FORWARDED_SCOPE])
    client = scope.get("client") or _NO_CLIENT
    if forwarded:
        if client_header is not None:
            host, _, port = client_header.decode("latin-1").rpartition(":")
            if host:
                client = (host, int(port) if is_digits(port) else 0)
        certs = None if cert_header is None else _certs_from_header(cert_header)
    else:
        tls = (scope.get("extensions") or {}).get("tls")
        certs = None if tls is None else list(tls.get("client_cert_chain") or [])
    return Incoming(
        scope["method"], scope["path"], scope.get("raw_path") or scope["path"].encode(),
        scope.get("query_string", b""), client, forwarded, token or bearer or "",
        content_length, headers, index or (), inconsistent or b"", no_forwarding, prometheus,
        client_certs=certs,
    )


def cert_header(certs: list[str] | None) -> bytes | None:
    """The CLIENT_CERT_HEADER value a standby sends for its client's TLS certificate
    (None: the client did not use TLS)."""
    if certs is None:
        return None
    if not certs:
        return b"-"
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(certs[0]))


def _certs_from_header(value: bytes) -> list[str]:
    if value == b"-":
        return []
    try:
        return [ssl.DER_cert_to_PEM_cert(base64.b64decode(value, validate=True))]
    except (ValueError, binascii.Error):
        return []
