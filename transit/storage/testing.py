"""The storage conformance suites: every `Backend`, and every `HABackend`, must pass all of them.

This module holds the `Backend` suite and the shared runner; the `HABackend` suite is in
`storage/testing_ha.py` (same shape: `HA_CHECKS`, `HABackendConformance`, `check_ha_backend`).

Contracts in `storage/base.py` (DESIGN §2, §7; docs/dev/contracts.md §6.1). Two suites:

- `CHECKS` (a `Backend`): get/put/delete/list with Vault's list semantics, `get_versioned`,
  guarded `commit` (all or nothing, `errors.Conflict`), and read-modify-write through
  `storage.update.update` racing from many tasks. Each check gets a fresh, **empty** backend.
- `HA_CHECKS` (an `HABackend`): the lock (acquire/renew/release/holder, TTL, epochs that
  only grow, `min_epoch`), the fence on every write (`errors.Fenced`, nothing written) and
  the write index. Each check gets `nodes`, a `Nodes` that opens handles on one fresh,
  empty shared store: `await nodes("node-a")` is node A's own backend object. Owners are
  opaque strings without ":" or whitespace.

Two ways to run them:

- pytest: subclass `BackendConformance` in a `Test*` class and provide a `backend_factory`
  fixture returning a zero-argument callable that builds a fresh, empty backend (it may
  return the backend or an awaitable of it; it is called inside the test's event loop, which
  matters for loop-bound clients such as redis.asyncio). If the backend has an async
  `aclose()` or `close()` it is awaited at the end of each test::

      class TestInmem(BackendConformance):
          @pytest.fixture
          def backend_factory(self):
              return InmemBackend

  Likewise `HABackendConformance` with an `ha_factory` fixture: a zero-argument callable
  returning `connect(owner, lock_ttl)`, which opens a handle (a backend object, or an
  awaitable of one) on a store that is fresh and empty for each `ha_factory()` call and
  shared by every `connect` of that call.
- anywhere else: `await check_backend(factory)` / `await check_ha_backend(ha_factory)` run
  every check.

Does not import pytest, so importing it costs nothing outside the tests.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from transit.errors import Conflict
from transit.storage.base import ABSENT, Backend, Versioned, Write
from transit.storage.update import update

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




# -- get_versioned and commit --------------------------------------------------------------


async def _raises(kind: type[BaseException], call: Awaitable[Any]) -> BaseException:
    """Await `call`, which must raise `kind` (exactly that class or a subclass)."""
    try:
        await call
    except kind as exc:
        return exc
    raise AssertionError(f"expected {kind.__name__}, nothing was raised")


async def _absent(b: Backend, *keys: str) -> None:
    for key in keys:
        assert await b.get(key) is None, f"{key} was written"


async def check_get_versioned(b: Backend) -> None:
    """Absent: (None, ABSENT). Present: the value and an opaque, non-empty version that stays
    put while the entry does and changes when its value does."""
    absent = await b.get_versioned("v/missing")
    assert isinstance(absent, Versioned)
    assert absent == Versioned(None, ABSENT)
    await b.put("v/k", b"one")
    one = await b.get_versioned("v/k")
    assert one.value == b"one" and type(one.value) is bytes
    assert isinstance(one.version, str) and one.version != ABSENT
    assert (await b.get_versioned("v/k")).version == one.version  # stable while unchanged
    await b.put("v/k", b"two")
    two = await b.get_versioned("v/k")
    assert two.value == b"two"
    assert two.version not in (ABSENT, one.version)
    await b.put("v/empty", b"")  # an empty value is present, not absent
    empty = await b.get_versioned("v/empty")
    assert empty.value == b"" and empty.version != ABSENT
    await b.delete("v/k")
    assert await b.get_versioned("v/k") == Versioned(None, ABSENT)


async def check_commit_unguarded(b: Backend) -> None:
    await b.commit([Write("c/a", b"1"), Write("c/b/x", b"2")])
    assert await b.get("c/a") == b"1"
    assert await b.get("c/b/x") == b"2"
    assert await b.list("c/") == ["a", "b/"]
    await b.commit([Write("c/a", None), Write("c/new", b"3")], None)
    assert await b.get("c/a") is None
    assert await b.list("c/") == ["b/", "new"]
    await b.commit([], {})  # nothing to do is not an error
    await b.commit([Write("c/durable", b"4")], durable=True)  # no replicas: nothing to wait for
    assert await b.get("c/durable") == b"4"
    await b.commit([Write("c/missing", None)])  # deleting a missing key is not an error


async def check_commit_guard_matches(b: Backend) -> None:
    await b.put("g/k", b"v1")
    read = await b.get_versioned("g/k")
    await b.commit([Write("g/k", b"v2"), Write("g/log/1", b"x")], {"g/k": read.version})
    assert await b.get("g/k") == b"v2"
    assert await b.get("g/log/1") == b"x"
    # ABSENT on an absent entry: create it.
    await b.commit([Write("g/new", b"n")], {"g/new": ABSENT})
    assert await b.get("g/new") == b"n"
    # The guarded entry need not be among the writes.
    k = await b.get_versioned("g/k")
    await b.commit([Write("g/other", b"o")], {"g/k": k.version, "g/absent": ABSENT})
    assert await b.get("g/other") == b"o"
    # A guarded delete.
    n = await b.get_versioned("g/new")
    await b.commit([Write("g/new", None)], {"g/new": n.version}, durable=True)
    assert await b.get("g/new") is None
    assert await b.list("g/") == ["k", "log/", "other"]


async def check_commit_conflict_writes_nothing(b: Backend) -> None:
    """A guard on an entry changed since it was read: Conflict, and not one write of the
    commit applied (puts of new and existing keys, deletes, folder listings)."""
    await b.put("g/k", b"v1")
    await b.put("g/gone", b"keep")
    read = await b.get_versioned("g/k")
    await b.put("g/k", b"v1-other")  # another writer, in between
    writes = [
        Write("g/new/a", b"1"), Write("g/new2", b"2"), Write("g/gone", None),
        Write("g/k", b"mine"),
    ]
    await _raises(Conflict, b.commit(writes, {"g/k": read.version}))
    await _raises(Conflict, b.commit(writes, {"g/k": read.version}, durable=True))
    assert await b.get("g/k") == b"v1-other"
    assert await b.get("g/gone") == b"keep"
    await _absent(b, "g/new/a", "g/new2")
    assert await b.list("g/") == ["gone", "k"]
    assert await b.list("g/new/") == []

    # One stale guard among several good ones is enough.
    good = await b.get_versioned("g/gone")
    await _raises(Conflict, b.commit(
        [Write("g/x", b"1")], {"g/gone": good.version, "g/k": read.version, "g/none": ABSENT}
    ))
    await _absent(b, "g/x")
    # A guard-only commit (no writes) still compares.
    await _raises(Conflict, b.commit([], {"g/k": read.version}))


async def check_commit_guard_absent(b: Backend) -> None:
    """ABSENT means "must not exist": an existing entry (even empty) is a Conflict; so is an
    entry created, or deleted, after it was read."""
    await b.put("a/exists", b"x")
    await b.put("a/empty", b"")
    for key in ("a/exists", "a/empty"):
        await _raises(Conflict, b.commit([Write(key, b"new"), Write("a/side", b"1")],
                                          {key: ABSENT}))
    assert await b.get("a/exists") == b"x"
    assert await b.get("a/empty") == b""
    await _absent(b, "a/side")

    was_absent = await b.get_versioned("a/later")
    await b.put("a/later", b"created by another writer")
    await _raises(Conflict, b.commit([Write("a/later", b"mine")],
                                      {"a/later": was_absent.version}))
    assert await b.get("a/later") == b"created by another writer"

    present = await b.get_versioned("a/exists")
    await b.delete("a/exists")  # deleted by another writer
    await _raises(Conflict, b.commit([Write("a/exists", b"mine")],
                                      {"a/exists": present.version}))
    await _absent(b, "a/exists")
    # Deleted and written back with another value: still not the version read.
    await b.put("a/exists", b"y")
    await _raises(Conflict, b.commit([Write("a/exists", b"mine")],
                                      {"a/exists": present.version}))
    assert await b.get("a/exists") == b"y"


async def check_commit_many_writes(b: Backend) -> None:
    """Puts and deletes in one commit, applied in order; folders kept right after deletes."""
    for key in ("m/a/1", "m/a/2", "m/b/1", "m/c", "top"):
        await b.put(key, b"old")
    await b.commit([
        Write("m/a/1", None), Write("m/a/2", None), Write("m/b/2", b"new"),
        Write("m/d/e/f", b"deep"), Write("m/c", b"changed"), Write("top", None),
    ])
    assert await b.list("") == ["m/"]
    assert await b.list("m/") == ["b/", "c", "d/"]
    assert await b.list("m/a/") == []
    assert await b.list("m/b/") == ["1", "2"]
    assert await b.list("m/d/") == ["e/"]
    assert await b.list("m/d/e/") == ["f"]
    assert await b.get("m/c") == b"changed"
    await _absent(b, "m/a/1", "m/a/2", "top")
    # In order: a put then a delete of one key leaves it absent, and the other way round.
    await b.commit([Write("m/x/y", b"1"), Write("m/x/y", None)])
    await _absent(b, "m/x/y")
    assert await b.list("m/") == ["b/", "c", "d/"]
    await b.commit([Write("m/z", None), Write("m/z", b"2"), Write("m/z", b"3")])
    assert await b.get("m/z") == b"3"
    # Empty every folder in one commit.
    await b.commit([Write(k, None) for k in ("m/b/1", "m/b/2", "m/c", "m/d/e/f", "m/z")])
    assert await b.list("") == []
    assert await b.list("m/") == []


# -- read-modify-write through update() ------------------------------------------------------


async def check_update_concurrent_increments(b: Backend) -> None:
    """50 tasks increment one counter through `update`: every increment lands once, each
    task sees a distinct result, and the guard was exercised (some commits conflicted)."""
    calls = 0

    async def incr(values: dict[str, bytes | None]) -> tuple[list[Write], int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)  # let the other tasks read the same version: force the race
        n = int(values["ctr/n"] or b"0") + 1
        return [Write("ctr/n", str(n).encode()), Write(f"ctr/log/{n:03d}", b"x")], n

    results = await asyncio.gather(*(update(b, ["ctr/n"], incr) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await b.get("ctr/n") == b"50"
    assert await b.list("ctr/log/") == [f"{n:03d}" for n in range(1, 51)]
    assert calls > 50, "no commit ever conflicted: the guard was not exercised"


async def check_update_creates_once(b: Backend) -> None:
    """20 tasks create one new entry if absent: exactly one creates it, all see its value."""

    def create(i: int) -> Callable[..., Awaitable[Any]]:
        async def change(values: dict[str, bytes | None]) -> tuple[list[Write], Any]:
            await asyncio.sleep(0)
            if values["once"] is not None:
                return [], (False, values["once"])
            mine = f"v{i}".encode()
            return [Write("once", mine)], (True, mine)

        return change

    results = await asyncio.gather(*(update(b, ["once"], create(i)) for i in range(20)))
    created = [value for made, value in results if made]
    assert len(created) == 1, created
    assert {value for _, value in results} == {created[0]}
    assert await b.get("once") == created[0]


async def check_update_several_keys(b: Backend) -> None:
    """A guard on two entries: 30 transfers of one unit from a to b; the sum never moves."""
    await b.put("acct/a", b"30")
    await b.put("acct/b", b"0")

    async def move(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
        await asyncio.sleep(0)
        a, c = int(values["acct/a"] or b"0"), int(values["acct/b"] or b"0")
        return [Write("acct/a", str(a - 1).encode()), Write("acct/b", str(c + 1).encode())], None

    await asyncio.gather(*(update(b, ["acct/a", "acct/b"], move) for _ in range(30)))
    assert (await b.get("acct/a"), await b.get("acct/b")) == (b"0", b"30")


async def check_update_abort_and_noop(b: Backend) -> None:
    """`change` raising aborts with nothing written; no writes means no commit."""
    await b.put("u/k", b"1")

    def boom(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
        raise ValueError("refused")

    await _raises(ValueError, update(b, ["u/k", "u/other"], boom))
    assert await b.get("u/k") == b"1"
    result = await update(b, ["u/k"], lambda values: ([], values["u/k"]))
    assert result == b"1"
    assert await b.list("u/") == ["k"]




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
    check_get_versioned,
    check_commit_unguarded,
    check_commit_guard_matches,
    check_commit_conflict_writes_nothing,
    check_commit_guard_absent,
    check_commit_many_writes,
    check_update_concurrent_increments,
    check_update_creates_once,
    check_update_several_keys,
    check_update_abort_and_noop,
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
    """Run the whole `Backend` suite; raises AssertionError naming the first failing check."""
    for check in CHECKS:
        try:
            await run_check(factory, check)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


class BackendConformance:
    """Mix-in test class; subclasses provide the `backend_factory` fixture. One test per
    check of `CHECKS`: `test_<check name without "check_">`."""


def _backend_test(check: Check) -> Callable[[Any, BackendFactory], None]:
    def test(self: Any, backend_factory: BackendFactory) -> None:
        asyncio.run(run_check(backend_factory, check))

    test.__doc__ = check.__doc__
    return test


def _install(cls: type, checks: tuple[Any, ...], make: Callable[[Any], Any]) -> None:
    for check in checks:
        name = "test_" + check.__name__.removeprefix("check_")
        test = make(check)
        test.__name__ = test.__qualname__ = name
        setattr(cls, name, test)


_install(BackendConformance, CHECKS, _backend_test)
