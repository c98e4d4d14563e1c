"""One listener's HTTP limits, as VaultHttpToolsProtocol enforces them.

Built from the listener's keys (`http_*` timeouts, `max_request_duration`, `max_connections`)
and handed to the protocol on the uvicorn Config (`LimitedConfig`). The connection cap is kept
under the process's RLIMIT_NOFILE soft limit: accepting until `accept()` fails with EMFILE
would starve storage connections and audit files of descriptors.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from typing import Any

import uvicorn

from transit.config import ListenerConfig

log = logging.getLogger("transit.api.limits")

# Go's http.DefaultMaxHeaderBytes (1 MiB) plus the 4096 bytes of slack net/http allows.
MAX_HEADER_BYTES = (1 << 20) + 4096
# Descriptors kept for everything but client connections (storage, audit files, the cluster
# listener, logs) ...
FD_RESERVE = 64
# ... and for connections over the cap, which are answered 503 before being closed (beyond
# this many at once they are reset instead).
REFUSAL_SLACK = 32
DEFAULT_MAX_REQUEST_DURATION = 90.0


@dataclass(frozen=True)
class HttpLimits:
    read_header_timeout: float = 10.0  # seconds, from a request's first byte (or the accept)
    read_timeout: float = 30.0  # the whole request, body included
    write_timeout: float = 0.0  # from the end of the headers to the end of the answer; 0: none
    max_header_bytes: int = MAX_HEADER_BYTES
    max_request_duration: float = DEFAULT_MAX_REQUEST_DURATION  # then 500, handler cancelled
    max_connections: int = 0  # per listener and process; 0: no cap


class LimitedConfig(uvicorn.Config):
    """uvicorn's Config carrying the listener's `HttpLimits` to the protocol."""

    def __init__(self, app: Any, *, http_limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.http_limits = http_limits


def nofile_soft_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(configured: int, listeners: int, nofile: int | None = None) -> int:
    """The listener's connection cap: `configured` (0: as many as fit), at most this
    listener's share of RLIMIT_NOFILE after FD_RESERVE, less REFUSAL_SLACK."""
    soft = nofile_soft_limit() if nofile is None else nofile
    fit = max(1, (soft - FD_RESERVE) // max(1, listeners) - REFUSAL_SLACK)
    if configured <= 0:
        return fit
    if configured > fit:
        log.warning("max_connections %d does not fit under RLIMIT_NOFILE %d with %d "
                    "listener(s): using %d", configured, soft, listeners, fit)
        return fit
    return configured


def listener_limits(listener: ListenerConfig, default_max_request_duration: float,
                    listeners: int) -> HttpLimits:
    duration = listener.max_request_duration
    if duration <= 0:
        duration = default_max_request_duration
    if duration <= 0:
        duration = DEFAULT_MAX_REQUEST_DURATION
    return HttpLimits(
        read_header_timeout=listener.http_read_header_timeout,
        read_timeout=listener.http_read_timeout,
        write_timeout=listener.http_write_timeout,
        max_request_duration=duration,
        max_connections=connection_cap(listener.max_connections, listeners),
    )
