"""The `Backend` checks of read-modify-write through `storage.update.update`, racing from many
tasks: every increment lands once, a create-if-absent creates once, a multi-key transfer
keeps its sum, and an aborted change writes nothing. Each check gets a fresh, empty backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from transit.storage.base import Backend, Write
from transit.storage.conformance.support import assert_raises
from transit.storage.update import update


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

    await assert_raises(ValueError, update(b, ["u/k", "u/other"], boom))
    assert await b.get("u/k") == b"1"
    result = await update(b, ["u/k"], lambda values: ([], values["u/k"]))
    assert result == b"1"
    assert await b.list("u/") == ["k"]
