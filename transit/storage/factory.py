"""Build a `Backend` from the `storage "<type>" { ... }` stanza of the server config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from transit.config import StorageConfig
from transit.errors import ConfigError, StorageError
from transit.gocompat import is_digits
from transit.storage.base import Backend


def _inmem(options: Mapping[str, Any]) -> Backend:
    from transit.storage.inmem import InmemBackend

    return InmemBackend()


def _file(options: Mapping[str, Any]) -> Backend:
    from transit.storage.file import FileBackend

    path = options.get("path")
    if not path or not isinstance(path, str):
        raise ConfigError("'path' must be set")
    return FileBackend(path)


def _opt(options: Mapping[str, Any], *names: str) -> str:
    """The first of `names` that is set, as a string ("" if none)."""
    for name in names:
        value = options.get(name)
        if value is not None and value != "":
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError(f"'{name}' must be a string")
            return str(value)
    return ""


def _redis(options: Mapping[str, Any]) -> Backend:
    """Options (all strings in HCL): address ("host:port" or redis[s]:// URL), read_address
    (alias read_addr), prefix, username, password, db, lock_ttl (duration), timeout
    (duration), tls_ca_file, tls_cert_file, tls_key_file, tls_skip_verify,
    sentinel_addresses (comma list), sentinel_master, read_from_replica (bool), node_id,
    min_replica_acks (int: key-material writes wait for that many replicas, at least every
    connected one), replication_timeout (duration, default 2s: how long they wait),
    persistence_check ("refuse" (default) or "warn": what the active node does when the
    primary would lose acknowledged writes — no AOF, appendfsync no, an evicting policy).
    Without node_id the server must call `backend.set_node_id()` before first use."""
    from transit.config import parse_bool, parse_duration
    from transit.storage.redis.backend import RedisBackend
    from transit.storage.redis.options import TLSOptions

    tls = None
    ca, cert, key = (_opt(options, f"tls_{n}_file") for n in ("ca", "cert", "key"))
    skip = parse_bool(options.get("tls_skip_verify", False), "tls_skip_verify")
    if ca or cert or key or skip:
        tls = TLSOptions(ca, cert, key, skip_verify=skip)
    db_text = _opt(options, "db") or "0"
    try:
        db = int(db_text)
    except ValueError:
        raise ConfigError(f"'db' must be an integer, got {db_text!r}") from None
    sentinels = [a.strip() for a in _opt(options, "sentinel_addresses").split(",") if a.strip()]
    address = _opt(options, "address")
    if not address and not sentinels:
        raise ConfigError("'address' (or 'sentinel_addresses') must be set")
    if sentinels and not _opt(options, "sentinel_master"):
        raise ConfigError("'sentinel_master' must be set with 'sentinel_addresses'")
    acks_text = _opt(options, "min_replica_acks") or "0"
    if not is_digits(acks_text):
        raise ConfigError(f"'min_replica_acks' must be a non-negative integer, got {acks_text!r}")
    replication_timeout = parse_duration(
        options.get("replication_timeout", 2.0), "replication_timeout")
    if replication_timeout <= 0:
        raise ConfigError("'replication_timeout' must be positive")
    lock_ttl = parse_duration(options.get("lock_ttl", 10.0), "lock_ttl")
    timeout = parse_duration(options.get("timeout", 5.0), "timeout")
    if lock_ttl <= 0 or timeout <= 0:
        raise ConfigError("'lock_ttl' and 'timeout' must be positive")
    kwargs: dict[str, Any] = {
        "address": address or "127.0.0.1:6379",
        "read_address": _opt(options, "read_address", "read_addr"),
        "prefix": _opt(options, "prefix") or "transit",
        "username": _opt(options, "username"),
        "password": _opt(options, "password"),
        "db": db,
        "tls": tls,
        "lock_ttl": lock_ttl,
        "sentinel_addresses": sentinels,
        "sentinel_master": _opt(options, "sentinel_master"),
        "node_id": _opt(options, "node_id") or None,
        "read_from_replica": parse_bool(
            options.get("read_from_replica", False), "read_from_replica"
        ),
        "timeout": timeout,
        "min_replica_acks": int(acks_text),
        "replication_timeout": replication_timeout,
        "persistence_check": _opt(options, "persistence_check") or "refuse",
    }
    try:
        return RedisBackend(**kwargs)
    except StorageError as exc:  # bad address, prefix, node id
        raise ConfigError(str(exc)) from None


# type name -> constructor taking the stanza's options. Constructors import lazily so an
# optional client library (redis) is only needed when that backend is configured.
_BACKENDS: dict[str, Callable[[Mapping[str, Any]], Backend]] = {
    "inmem": _inmem,
    "file": _file,
    "redis": _redis,
}


def storage_types() -> tuple[str, ...]:
    """Names accepted in `storage "<type>"`."""
    return tuple(sorted(_BACKENDS))


def create_backend(storage_config: StorageConfig) -> Backend:
    """The backend named by `storage_config.type`, configured from its options.

    Raises ConfigError for an unknown type or invalid options.
    """
    build = _BACKENDS.get(storage_config.type)
    if build is None:
        raise ConfigError(f'unknown storage type "{storage_config.type}"')
    return build(storage_config.options)
