"""The storage conformance suites: every `Backend`, and every `HABackend`, must pass all of them.

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
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from transit.errors import Conflict, Fenced, StorageError
from transit.storage.base import ABSENT, Backend, HABackend, Versioned, Write
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


# -- the HA contract ---------------------------------------------------------------------------

HAConnect = Callable[[str, float], HABackend | Awaitable[HABackend]]
HAFactory = Callable[[], HAConnect]


class Nodes:
    """Handles on one shared store: `await nodes(owner, lock_ttl)` is a new backend object
    (as one server process would have); `close()` closes them all."""

    def __init__(self, connect: HAConnect) -> None:
        self._connect = connect
        self._open: list[HABackend] = []

    async def __call__(self, owner: str, lock_ttl: float = 10.0) -> HABackend:
        made = self._connect(owner, lock_ttl)
        handle = await made if inspect.isawaitable(made) else made
        self._open.append(handle)
        return handle

    async def close(self) -> None:
        for handle in self._open:
            await _close(handle)


HACheck = Callable[[Nodes], Coroutine[Any, Any, None]]


async def _wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def check_ha_protocol(nodes: Nodes) -> None:
    a = await nodes("node-a")
    assert isinstance(a, HABackend)
    assert a.fence is None
    assert a.last_index == 0
    assert await a.lock_holder() is None
    assert await a.write_index() == 0
    assert await a.list("") == []


async def check_ha_acquire_is_exclusive(nodes: Nodes) -> None:
    a, b = await nodes("node-a"), await nodes("node-b@instance-2")
    epoch = await a.acquire_lock("node-a")
    assert type(epoch) is int and epoch >= 1
    assert await b.acquire_lock("node-b@instance-2") is None
    assert await a.acquire_lock("node-a") is None  # held, even by the caller: no re-entry
    assert await a.lock_holder() == ("node-a", epoch)
    assert await b.lock_holder() == ("node-a", epoch)


async def check_ha_concurrent_acquire(nodes: Nodes) -> None:
    handles = [await nodes(f"racer-{i}") for i in range(10)]
    got = await asyncio.gather(*(h.acquire_lock(f"racer-{i}") for i, h in enumerate(handles)))
    winners = [(i, e) for i, e in enumerate(got) if e is not None]
    assert len(winners) == 1, got
    i, epoch = winners[0]
    assert await handles[0].lock_holder() == (f"racer-{i}", epoch)


async def check_ha_epochs_only_grow(nodes: Nodes) -> None:
    a, b = await nodes("node-a"), await nodes("node-b")
    e1 = await a.acquire_lock("node-a")
    assert e1 is not None
    await a.release_lock("node-a", e1)
    assert await a.lock_holder() is None
    e2 = await b.acquire_lock("node-b")
    assert e2 is not None and e2 > e1
    await b.release_lock("node-b", e2)
    e3 = await a.acquire_lock("node-a", min_epoch=100)  # e.g. after a storage failover
    assert e3 is not None and e3 > 100
    assert await b.lock_holder() == ("node-a", e3)
    await a.release_lock("node-a", e3)
    e4 = await b.acquire_lock("node-b", min_epoch=5)  # a lower min_epoch never goes back
    assert e4 is not None and e4 > e3
    await b.release_lock("node-b", e4)
    e5 = await a.acquire_lock("node-a")
    assert e5 is not None and e5 > e4


async def check_ha_renew(nodes: Nodes) -> None:
    a, b = await nodes("node-a"), await nodes("node-b")
    epoch = await a.acquire_lock("node-a")
    assert epoch is not None
    assert await a.renew_lock("node-a", epoch)
    assert not await a.renew_lock("node-a", epoch + 1)  # wrong epoch
    assert not await a.renew_lock("node-a", epoch - 1)
    assert not await b.renew_lock("node-b", epoch)  # another owner
    assert await b.lock_holder() == ("node-a", epoch)
    await a.release_lock("node-a", epoch)
    assert not await a.renew_lock("node-a", epoch)  # released: renew cannot bring it back
    assert await a.lock_holder() is None


async def check_ha_release_only_exact(nodes: Nodes) -> None:
    """`release_lock(owner, epoch)` deletes the lock only if it holds exactly that value."""
    a, b = await nodes("node-a"), await nodes("node-b")
    epoch = await a.acquire_lock("node-a")
    assert epoch is not None
    await b.release_lock("node-b", epoch)  # another owner, the holder's epoch
    await a.release_lock("node-a", epoch + 1)  # the holder, another epoch
    await a.release_lock("node-a", epoch - 1)
    assert await b.lock_holder() == ("node-a", epoch)
    await a.release_lock("node-a", epoch)
    assert await b.lock_holder() is None
    await a.release_lock("node-a", epoch)  # releasing a free lock is not an error
    eb = await b.acquire_lock("node-b")
    assert eb is not None
    await a.release_lock("node-a", epoch)  # a's old epoch does not touch b's lock
    assert await a.lock_holder() == ("node-b", eb)


async def check_ha_release_never_foreign(nodes: Nodes) -> None:
    """One process never deletes a lock another process holds (issue 8 §4), even naming its
    exact value: refused (StorageError) or no effect. Two processes of one node id are two
    owners ("node@1", "node@2"), so this covers a duplicate node id too."""
    a, b = await nodes("node@1"), await nodes("node@2")
    epoch = await a.acquire_lock("node@1")
    assert epoch is not None
    try:
        await b.release_lock("node@1", epoch)
    except StorageError:
        pass
    assert await a.lock_holder() == ("node@1", epoch)
    assert await b.acquire_lock("node@2") is None


async def check_ha_ttl(nodes: Nodes) -> None:
    """A renewed lock outlives its TTL; one left alone expires, then its holder's fenced
    writes are refused and another node takes the lock at a higher epoch."""
    a, b = await nodes("node-a", 0.5), await nodes("node-b", 0.5)
    epoch = await a.acquire_lock("node-a")
    assert epoch is not None
    a.fence = epoch
    await a.put("k", b"1")
    until = time.monotonic() + 1.0  # twice the TTL
    while time.monotonic() < until:
        assert await a.renew_lock("node-a", epoch)
        await asyncio.sleep(0.05)
    assert await b.lock_holder() == ("node-a", epoch)
    assert await b.acquire_lock("node-b") is None

    async def expired() -> bool:
        return await b.lock_holder() is None

    await _wait_for(expired)  # no more renewals
    index = await b.write_index()
    await _raises(Fenced, a.put("k", b"2"))
    assert not await a.renew_lock("node-a", epoch)  # an expired lock cannot be renewed
    assert await a.get("k") == b"1"
    assert await b.write_index() == index
    later = await b.acquire_lock("node-b")
    assert later is not None and later > epoch


async def check_ha_fence(nodes: Nodes) -> None:
    """While `fence` is set, a write goes through only if the lock holds exactly this
    handle's owner and that epoch; otherwise Fenced, nothing written, index unchanged."""
    a, b = await nodes("node-a"), await nodes("node-b")
    await a.put("k", b"unfenced")  # fence None: no check
    ea = await a.acquire_lock("node-a")
    assert ea is not None
    a.fence = ea
    await a.put("k", b"a1")
    await a.commit([Write("k2", b"x")])
    await b.put("free", b"1")  # b is not fenced: its writes go through whoever holds the lock

    async def refused(h: HABackend, keys_before: list[str]) -> None:
        index, last = await a.write_index(), h.last_index
        v = await h.get_versioned("k")
        calls: list[Callable[[], Awaitable[None]]] = [
            lambda: h.put("k", b"stale"),
            lambda: h.put("n/new", b"stale"),
            lambda: h.delete("k"),
            lambda: h.delete("k2"),
            lambda: h.commit([Write("n/x", b"1"), Write("k", b"stale"), Write("k2", None)]),
            lambda: h.commit([Write("k", b"stale")], {"k": v.version}),  # good guard: fenced
            lambda: h.commit([Write("k", b"stale")], {"k": ABSENT}),  # both: Fenced first
            lambda: h.commit([Write("n/y", b"1")], durable=True),
        ]
        for call in calls:
            await _raises(Fenced, call())
        assert await a.get("k") == v.value
        assert await a.get("k2") == b"x"
        await _absent(a, "n/new", "n/x", "n/y")
        assert await a.list("") == keys_before
        assert await a.write_index() == index, "a refused write moved the index"
        assert h.last_index == last

    # Another owner with the holder's epoch (e.g. a second process with the same node id).
    b.fence = ea
    await refused(b, ["free", "k", "k2"])
    # A closed fence: an epoch no lock holds.
    b.fence = -1
    await refused(b, ["free", "k", "k2"])
    # No lock at all.
    await a.release_lock("node-a", ea)
    await refused(a, ["free", "k", "k2"])
    # Taken over: the old holder is stale, through update() too (never retried).
    eb = await b.acquire_lock("node-b")
    assert eb is not None and eb > ea
    b.fence = eb
    await b.put("k", b"b1")
    await refused(a, ["free", "k", "k2"])
    calls = 0

    def change(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
        nonlocal calls
        calls += 1
        return [Write("k", b"stale-update")], None

    await _raises(Fenced, update(a, ["k"], change))
    assert calls == 1, "update() retried a fenced commit"
    assert await a.get("k") == b"b1"
    a.fence = None  # unfenced writes always go through
    await a.put("k", b"unfenced-again")
    assert await b.get("k") == b"unfenced-again"


async def check_ha_write_index(nodes: Nodes) -> None:
    """The shared index moves by one per applied write (each write of a commit, a delete of
    a missing key too); `last_index` is the highest index a handle's own writes reached."""
    a, b = await nodes("node-a"), await nodes("node-b")
    i0 = await a.write_index()
    await a.put("x", b"1")
    assert a.last_index == await a.write_index() == i0 + 1
    await a.delete("x")
    await a.delete("never/existed")
    assert a.last_index == await b.write_index() == i0 + 3
    await a.commit([Write("c", b"1"), Write("d/e", b"2"), Write("c", None)])
    assert a.last_index == await a.write_index() == i0 + 6
    await b.put("y", b"1")
    assert b.last_index == await a.write_index() == i0 + 7
    assert a.last_index == i0 + 6
    assert await a.write_index(replica=True) == i0 + 7  # no replica: the same store

    v = await a.get_versioned("y")
    await a.commit([], {"y": v.version})  # a guard-only commit writes nothing
    await _raises(Conflict, a.commit([Write("y", b"2"), Write("z", b"3")], {"y": ABSENT}))
    assert await a.write_index() == i0 + 7
    assert a.last_index == i0 + 6

    await asyncio.gather(*(a.put(f"many/{i}", b"v") for i in range(20)))
    assert await b.write_index() == i0 + 27 == a.last_index
    epoch = await a.acquire_lock("node-a")  # the lock is not a write
    assert epoch is not None
    a.fence = epoch
    assert await a.renew_lock("node-a", epoch)
    assert await a.write_index() == i0 + 27
    await a.put("fenced", b"1")  # a fenced write counts like any other
    assert a.last_index == await a.write_index() == i0 + 28


async def check_ha_update_across_handles(nodes: Nodes) -> None:
    """Two backend objects (two processes, two nodes) race increments through update()."""
    a, b = await nodes("node-a"), await nodes("node-b")

    async def incr(values: dict[str, bytes | None]) -> tuple[list[Write], int]:
        await asyncio.sleep(0)
        n = int(values["ctr"] or b"0") + 1
        return [Write("ctr", str(n).encode())], n

    results = await asyncio.gather(*(update(h, ["ctr"], incr) for h in [a, b] * 25))
    assert sorted(results) == list(range(1, 51))
    assert await a.get("ctr") == await b.get("ctr") == b"50"


HA_CHECKS: tuple[HACheck, ...] = (
    check_ha_protocol,
    check_ha_acquire_is_exclusive,
    check_ha_concurrent_acquire,
    check_ha_epochs_only_grow,
    check_ha_renew,
    check_ha_release_only_exact,
    check_ha_release_never_foreign,
    check_ha_ttl,
    check_ha_fence,
    check_ha_write_index,
    check_ha_update_across_handles,
)


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


async def run_ha_check(ha_factory: HAFactory, check: HACheck) -> None:
    """Run one HA check on a fresh shared store from `ha_factory`, closing every handle."""
    nodes = Nodes(ha_factory())
    try:
        await check(nodes)
    finally:
        await nodes.close()


async def check_backend(factory: BackendFactory) -> None:
    """Run the whole `Backend` suite; raises AssertionError naming the first failing check."""
    for check in CHECKS:
        try:
            await run_check(factory, check)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


async def check_ha_backend(ha_factory: HAFactory) -> None:
    """Run the whole `HABackend` suite; raises AssertionError naming the first failing check."""
    for check in HA_CHECKS:
        try:
            await run_ha_check(ha_factory, check)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


class BackendConformance:
    """Mix-in test class; subclasses provide the `backend_factory` fixture. One test per
    check of `CHECKS`: `test_<check name without "check_">`."""


class HABackendConformance:
    """Mix-in test class; subclasses provide the `ha_factory` fixture. One test per check
    of `HA_CHECKS`: `test_<check name without "check_">`."""


def _backend_test(check: Check) -> Callable[[Any, BackendFactory], None]:
    def test(self: Any, backend_factory: BackendFactory) -> None:
        asyncio.run(run_check(backend_factory, check))

    test.__doc__ = check.__doc__
    return test


def _ha_test(check: HACheck) -> Callable[[Any, HAFactory], None]:
    def test(self: Any, ha_factory: HAFactory) -> None:
        asyncio.run(run_ha_check(ha_factory, check))

    test.__doc__ = check.__doc__
    return test


def _install(cls: type, checks: tuple[Any, ...], make: Callable[[Any], Any]) -> None:
    for check in checks:
        name = "test_" + check.__name__.removeprefix("check_")
        test = make(check)
        test.__name__ = test.__qualname__ = name
        setattr(cls, name, test)


_install(BackendConformance, CHECKS, _backend_test)
_install(HABackendConformance, HA_CHECKS, _ha_test)
