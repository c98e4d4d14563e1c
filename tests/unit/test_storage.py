"""Storage backends: the shared conformance suite plus file-backend durability specifics."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from transit.config import StorageConfig
from transit.errors import ConfigError, StorageError
from transit.storage.base import Backend, StorageView
from transit.storage.factory import create_backend, storage_types
from transit.storage.file import FileBackend
from transit.storage.inmem import InmemBackend
from transit.storage.testing import BackendConformance, check_backend


class TestInmemConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self):
        return InmemBackend


class TestFileConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path):
        counter = iter(range(1_000_000))
        return lambda: FileBackend(tmp_path / f"data-{next(counter)}")


def test_check_backend_runs_whole_suite(tmp_path: Path) -> None:
    asyncio.run(check_backend(InmemBackend))

    async def make_file() -> Backend:
        return FileBackend(tmp_path / os.urandom(4).hex())

    asyncio.run(check_backend(make_file))


def test_storage_view_on_inmem() -> None:
    async def go() -> None:
        b = InmemBackend()
        view = StorageView(b, "logical/abc")
        await view.put("keys/k1", b"1")
        await view.put("keys/k2", b"2")
        await b.put("other", b"x")
        assert await b.list("logical/abc/") == ["keys/"]
        assert await view.list("keys/") == ["k1", "k2"]
        await view.clear()
        assert await b.list("") == ["other"]

    asyncio.run(go())


# -- file backend specifics ----------------------------------------------------------------


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_file_reopen_sees_data(tmp_path: Path) -> None:
    async def write() -> None:
        b = FileBackend(tmp_path)
        await b.put("core/seal-config", b"\x00cfg")
        await b.put("logical/x/policy/k", b"p")
        await b.put("logical/x", b"leaf-and-folder")

    async def read() -> None:
        b = FileBackend(str(tmp_path))
        assert await b.get("core/seal-config") == b"\x00cfg"
        assert await b.get("logical/x/policy/k") == b"p"
        assert await b.get("logical/x") == b"leaf-and-folder"
        assert await b.list("logical/") == ["x", "x/"]

    asyncio.run(write())
    asyncio.run(read())


def test_file_no_temp_files_left(tmp_path: Path) -> None:
    async def go() -> None:
        b = FileBackend(tmp_path)
        await asyncio.gather(*(b.put(f"a/b/{i}", os.urandom(100)) for i in range(30)))
        for i in range(30):
            await b.put(f"a/b/{i}", b"again")
        await b.delete("a/b/0")

    asyncio.run(go())
    names = [p.name for p in tmp_path.rglob("*")]
    assert not [n for n in names if n.startswith(".")]
    assert len([n for n in names if n.startswith("_")]) == 29


def test_file_empty_dirs_removed(tmp_path: Path) -> None:
    async def go() -> None:
        b = FileBackend(tmp_path)
        await b.put("x/y/z/leaf", b"1")
        await b.put("x/sibling", b"2")
        await b.delete("x/y/z/leaf")
        assert _all_files(tmp_path) == ["x", "x/_sibling"]
        await b.delete("x/sibling")
        assert _all_files(tmp_path) == []

    asyncio.run(go())


def test_file_layout_leaf_prefix_and_escaping(tmp_path: Path) -> None:
    async def go() -> None:
        b = FileBackend(tmp_path)
        await b.put("a", b"leaf")
        await b.put("a/b", b"child")
        await b.put("_x/.y", b"odd")
        assert (tmp_path / "_a").read_bytes() == b"leaf"
        assert (tmp_path / "a" / "_b").read_bytes() == b"child"
        assert await b.list("") == ["_x/", "a", "a/"]
        assert await b.list("_x/") == [".y"]

    asyncio.run(go())
    # No entry of a folder starts with "_" and no leaf or folder starts with ".".
    for p in tmp_path.rglob("*"):
        assert not p.name.startswith(".")
        assert p.is_file() == p.name.startswith("_")


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", "", "a/"]
)
def test_file_rejects_traversal(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root"
    b = FileBackend(root)
    with pytest.raises(StorageError):
        asyncio.run(b.put(key, b"x"))
    with pytest.raises(StorageError):
        asyncio.run(b.get(key))
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "_escape").exists()


def test_file_list_rejects_traversal(tmp_path: Path) -> None:
    b = FileBackend(tmp_path / "root")
    for prefix in ("../", "a/../../", "/etc/"):
        with pytest.raises(StorageError):
            asyncio.run(b.list(prefix))


def test_file_unwritable_dir_is_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(StorageError):
        FileBackend(blocker)


# -- factory -------------------------------------------------------------------------------


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
