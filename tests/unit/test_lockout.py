"""User lockout counters (transit/lockout.py) over an in-memory backend and a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from transit.errors import UserError
from transit.lockout import Lockout, Settings, parse_config
from transit.storage.inmem import InmemBackend


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_settings_defaults_and_config() -> None:
    assert Settings.of({}) == Settings(5, 900, 900, False)
    cfg = parse_config({"lockout_threshold": "3", "lockout_duration": "10m",
                        "lockout_disable": "false", "unknown": 1})
    assert cfg == {"user_lockout_counter_reset_duration": 0, "user_lockout_disable": False,
                   "user_lockout_duration": 600, "user_lockout_threshold": 3}
    assert Settings.of({"user_lockout_config": cfg}) == Settings(3, 600, 900, False)
    merged = parse_config({"lockout_counter_reset": 60}, cfg)
    assert merged["user_lockout_threshold"] == 3
    assert merged["user_lockout_counter_reset_duration"] == 60
    for bad in ({"lockout_threshold": "x"}, {"lockout_duration": "soon"},
                {"lockout_threshold": -1}, "not-a-map"):
        with pytest.raises(UserError):
            parse_config(bad)


def test_lock_reset_unlock() -> None:
    async def go() -> None:
        clock = Clock()
        lock = Lockout(InmemBackend(), clock)
        s = Settings(3, 60, 30, False)
        for _ in range(2):
            await lock.failed("acc", "bob", s)
        assert not await lock.locked("acc", "bob", s)
        clock.now += 31  # quiet for longer than counter_reset: the count starts again
        await lock.failed("acc", "bob", s)
        await lock.failed("acc", "bob", s)
        assert not await lock.locked("acc", "bob", s)
        await lock.failed("acc", "bob", s)
        assert await lock.locked("acc", "bob", s)
        assert not await lock.locked("acc", "bob", Settings(3, 60, 30, True))  # disabled
        assert not await lock.locked("other", "bob", s)
        assert await lock.locked_users() == {"acc": ["bob"]}
        clock.now += 61  # the lock expires
        assert not await lock.locked("acc", "bob", s)
        assert await lock.locked_users() == {}
        for _ in range(3):
            await lock.failed("acc", "bob", s)
        await lock.unlock("acc", "bob")
        assert not await lock.locked("acc", "bob", s)
        await lock.failed("acc", "amy", s)
        await lock.succeeded("acc", "amy")  # success clears the count
        await lock.failed("acc", "amy", s)
        await lock.failed("acc", "amy", s)
        assert not await lock.locked("acc", "amy", s)
        await lock.clear_mount("acc")
        assert await lock.locked_users() == {}
        await lock.failed("acc", "", s)  # no alias: never counted
        assert not await lock.locked("acc", "", s)

    asyncio.run(go())
