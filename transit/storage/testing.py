"""The storage conformance suite: every `Backend` must pass all of it.

Two ways to run it:

- pytest: subclass `BackendConformance` in a `Test*` class and provide a `backend_factory`
  fixture returning a zero-argument callable that builds a fresh, **empty** backend (it may
  return the backend or an awaitable of it; it is called inside the test's event loop, which
  matters for loop-bound clients such as redis.asyncio). If the backend has an async
  `aclose()` or `close()` it is awaited at the end of each test::

      class TestInmem(BackendConformance):
          @pytest.fixture
          def backend_factory(self):
              return InmemBackend

- anywhere else: `await check_backend(factory)` runs every check, each on a fresh backend.

Does not import pytest, so importing it costs nothing outside the tests.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from transit.storage.base import Backend

BackendFactory = Callable[[], Backend | Awaitable[Backend]]
Check = Callable[[Backend], Coroutine[Any, Any, None]]


async def check_protocol(b: Backend) -> None:
    assert isinstance(b, Backend)
    assert await b.list("") == []


async def check_missing_key(b: Backend) -> None:
    assert await b.get("missing") is None
    assert await b.get("no/such/nested/key") is None


async def check_round_trip(b: Backend) -> None:
    values = {
        "text": b"hello world",
        "empty": b"",
        "binary": bytes(range(256)),
        "nul": b"\x00\x00\x00",
        "deep/er/key": b"\xff\xfe\x00\x01",
    }
    for key, value in values.items():
        await b.put(key, value)
    for key, value in values.items():
        got = await b.get(key)
        assert got == value, key
        assert type(got) is bytes, key


async def check_overwrite(b: Backend) -> None:
    await b.put("k", b"one")
    await b.put("k", b"two-longer-value")
    assert await b.get("k") == b"two-longer-value"
    await b.put("k", b"3")
    assert await b.get("k") == b"3"
    assert await b.list("") == ["k"]


async def check_delete(b: Backend) -> None:
    await b.put("k", b"v")
    await b.put("other", b"w")
    await b.delete("k")
    assert await b.get("k") is None
    assert await b.get("other") == b"w"
    await b.delete("k")  # deleting again is not an error
    await b.delete("never/existed")
    assert await b.list("") == ["other"]


async def check_list_nested(b: Backend) -> None:
    for key in ("a/b/c", "a/b/d", "a/e", "f", "g/h", "a/b/c/x"):
        await b.put(key, b"1")
    assert await b.list("") == ["a/", "f", "g/"]
    assert await b.list("a/") == ["b/", "e"]
    assert await b.list("a/b/") == ["c", "c/", "d"]
    assert await b.list("a/b/c/") == ["x"]
    assert await b.list("g/") == ["h"]
    assert await b.list("nope/") == []
    assert await b.list("a/b/c/x/") == []


async def check_list_leaf_and_folder(b: Backend) -> None:
    await b.put("a", b"leaf")
    await b.put("a/b", b"child")
    await b.put("a-b", b"sibling")
    await b.put("a.c", b"sibling")
    assert await b.list("") == ["a", "a-b", "a.c", "a/"]
    assert await b.get("a") == b"leaf"
    assert await b.get("a/b") == b"child"
    await b.delete("a")
    assert await b.list("") == ["a-b", "a.c", "a/"]
    assert await b.get("a/b") == b"child"


async def check_list_sorted_unique(b: Backend) -> None:
    keys = [f"k{i:03d}" for i in range(50)] + [f"dir/{i}" for i in range(20)]
    for key in reversed(keys):
        await b.put(key, b"x")
    listed = await b.list("")
    assert listed == sorted(set(listed))
    assert listed == sorted([f"k{i:03d}" for i in range(50)] + ["dir/"])
    assert await b.list("dir/") == sorted(str(i) for i in range(20))


async def check_empty_folder_disappears(b: Backend) -> None:
    await b.put("x/y/z", b"1")
    await b.put("x/y/w", b"2")
    await b.put("keep", b"3")
    await b.delete("x/y/z")
    assert await b.list("x/y/") == ["w"]
    await b.delete("x/y/w")
    assert await b.list("x/y/") == []
    assert await b.list("x/") == []
    assert await b.list("") == ["keep"]
    await b.put("x/y/z", b"again")  # the folder can be recreated
    assert await b.get("x/y/z") == b"again"


async def check_special_keys(b: Backend) -> None:
    keys = [
        "dots.in.name",
        "dash-es",
        "under_score",
        "_leading",
        ".hidden",
        "%41",
        "sp ace",
        "ключ/ünïcødé-值",
        "emoji/🔑",
        "_folder/x",
        ".dotdir/y",
        "a%2Fb",
        "ends.",
    ]
    for i, key in enumerate(keys):
        await b.put(key, str(i).encode())
    for i, key in enumerate(keys):
        assert await b.get(key) == str(i).encode(), key
    assert await b.get("A") is None
    assert await b.get("a/b") is None
    root = await b.list("")
    assert root == sorted(
        [
            "dots.in.name",
            "dash-es",
            "under_score",
            "_leading",
            ".hidden",
            "%41",
            "sp ace",
            "ключ/",
            "emoji/",
            "_folder/",
            ".dotdir/",
            "a%2Fb",
            "ends.",
        ]
    )
    assert await b.list("ключ/") == ["ünïcødé-值"]
    assert await b.list("_folder/") == ["x"]
    assert await b.list(".dotdir/") == ["y"]


async def check_large_value(b: Backend) -> None:
    big = os.urandom(1 << 20)
    await b.put("big", big)
    assert await b.get("big") == big
    bigger = os.urandom((1 << 20) + 17)
    await b.put("big", bigger)
    assert await b.get("big") == bigger


async def check_concurrent_puts(b: Backend) -> None:
    n = 64
    await asyncio.gather(*(b.put(f"c/{i:02d}", f"v{i}".encode()) for i in range(n)))
    got = await asyncio.gather(*(b.get(f"c/{i:02d}") for i in range(n)))
    assert got == [f"v{i}".encode() for i in range(n)]
    assert await b.list("c/") == [f"{i:02d}" for i in range(n)]
    # Many writers on one key: the result is one of the written values, never a mix.
    values = [bytes([i]) * 4096 for i in range(32)]
    await asyncio.gather(*(b.put("same", v) for v in values))
    assert await b.get("same") in values


async def check_concurrent_put_delete(b: Backend) -> None:
    """Puts racing deletes in the same folder (a file backend removes emptied folders)."""
    for i in range(40):
        await asyncio.gather(b.put(f"race/k{i:02d}", b"x"), b.delete(f"race/k{i - 1:02d}"))
    assert await b.list("race/") == ["k39"]
    assert await b.get("race/k39") == b"x"


CHECKS: tuple[Check, ...] = (
    check_protocol,
    check_missing_key,
    check_round_trip,
    check_overwrite,
    check_delete,
    check_list_nested,
    check_list_leaf_and_folder,
    check_list_sorted_unique,
    check_empty_folder_disappears,
    check_special_keys,
    check_large_value,
    check_concurrent_puts,
    check_concurrent_put_delete,
)


async def _close(backend: Backend) -> None:
    for name in ("aclose", "close"):
        fn = getattr(backend, name, None)
        if fn is not None:
            result = fn()
            if inspect.isawaitable(result):
                await result
            return


async def run_check(factory: BackendFactory, check: Check) -> None:
    """Run one check on a fresh backend from `factory`, closing it afterwards."""
    made = factory()
    backend = await made if inspect.isawaitable(made) else made
    try:
        await check(backend)
    finally:
        await _close(backend)


async def check_backend(factory: BackendFactory) -> None:
    """Run the whole suite; raises AssertionError naming the first failing check."""
    for check in CHECKS:
        try:
            await run_check(factory, check)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


class BackendConformance:
    """Mix-in test class; subclasses provide the `backend_factory` fixture."""

    def _run(self, factory: BackendFactory, check: Check) -> None:
        asyncio.run(run_check(factory, check))

    def test_protocol(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_protocol)

    def test_missing_key(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_missing_key)

    def test_round_trip(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_round_trip)

    def test_overwrite(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_overwrite)

    def test_delete(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_delete)

    def test_list_nested(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_list_nested)

    def test_list_leaf_and_folder(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_list_leaf_and_folder)

    def test_list_sorted_unique(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_list_sorted_unique)

    def test_empty_folder_disappears(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_empty_folder_disappears)

    def test_special_keys(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_special_keys)

    def test_large_value(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_large_value)

    def test_concurrent_puts(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_concurrent_puts)

    def test_concurrent_put_delete(self, backend_factory: BackendFactory) -> None:
        self._run(backend_factory, check_concurrent_put_delete)
