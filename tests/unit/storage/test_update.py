"""`update()` (transit/storage/update.py): what is retried and what is not."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from transit.errors import (
    Conflict,
    Fenced,
    OutcomeUnknown,
    ReplicationUnconfirmed,
    StorageError,
)
from transit.storage.base import Write
from transit.storage.inmem import InmemBackend
from transit.storage.update import update


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
