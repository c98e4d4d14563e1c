"""The `Backend` checks of plain key/value storage: get/put/delete, Vault's list semantics
(immediate children, sorted, sub-folders with "/", emptied folders gone), special keys,
large values, and concurrent writers. Each check gets a fresh, empty backend."""

from __future__ import annotations

import asyncio
import os

from transit.storage.base import Backend


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
