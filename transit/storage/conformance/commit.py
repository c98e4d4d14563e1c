"""The `Backend` checks of `get_versioned` and guarded `commit`: versions that change with the
value, writes applied in order and all or nothing, `errors.Conflict` on a stale guard with
nothing written, `ABSENT` meaning "must not exist". Each check gets a fresh, empty backend."""

from __future__ import annotations

from transit.errors import Conflict
from transit.storage.base import ABSENT, Backend, Versioned, Write
from transit.storage.conformance.support import assert_absent, assert_raises


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
    await assert_raises(Conflict, b.commit(writes, {"g/k": read.version}))
    await assert_raises(Conflict, b.commit(writes, {"g/k": read.version}, durable=True))
    assert await b.get("g/k") == b"v1-other"
    assert await b.get("g/gone") == b"keep"
    await assert_absent(b, "g/new/a", "g/new2")
    assert await b.list("g/") == ["gone", "k"]
    assert await b.list("g/new/") == []

    # One stale guard among several good ones is enough.
    good = await b.get_versioned("g/gone")
    await assert_raises(Conflict, b.commit(
        [Write("g/x", b"1")], {"g/gone": good.version, "g/k": read.version, "g/none": ABSENT}
    ))
    await assert_absent(b, "g/x")
    # A guard-only commit (no writes) still compares.
    await assert_raises(Conflict, b.commit([], {"g/k": read.version}))


async def check_commit_guard_absent(b: Backend) -> None:
    """ABSENT means "must not exist": an existing entry (even empty) is a Conflict; so is an
    entry created, or deleted, after it was read."""
    await b.put("a/exists", b"x")
    await b.put("a/empty", b"")
    for key in ("a/exists", "a/empty"):
        await assert_raises(Conflict, b.commit([Write(key, b"new"), Write("a/side", b"1")],
                                          {key: ABSENT}))
    assert await b.get("a/exists") == b"x"
    assert await b.get("a/empty") == b""
    await assert_absent(b, "a/side")

    was_absent = await b.get_versioned("a/later")
    await b.put("a/later", b"created by another writer")
    await assert_raises(Conflict, b.commit([Write("a/later", b"mine")],
                                      {"a/later": was_absent.version}))
    assert await b.get("a/later") == b"created by another writer"

    present = await b.get_versioned("a/exists")
    await b.delete("a/exists")  # deleted by another writer
    await assert_raises(Conflict, b.commit([Write("a/exists", b"mine")],
                                      {"a/exists": present.version}))
    await assert_absent(b, "a/exists")
    # Deleted and written back with another value: still not the version read.
    await b.put("a/exists", b"y")
    await assert_raises(Conflict, b.commit([Write("a/exists", b"mine")],
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
    await assert_absent(b, "m/a/1", "m/a/2", "top")
    # In order: a put then a delete of one key leaves it absent, and the other way round.
    await b.commit([Write("m/x/y", b"1"), Write("m/x/y", None)])
    await assert_absent(b, "m/x/y")
    assert await b.list("m/") == ["b/", "c", "d/"]
    await b.commit([Write("m/z", None), Write("m/z", b"2"), Write("m/z", b"3")])
    assert await b.get("m/z") == b"3"
    # Empty every folder in one commit.
    await b.commit([Write(k, None) for k in ("m/b/1", "m/b/2", "m/c", "m/d/e/f", "m/z")])
    assert await b.list("") == []
    assert await b.list("m/") == []
