"""`transit.pools`: work sent to the process pool comes back (results and exceptions), the
event loop keeps turning meanwhile, and a process-pool call from the event loop's own thread
runs inline instead of blocking it."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from tests.loop import ticks_while
from transit import pools
from transit.errors import UserError


def _pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def _fail(message: str) -> None:
    raise UserError(message)


def _spin(seconds: float) -> int:
    """Pure-Python work that holds the GIL."""
    import time

    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def test_in_process_returns_results_and_raises_the_callers_errors() -> None:
    async def go() -> None:
        (pid, square), ticks = await ticks_while(pools.in_process(_pid_and_square, 12))
        assert square == 144 and pid != os.getpid()
        assert ticks > 0  # the loop kept turning while the pool worked
        with pytest.raises(UserError, match="^bad policy$"):
            await pools.in_process(_fail, "bad policy")
        n, ticks = await ticks_while(pools.in_process(_spin, 0.3))
        assert n > 0 and ticks > 100

    try:
        asyncio.run(go())
    finally:
        pools.shutdown()


def test_in_process_sync_is_inline_on_the_main_thread_and_pooled_elsewhere() -> None:
    try:
        pools.shutdown()
        assert pools.in_process_sync(_pid_and_square, 3) == (os.getpid(), 9)
        assert pools._processes is None  # the main thread never waits on the pool
        out: list[tuple[int, int]] = []
        t = threading.Thread(target=lambda: out.append(pools.in_process_sync(_pid_and_square, 4)))
        t.start()
        t.join(60)
        assert out and out[0][1] == 16 and out[0][0] != os.getpid()
    finally:
        pools.shutdown()
    assert pools._processes is None and pools._threads is None


def test_in_thread_and_a_fresh_pool_after_shutdown() -> None:
    async def go() -> str:
        return await pools.in_thread(lambda: threading.current_thread().name)

    name = asyncio.run(go())
    assert name.startswith("transit-cpu")
    pools.shutdown()
    assert asyncio.run(go()).startswith("transit-cpu")  # created again on next use
    pools.shutdown()
