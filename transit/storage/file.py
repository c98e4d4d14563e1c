"""Durable single-node storage: one file per key under a directory.

Layout (like Vault's file backend): key "a/b/c" is the file `<root>/a/b/_c`. Leaf files carry
a "_" prefix so a key can be both a leaf and a folder ("a" and "a/b" give `_a` and `a/`).
Each path segment is escaped so the three kinds of directory entry can never collide:

- leaf files start with "_", directories never do (a leading "_" in a folder name is escaped);
- temp files start with "." and no escaped segment does (a leading "." is escaped);
- "%" is the escape character itself. "." and ".." segments and absolute keys are rejected.

Writes go to a temp file in the target directory, are fsynced, renamed over the target with
`os.replace`, and the directory is fsynced, so a crash leaves either the old or the new value.
There is no read cache: the OS page cache already serves hot reads, and a cache shared with
worker threads is not trivially correct.

Writes (put, delete, commit) hold a thread lock and an exclusive `flock` on the root folder,
so a guarded `commit` compares and writes with no other writer in between, even from another
process. A `commit` writes its entries one file at a time, in order: a crash in the middle
leaves a prefix of them (callers write the entry that decides last, e.g. a transit policy
after its archive).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence

from transit.errors import Conflict, StorageError
from transit.storage.base import Versioned, Write, version_of

_LEAF = "_"
_TMP = ".tmp-"
_ESCAPED = re.compile("%([0-9A-F]{2})")


def _escape(segment: str) -> str:
    s = segment.replace("%", "%25").replace("\x00", "%00")
    if s[:1] in (".", "_"):
        s = f"%{ord(s[0]):02X}{s[1:]}"
    return s


def _unescape(name: str) -> str:
    if "%" not in name:
        return name
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), name)


def _segments(path: str, what: str) -> list[str]:
    if path.startswith("/"):
        raise StorageError(f"invalid {what} {path!r}: must be relative")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise StorageError(f"invalid {what} {path!r}: empty, '.' or '..' segment")
    return parts


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBackend:
    """`Backend` over a directory owned by this one process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(path))
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage directory {self.root}: {exc}") from exc
        self._write_lock = threading.Lock()

    # -- path mapping ---------------------------------------------------------------------

    def _leaf_path(self, key: str) -> tuple[str, str]:
        """(directory, file path) for a key."""
        *folders, leaf = _segments(key, "key")
        directory = os.path.join(self.root, *(_escape(f) for f in folders))
        return directory, os.path.join(directory, _LEAF + _escape(leaf))

    def _folder_path(self, prefix: str) -> str:
        if not prefix:
            return self.root
        if not prefix.endswith("/"):
            raise StorageError(f"invalid list prefix {prefix!r}: must end with '/'")
        return os.path.join(self.root, *(_escape(f) for f in _segments(prefix[:-1], "prefix")))

    # -- blocking implementations (run in a worker thread) ----------------------------------

    def _get(self, key: str) -> bytes | None:
        _, path = self._leaf_path(key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"failed to read {key!r}: {exc}") from exc

    def _makedirs(self, directory: str) -> None:
        """Create missing folders, fsyncing each parent so the new entry is durable."""
        missing: list[str] = []
        d = directory
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(d, 0o700)
                _fsync_dir(os.path.dirname(d))

    def _put(self, key: str, value: bytes) -> None:
        directory, path = self._leaf_path(key)
        try:
            # A concurrent delete may remove a folder we just created (it was empty);
            # creating the temp file then fails with ENOENT, so create the folder again.
            for attempt in range(8):
                try:
                    self._makedirs(directory)
                    fd, tmp = tempfile.mkstemp(prefix=_TMP, dir=directory)
                    break
                except FileNotFoundError:
                    if attempt == 7:
                        raise
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(value)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_dir(directory)
        except OSError as exc:
            raise StorageError(f"failed to write {key!r}: {exc}") from exc

    def _delete(self, key: str) -> None:
        directory, path = self._leaf_path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"failed to delete {key!r}: {exc}") from exc
        try:
            _fsync_dir(directory)
            # Remove folders left empty, up to (not including) the root.
            while directory != self.root:
                os.rmdir(directory)  # fails (ENOTEMPTY) as soon as a folder still has entries
                parent = os.path.dirname(directory)
                _fsync_dir(parent)
                directory = parent
        except OSError:
            pass  # not empty (or already gone): nothing more to clean up

    def _list(self, prefix: str) -> list[str]:
        directory = self._folder_path(prefix)
        out: list[str] = []
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    name = entry.name
                    if name.startswith(_LEAF):
                        out.append(_unescape(name[1:]))
                    elif name.startswith("."):
                        continue  # temp file (in flight, or left over by a crash)
                    elif entry.is_dir(follow_symlinks=False):
                        out.append(_unescape(name) + "/")
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StorageError(f"failed to list {prefix!r}: {exc}") from exc
        out.sort()
        return out

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer at a time: this process's threads, and other processes (flock)."""
        with self._write_lock:
            try:
                fd = os.open(self.root, os.O_RDONLY)  # flock works on a directory too
            except OSError as exc:
                raise StorageError(f"cannot lock the storage folder: {exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def _locked_put(self, key: str, value: bytes) -> None:
        with self._exclusive():
            self._put(key, value)

    def _locked_delete(self, key: str) -> None:
        with self._exclusive():
            self._delete(key)

    def _commit(self, writes: Sequence[Write], expect: Mapping[str, str]) -> None:
        for w in writes:  # an invalid key fails the commit before anything is written
            self._leaf_path(w.key)
        with self._exclusive():
            for key, version in expect.items():
                if version_of(self._get(key)) != version:
                    raise Conflict(f"{key!r} changed since it was read")
            for w in writes:
                if w.value is None:
                    self._delete(w.key)
                else:
                    self._put(w.key, bytes(w.value))

    # -- Backend --------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def put(self, key: str, value: bytes) -> None:
        await asyncio.to_thread(self._locked_put, key, bytes(value))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._locked_delete, key)

    async def get_versioned(self, key: str) -> Versioned:
        value = await self.get(key)
        return Versioned(value, version_of(value))

    async def commit(
        self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
        durable: bool = False,
    ) -> None:
        """Guarded writes (see `Backend`); `durable` needs nothing more: every file is
        fsynced before this returns, and there are no replicas."""
        await asyncio.to_thread(self._commit, list(writes), dict(expect or {}))

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def __repr__(self) -> str:
        return f"FileBackend({self.root!r})"
