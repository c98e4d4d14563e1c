"""Vault's wire format: the success envelope, error bodies, and the error→status table.

This is the one place where exceptions from `transit.errors` become HTTP status codes
(spec transit-api §1.3-1.4).
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from transit import errors
from transit.gocompat import multierror
from transit.logical import Response

JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def sized(headers: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    """`headers` plus the body's Content-Length, as Go's net/http sends a body written at
    once (uvicorn would otherwise send it in chunks)."""
    return [*headers, (b"content-length", b"%d" % len(body))]

_SORT = orjson.OPT_SORT_KEYS
_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS


# the RFC 4122 variant nibble (10xx) for a random hex digit: 8 + (digit & 3)
_VARIANT = dict(zip("0123456789abcdef", "89ab89ab89ab89ab", strict=True))
_IDS_PER_READ = 64
_ids: list[str] = []  # made ahead from one urandom read; a forked child starts empty
os.register_at_fork(after_in_child=_ids.clear)


def _make_ids() -> None:
    h = os.urandom(16 * _IDS_PER_READ).hex()
    _ids.extend(
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{_VARIANT[h[i + 16]]}"
        f"{h[i + 17:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, 32 * _IDS_PER_READ, 32))


def new_request_id() -> str:
    """A random (version 4) UUID, formatted. Cheaper than str(uuid.uuid4()) on the hot path:
    one os.urandom call (a getrandom syscall) makes 64 of them."""
    try:
        return _ids.pop()
    except IndexError:
        _make_ids()
        return _ids.pop()


def request_id() -> bytes:
    """`new_request_id()` as bytes."""
    return new_request_id().encode()


def envelope(resp: Response, mount_type: str = "", rid: str = "") -> bytes:
    """The success body in Go struct order; keys inside `data` sorted like Go maps."""
    data = resp.data
    data_json = orjson.dumps(data, option=_SORT | _NON_STR_KEYS) if data is not None else b"null"
    body = b"".join((
        b'{"request_id":"', rid.encode() if rid else request_id(), b'","lease_id":',
        orjson.dumps(resp.lease_id) if resp.lease_id else b'""', b',"renewable":',
        b"true" if resp.renewable else b"false", b',"lease_duration":',
        str(resp.lease_duration).encode() if resp.lease_duration else b"0", b',"data":', data_json,
        b',"wrap_info":', _struct(resp.wrap_info), b',"warnings":',
        orjson.dumps(resp.warnings) if resp.warnings else b"null", b',"auth":', _struct(resp.auth),
        b',"mount_type":"', mount_type.encode(), b'"',
    ))
    if resp.mirror_data and data:  # older sys/* reads repeat the data keys at the top level
        body += b"," + orjson.dumps(data, option=_SORT | _NON_STR_KEYS)[1:-1]
    return body + b"}"


def _struct(value: dict[str, Any] | None) -> bytes:
    """A Go struct (auth, wrap_info): keys stay in the order the handler built them."""
    return b"null" if value is None else orjson.dumps(value, option=_NON_STR_KEYS)


def error_body(messages: list[str]) -> bytes:
    return orjson.dumps({"errors": messages})


# The one error table: exception class -> (status, how to render the message).
_TABLE: list[tuple[type[errors.TransitError], int, bool]] = [
    # (class, status, wrap as multierror)
    (errors.UserError, 400, False),
    (errors.LoginFailed, 500, False),
    (errors.LoginUnsupported, 405, False),
    (errors.CapabilityDenied, 403, True),
    (errors.PermissionDenied, 403, False),
    (errors.UnsupportedPath, 404, True),
    (errors.NoHandler, 404, False),
    (errors.UnsupportedOperation, 405, True),
    (errors.RequestTooLarge, 413, False),
    (errors.Sealed, 503, False),
    (errors.AuditFailed, 500, False),
    (errors.StandbyError, 500, False),
    (errors.ReplicationUnconfirmed, 503, False),
    (errors.Conflict, 503, False),
    (errors.Fenced, 503, False),  # nothing written; another node is (becoming) active
    (errors.OutcomeUnknown, 503, False),
    (errors.Unavailable, 503, False),
    (errors.InternalError, 500, True),
    (errors.StorageError, 500, True),
    (errors.ConfigError, 500, True),
]


def error_response(exc: errors.TransitError) -> tuple[int, bytes]:
    if isinstance(exc, errors.NotFound):
        return 404, error_body([])
    for cls, status, wrap in _TABLE:
        if isinstance(exc, cls):
            if cls is errors.AuditFailed:
                return status, error_body(["internal error"])
            msg = exc.message
            return status, error_body([multierror([msg]) if wrap else msg])
    return 500, error_body([multierror([exc.message])])
