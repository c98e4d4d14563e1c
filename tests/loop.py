"""Whether the event loop kept turning while something ran (the CPU-off-the-loop tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Ticker:
    """Counts event-loop turns while some other coroutine runs (`with Ticker() as t:`)."""

    def __init__(self) -> None:
        self.ticks = 0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop:
            self.ticks += 1
            await asyncio.sleep(0)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True


async def ticks_while(awaitable: Awaitable[T]) -> tuple[T, int]:
    """`awaitable`'s result and how many times the loop turned while it ran."""
    with Ticker() as t:
        result = await awaitable
    return result, t.ticks
