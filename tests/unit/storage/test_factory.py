"""The storage factory (transit/storage/factory.py): backends by config, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from transit.config import StorageConfig
from transit.errors import ConfigError
from transit.storage.factory import create_backend, storage_types
from transit.storage.file import FileBackend
from transit.storage.inmem import InmemBackend


def test_factory_inmem_and_file(tmp_path: Path) -> None:
    assert isinstance(create_backend(StorageConfig("inmem")), InmemBackend)
    b = create_backend(StorageConfig("file", {"path": str(tmp_path / "d")}))
    assert isinstance(b, FileBackend)
    assert (tmp_path / "d").is_dir()
    assert {"inmem", "file"} <= set(storage_types())


def test_factory_errors() -> None:
    with pytest.raises(ConfigError, match='unknown storage type "nope"'):
        create_backend(StorageConfig("nope"))
    with pytest.raises(ConfigError, match="'path' must be set"):
        create_backend(StorageConfig("file", {}))
