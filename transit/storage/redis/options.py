"""How the Redis backend and the invalidation feed reach Redis: addresses, auth and TLS
(one place, so both connect the same way)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio.retry import Retry

from transit.errors import StorageError
from transit.gocompat import is_digits


@dataclass(frozen=True)
class TLSOptions:
    """TLS to Redis. Any of these set (or a rediss:// address) turns TLS on."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    skip_verify: bool = False


def split_address(address: str) -> dict[str, Any]:
    """Parse "host:port", "[::1]:6379" or a redis[s]://user:pw@host:port/db URL -> kwargs."""
    url = urlsplit(address if "://" in address else f"redis://{address}")
    if url.scheme not in ("redis", "rediss"):
        raise StorageError(f"redis address {address!r}: scheme must be redis:// or rediss://")
    try:
        port = url.port or 6379
    except ValueError as exc:
        raise StorageError(f"redis address {address!r}: {exc}") from None
    out: dict[str, Any] = {"host": url.hostname or "127.0.0.1", "port": port}
    if url.scheme == "rediss":
        out["ssl"] = True
    if url.username:
        out["username"] = unquote(url.username)
    if url.password:
        out["password"] = unquote(url.password)
    if is_digits(url.path.strip("/")):
        out["db"] = int(url.path.strip("/"))
    return out


def client_options(
    *, db: int, timeout: float, username: str, password: str, tls: TLSOptions | None,
    retry: Retry,
) -> dict[str, Any]:
    """Keyword arguments for `redis.asyncio.Redis` (connection, auth, TLS), shared by the
    backend and the invalidation feed so both reach Redis the same way."""
    options: dict[str, Any] = {
        "db": db, "socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": retry,
    }
    if username:
        options["username"] = username
    if password:
        options["password"] = password
    if tls is not None:
        options.update(
            ssl=True,
            ssl_ca_certs=tls.ca_file or None,
            ssl_certfile=tls.cert_file or None,
            ssl_keyfile=tls.key_file or None,
            ssl_cert_reqs="none" if tls.skip_verify else "required",
            ssl_check_hostname=not tls.skip_verify,
        )
    return options
