"""Build a `Backend` from the `storage "<type>" { ... }` stanza of the server config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from transit.config import StorageConfig
from transit.errors import ConfigError
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


# type name -> constructor taking the stanza's options. Constructors import lazily so an
# optional client library (redis) is only needed when that backend is configured.
# "redis" goes here: `"redis": _redis` with `def _redis(options) -> Backend` reading
# address / read_addr / sentinel options.
_BACKENDS: dict[str, Callable[[Mapping[str, Any]], Backend]] = {
    "inmem": _inmem,
    "file": _file,
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
