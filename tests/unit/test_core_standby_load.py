"""Becoming a performance standby never writes (issue 15, item 1): state the active node made
that has not reached this node's storage yet is waited for with backoff, and the node says
why meanwhile (`core.roles.standby_problem`), instead of trying to create it and staying a plain
standby for good."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from transit.core import Core
from transit.storage.inmem import InmemBackend


class FakeHA:
    is_active = False

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class WatchedBackend(InmemBackend):
    """Records every write that reaches storage, and counts the reads of each key."""

    __slots__ = ("fence", "reads", "writes")

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.reads: dict[str, int] = {}
        self.fence: int | None = None

    async def get(self, key: str) -> bytes | None:
        self.reads[key] = self.reads.get(key, 0) + 1
        return await super().get(key)

    async def put(self, key: str, value: bytes) -> None:
        self.writes.append(key)
        await super().put(key, value)

    async def commit(self, writes: Any, *args: Any, **kwargs: Any) -> None:
        self.writes += [w.key for w in writes]
        await super().commit(writes, *args, **kwargs)


async def _standby(physical: WatchedBackend, key: bytes) -> Core:
    core = Core(physical)
    assert await core.seal.unseal(key)
    core.ha = FakeHA()  # type: ignore[assignment]
    core.perf_standby_enabled = True
    return core


@pytest.mark.parametrize("missing", ["sys/token/salt", "core/cluster/local/info",
                                     "sys/policy/default"])
def test_missing_state_is_waited_for_never_created(missing: str) -> None:
    async def go() -> None:
        physical = WatchedBackend()
        active = Core(physical)
        _root, key = await active.setup_dev()
        saved = physical._data.pop(missing)  # not replicated to the standby's storage yet
        standby = await _standby(physical, key)
        physical.writes.clear()

        await standby.post_unseal()
        assert not standby.perf_standby
        assert missing.rsplit("/", 1)[-1] in standby.roles.standby_problem
        # Several retries really ran (each reads the missing key again): a positive barrier,
        # where a sleep would only hope they had. The loop is a polling limit (10 s).
        tried = physical.reads.get(missing, 0)
        for _ in range(200):
            if physical.reads.get(missing, 0) >= tried + 3:
                break
            await asyncio.sleep(0.05)
        assert physical.reads.get(missing, 0) >= tried + 3, "the standby did not retry"
        assert not standby.perf_standby and standby.roles.standby_problem
        assert physical.writes == [], "becoming a standby wrote storage"

        await physical.put(missing, saved)  # replication catches up
        physical.writes.clear()
        for _ in range(100):
            if standby.perf_standby:
                break
            await asyncio.sleep(0.05)
        assert standby.perf_standby and standby.roles.standby_problem == ""
        assert standby.tokens.salt_id("x") == active.tokens.salt_id("x")
        assert standby.cluster.id == active.cluster.id
        assert physical.writes == []
        await standby.pre_seal_local()

    asyncio.run(go())


def test_sealing_stops_the_retries() -> None:
    async def go() -> None:
        physical = WatchedBackend()
        active = Core(physical)
        _root, key = await active.setup_dev()
        saved = physical._data.pop("sys/token/salt")
        standby = await _standby(physical, key)
        await standby.post_unseal()
        retry = standby.roles._standby_retry
        assert retry is not None
        await standby.pre_seal_local()
        # The retry task has finished (cancelled): nothing is left that could load the state,
        # which a sleep after the put below could only sample.
        assert standby.roles._standby_retry is None and retry.done()
        await physical.put("sys/token/salt", saved)
        assert not standby.perf_loaded

    asyncio.run(go())


def test_a_loaded_standby_has_no_problem() -> None:
    async def go() -> None:
        physical = WatchedBackend()
        active = Core(physical)
        _root, key = await active.setup_dev()
        standby = await _standby(physical, key)
        physical.writes.clear()
        await standby.post_unseal()
        assert standby.perf_standby and standby.roles.standby_problem == ""
        assert standby.roles._standby_retry is None
        assert physical.writes == []

    asyncio.run(go())
