"""The storage contracts (transit/storage/conformance/) run on every in-process
backend: Backend on inmem, file, a view and the in-memory HA backend; HABackend on the
in-memory HA backend; and proof that the suites catch broken implementations. RedisBackend
runs them in tests/unit/storage/test_redis.py."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from transit.errors import Conflict
from transit.storage.base import ABSENT, Backend, HABackend, StorageView, Write, version_of
from transit.storage.conformance.backend import (
    BackendConformance,
    Check,
    check_backend,
    run_check,
)
from transit.storage.conformance.commit import (
    check_commit_conflict_writes_nothing,
    check_commit_guard_absent,
)
from transit.storage.conformance.ha import (
    HABackendConformance,
    HACheck,
    HAConnect,
    check_ha_acquire_is_exclusive,
    check_ha_backend,
    check_ha_epochs_only_grow,
    check_ha_fence,
    check_ha_release_never_foreign,
    check_ha_release_only_exact,
    check_ha_ttl,
    check_ha_write_index,
    run_ha_check,
)
from transit.storage.conformance.read_modify_write import (
    check_update_concurrent_increments,
    check_update_creates_once,
)
from transit.storage.file import FileBackend
from transit.storage.inmem import InmemBackend
from transit.storage.inmem_ha import InmemHABackend


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
        (_IgnoresGuards, check_commit_conflict_writes_nothing),
        (_IgnoresGuards, check_update_concurrent_increments),
        (_IgnoresGuards, check_update_creates_once),
        (_GuardsAfterFirstWrite, check_commit_conflict_writes_nothing),
        (_SuspendsBetweenCheckAndWrite, check_update_concurrent_increments),
        (_AbsentIsEmpty, check_commit_guard_absent),
    ],
)
def test_backend_suite_catches(broken: Callable[[], Backend], check: Check) -> None:
    with pytest.raises(AssertionError):
        asyncio.run(run_check(broken, check))


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
        (_NoFence, check_ha_fence),
        (_NoFence, check_ha_ttl),
        (_FenceIgnoresOwner, check_ha_fence),
        (_Reentrant, check_ha_acquire_is_exclusive),
        (_IgnoresMinEpoch, check_ha_epochs_only_grow),
        (_ReleasesAnyEpoch, check_ha_release_only_exact),
        (_ReleasesForeign, check_ha_release_never_foreign),
        (_IndexPerCommit, check_ha_write_index),
    ],
)
def test_ha_suite_catches(broken: type[InmemHABackend], check: HACheck) -> None:
    with pytest.raises(AssertionError):
        asyncio.run(run_ha_check(_broken_ha(broken), check))
