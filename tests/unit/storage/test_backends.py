"""Storage backends: the shared conformance suites (Backend on inmem, file, a view, the
in-memory HA backend; HABackend on the in-memory HA backend), proof that the suites catch
broken implementations, and file-backend and in-memory-HA specifics."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from transit.config import StorageConfig
from transit.errors import (
    ConfigError,
    Conflict,
    Fenced,
    OutcomeUnknown,
    ReplicationUnconfirmed,
    StorageError,
)
from transit.storage import testing, testing_ha
from transit.storage.base import ABSENT, Backend, HABackend, StorageView, Write, version_of
from transit.storage.factory import create_backend, storage_types
from transit.storage.file import FileBackend
from transit.storage.inmem import InmemBackend
from transit.storage.inmem_ha import InmemHABackend
from transit.storage.testing import BackendConformance, check_backend
from transit.storage.testing_ha import HABackendConformance, HAConnect, check_ha_backend
from transit.storage.update import update


class TestInmemConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self):
        return InmemBackend


class TestFileConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path):
        counter = iter(range(1_000_000))
        return lambda: FileBackend(tmp_path / f"data-{next(counter)}")


class TestViewConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self):
        return lambda: StorageView(InmemBackend(), "logical/some-mount")


class TestInmemHAAsBackend(BackendConformance):
    """One handle, not fenced."""

    @pytest.fixture
    def backend_factory(self):
        return InmemHABackend


class TestInmemHAFencedAsBackend(BackendConformance):
    """One handle holding the lock, every write fenced on it."""

    @pytest.fixture
    def backend_factory(self):
        async def make() -> InmemHABackend:
            b = InmemHABackend()
            b.fence = await b.acquire_lock("node-a")
            return b

        return make


def inmem_ha_factory() -> HAConnect:
    store = InmemHABackend()
    return lambda owner, ttl: store.connect(owner, lock_ttl=ttl)


class TestInmemHAConformance(HABackendConformance):
    @pytest.fixture
    def ha_factory(self):
        return inmem_ha_factory


def test_check_ha_backend_runs_whole_suite() -> None:
    asyncio.run(check_ha_backend(inmem_ha_factory))


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


# -- the suites catch broken implementations -----------------------------------------------


class _IgnoresGuards(InmemBackend):
    async def commit(self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
                     durable: bool = False) -> None:
        await super().commit(writes, None, durable=durable)


class _GuardsAfterFirstWrite(InmemBackend):
    """Applies the first write before comparing: not all-or-nothing."""

    async def commit(self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
                     durable: bool = False) -> None:
        if writes:
            await super().commit(writes[:1])
        await super().commit(writes[1:], expect, durable=durable)


class _SuspendsBetweenCheckAndWrite(InmemBackend):
    """Compares, then yields to the loop before writing: another writer slips in."""

    async def commit(self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
                     durable: bool = False) -> None:
        for key, version in (expect or {}).items():
            if version_of(await self.get(key)) != version:
                raise Conflict(key)
        await asyncio.sleep(0)
        await super().commit(writes)


class _AbsentIsEmpty(InmemBackend):
    """Treats an empty value as absent in guards."""

    async def commit(self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
                     durable: bool = False) -> None:
        for key, version in (expect or {}).items():
            if version == ABSENT and await self.get(key) == b"":
                expect = {**(expect or {}), key: version_of(b"")}
        await super().commit(writes, expect, durable=durable)


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (_IgnoresGuards, testing.check_commit_conflict_writes_nothing),
        (_IgnoresGuards, testing.check_update_concurrent_increments),
        (_IgnoresGuards, testing.check_update_creates_once),
        (_GuardsAfterFirstWrite, testing.check_commit_conflict_writes_nothing),
        (_SuspendsBetweenCheckAndWrite, testing.check_update_concurrent_increments),
        (_AbsentIsEmpty, testing.check_commit_guard_absent),
    ],
)
def test_backend_suite_catches(broken: Callable[[], Backend], check: testing.Check) -> None:
    with pytest.raises(AssertionError):
        asyncio.run(testing.run_check(broken, check))


class _NoFence(InmemHABackend):
    __slots__ = ()

    async def commit(self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
                     durable: bool = False) -> None:
        fence, self.fence = self.fence, None
        try:
            await super().commit(writes, expect, durable=durable)
        finally:
            self.fence = fence


class _FenceIgnoresOwner(InmemHABackend):
    __slots__ = ()

    async def commit(self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
                     durable: bool = False) -> None:
        holder = await self.lock_holder()
        if self.fence is not None and holder is not None and holder[1] == self.fence:
            fence, self.fence = self.fence, None
            try:
                return await super().commit(writes, expect, durable=durable)
            finally:
                self.fence = fence
        await super().commit(writes, expect, durable=durable)


class _Reentrant(InmemHABackend):
    __slots__ = ()

    async def acquire_lock(self, owner: str, min_epoch: int = 0) -> int | None:
        holder = await self.lock_holder()
        if holder is not None and holder[0] == owner:
            return holder[1]
        return await super().acquire_lock(owner, min_epoch)


class _IgnoresMinEpoch(InmemHABackend):
    __slots__ = ()

    async def acquire_lock(self, owner: str, min_epoch: int = 0) -> int | None:
        return await super().acquire_lock(owner)


class _ReleasesAnyEpoch(InmemHABackend):
    __slots__ = ()

    async def release_lock(self, owner: str, epoch: int) -> None:
        holder = await self.lock_holder()
        if holder is not None and holder[0] == owner:
            await super().release_lock(*holder)


class _ReleasesForeign(InmemHABackend):
    """Compares the lock value only, whoever asks (a node deleting another process's lock)."""

    __slots__ = ()

    async def release_lock(self, owner: str, epoch: int) -> None:
        if await self.lock_holder() == (owner, epoch):
            self._shared.lock = None


class _IndexPerCommit(InmemHABackend):
    """Counts a commit of several writes as one."""

    __slots__ = ()

    async def commit(self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
                     durable: bool = False) -> None:
        before = self._shared.index
        await super().commit(writes, expect, durable=durable)
        if len(writes) > 1:
            self._shared.index = self.last_index = before + 1


def _broken_ha(cls: type[InmemHABackend]) -> Callable[[], HAConnect]:
    def factory() -> HAConnect:
        store = cls()

        def connect(owner: str, ttl: float) -> HABackend:
            handle = cls(owner=owner, lock_ttl=ttl, _of=store)
            return handle

        return connect

    return factory


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (_NoFence, testing_ha.check_ha_fence),
        (_NoFence, testing_ha.check_ha_ttl),
        (_FenceIgnoresOwner, testing_ha.check_ha_fence),
        (_Reentrant, testing_ha.check_ha_acquire_is_exclusive),
        (_IgnoresMinEpoch, testing_ha.check_ha_epochs_only_grow),
        (_ReleasesAnyEpoch, testing_ha.check_ha_release_only_exact),
        (_ReleasesForeign, testing_ha.check_ha_release_never_foreign),
        (_IndexPerCommit, testing_ha.check_ha_write_index),
    ],
)
def test_ha_suite_catches(broken: type[InmemHABackend], check: testing_ha.HACheck) -> None:
    with pytest.raises(AssertionError):
        asyncio.run(testing_ha.run_ha_check(_broken_ha(broken), check))


# -- in-memory HA backend specifics ------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_inmem_ha_handles_share_one_store() -> None:
    async def go() -> None:
        a = InmemHABackend(owner="node-a")
        b = a.connect("node-b")
        await a.put("x/y", b"1")
        assert await b.get("x/y") == b"1"
        assert await b.list("x/") == ["y"]
        await b.commit([Write("x/y", None), Write("z", b"2")])
        assert await a.list("") == ["z"]
        assert await a.write_index() == await b.write_index() == 3
        assert (a.last_index, b.last_index) == (1, 3)
        assert (a.owner, b.owner) == ("node-a", "node-b")
        other = InmemHABackend()  # a new store shares nothing
        assert await other.list("") == [] and await other.write_index() == 0

    asyncio.run(go())


def test_inmem_ha_ttl_on_the_clock() -> None:
    async def go() -> None:
        clock = FakeClock()
        a = InmemHABackend(owner="node-a", lock_ttl=10, clock=clock)
        b = a.connect("node-b", lock_ttl=3)
        assert b.lock_ttl == 3 and a.connect().lock_ttl == 10
        epoch = await a.acquire_lock("node-a")
        assert epoch == 1
        a.fence = epoch
        clock.now += 9.9
        assert await a.renew_lock("node-a", 1)  # renewed at 9.9 s: good until 19.9 s
        clock.now += 9.9
        await a.put("k", b"v")
        assert await b.lock_holder() == ("node-a", 1)
        clock.now += 0.1  # exactly at the deadline: expired
        assert await b.lock_holder() is None
        with pytest.raises(Fenced):
            await a.put("k", b"late")
        assert not await a.renew_lock("node-a", 1)
        assert await b.acquire_lock("node-b") == 2
        clock.now += 3
        assert await a.acquire_lock("node-a") == 3  # b's 3 s lock expired

    asyncio.run(go())


def test_inmem_ha_owner_and_holder_gone() -> None:
    async def go() -> None:
        a = InmemHABackend()
        assert a.owner is None
        a.fence = 5
        with pytest.raises(Fenced):  # fenced without an owner: never holds the lock
            await a.put("k", b"v")
        a.fence = None
        assert await a.acquire_lock("node-a@1") == 1
        assert a.owner == "node-a@1"  # adopted
        with pytest.raises(StorageError, match="not 'node-b'"):
            await a.acquire_lock("node-b")
        watcher = a.connect()
        twin = a.connect("node-a@1")  # a second process with the same owner
        assert not await watcher.holder_gone("node-a@1")
        await a.close()
        assert not await watcher.holder_gone("node-a@1")
        await twin.close()
        await twin.close()  # twice is fine
        assert await watcher.holder_gone("node-a@1")
        assert await watcher.lock_holder() == ("node-a@1", 1)  # the lock outlives the process
        assert await watcher.holder_gone("never-seen")
        other = a.connect("node-b")
        with pytest.raises(StorageError, match="cannot release"):
            await other.release_lock("node-a@1", 1)
        assert await watcher.lock_holder() == ("node-a@1", 1)
        assert not await other.break_lock("node-b", 1)  # its own: release_lock, not break
        assert await other.break_lock("node-a@1", 1)  # the holder's process is gone
        assert await watcher.lock_holder() is None
        epoch = await other.acquire_lock("node-b")
        assert not await a.connect("node-c").break_lock("node-b", epoch)  # node-b is alive
        assert await watcher.lock_holder() == ("node-b", epoch)
        with pytest.raises(StorageError):
            InmemHABackend(lock_ttl=0)
        with pytest.raises(StorageError):
            await watcher.acquire_lock("")

    asyncio.run(go())


def test_inmem_ha_is_an_inmem_backend() -> None:
    b = InmemHABackend()
    assert isinstance(b, InmemBackend)
    assert isinstance(b, HABackend)
    assert not isinstance(InmemBackend(), HABackend)


# -- update(): what is retried and what is not -------------------------------------------------


class _FailingCommit(InmemBackend):
    __slots__ = ("commits", "error", "times")

    def __init__(self, error: Exception, times: int = 1_000_000) -> None:
        super().__init__()
        self.error, self.times, self.commits = error, times, 0

    async def commit(self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
                     durable: bool = False) -> None:
        self.commits += 1
        if self.commits <= self.times:
            raise self.error
        await super().commit(writes, expect, durable=durable)


@pytest.mark.parametrize(
    "error",
    [OutcomeUnknown("lost reply"), ReplicationUnconfirmed("no WAIT"), Fenced("stale"),
     StorageError("boom")],
)
def test_update_never_retries_anything_but_conflict(error: Exception) -> None:
    async def go() -> None:
        b = _FailingCommit(error)
        calls = 0

        def change(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
            nonlocal calls
            calls += 1
            return [Write("k", b"v")], None

        with pytest.raises(type(error)):
            await update(b, ["k"], change, durable=True)
        assert (calls, b.commits) == (1, 1)

    asyncio.run(go())


def test_update_retries_conflicts_then_gives_up() -> None:
    async def go() -> None:
        b = _FailingCommit(Conflict("lost the race"), times=2)
        assert await update(b, ["k"], lambda v: ([Write("k", b"v")], "done")) == "done"
        assert b.commits == 3 and await b.get("k") == b"v"
        always = _FailingCommit(Conflict("lost the race"))
        with pytest.raises(Conflict, match="nothing was changed"):
            await update(always, ["k"], lambda v: ([Write("k", b"v")], None), attempts=3)
        assert always.commits == 3 and await always.get("k") is None

    asyncio.run(go())


def test_file_commit_with_an_invalid_key_writes_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        b = FileBackend(tmp_path)
        with pytest.raises(StorageError):
            await b.commit([Write("ok", b"1"), Write("a//b", b"2")])
        assert await b.get("ok") is None

    asyncio.run(go())
