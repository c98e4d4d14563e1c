"""The file backend's specifics (transit/storage/file.py): layout, escaping, traversal,
atomic commits."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from transit.errors import StorageError
from transit.storage.base import Write
from transit.storage.file import FileBackend


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


def test_file_commit_with_an_invalid_key_writes_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        b = FileBackend(tmp_path)
        with pytest.raises(StorageError):
            await b.commit([Write("ok", b"1"), Write("a//b", b"2")])
        assert await b.get("ok") is None

    asyncio.run(go())
