"""`redis.persistence.check` against real redis-server processes started with and without AOF,
with eviction, with CONFIG renamed or denied by an ACL; and the test fixtures' own AOF (a
killed server comes back with what it acknowledged)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis

from tests.redis_fixtures import RedisServer, redis_available
from transit.errors import StorageError
from transit.storage.redis.persistence import ALWAYS_NOTE, EVERYSEC_NOTE, Assessment, check


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """start(**RedisServer kwargs) -> a running server, stopped after the test."""
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    started: list[RedisServer] = []

    def go(**kw: Any) -> RedisServer:
        srv = RedisServer(tmp_path, **kw).start()
        started.append(srv)
        return srv

    yield go
    for srv in reversed(started):
        srv.stop()


async def assessed(srv: RedisServer, **client_kw: Any) -> Assessment:
    client = aredis.Redis(host=srv.host, port=srv.port, socket_timeout=5, **client_kw)
    try:
        return await check(client)
    finally:
        await client.aclose()


def test_fixture_defaults_pass(start: Any) -> None:
    async def go() -> None:
        a = await assessed(start())
        assert a.ok, a.problems
        assert a.notes == (EVERYSEC_NOTE,)

    asyncio.run(go())


def test_appendfsync_always_passes(start: Any) -> None:
    async def go() -> None:
        a = await assessed(start(extra_args=["--appendfsync", "always"]))
        assert a.ok and a.notes == (ALWAYS_NOTE,)

    asyncio.run(go())


def test_without_aof_fails(start: Any) -> None:
    async def go() -> None:
        a = await assessed(start(aof=False))
        assert not a.ok and len(a.problems) == 1
        assert "appendonly is 'no'" in a.problems[0]

    asyncio.run(go())


def test_appendfsync_no_fails(start: Any) -> None:
    async def go() -> None:
        a = await assessed(start(extra_args=["--appendfsync", "no"]))
        assert not a.ok and "appendfsync is 'no'" in a.summary()

    asyncio.run(go())


def test_eviction_fails_with_or_without_maxmemory(start: Any) -> None:
    async def go() -> None:
        limited = await assessed(start(extra_args=["--maxmemory", "64mb",
                                                   "--maxmemory-policy", "allkeys-lru"]))
        assert not limited.ok and "maxmemory-policy is 'allkeys-lru'" in limited.summary()
        assert str(64 * 1024 * 1024) in limited.summary()
        unlimited = await assessed(start(extra_args=["--maxmemory-policy", "volatile-lru"]))
        assert not unlimited.ok and "no limit yet" in unlimited.summary()

    asyncio.run(go())


def test_noeviction_with_maxmemory_passes_with_a_note(start: Any) -> None:
    async def go() -> None:
        a = await assessed(start(extra_args=["--maxmemory", "64mb"]))
        assert a.ok and any("OOM" in n for n in a.notes)

    asyncio.run(go())


def test_settings_are_read_live(start: Any) -> None:
    async def go() -> None:
        srv = start()
        with srv.client() as c:
            c.config_set("appendonly", "no")
        assert "appendonly is 'no'" in (await assessed(srv)).summary()

    asyncio.run(go())


@pytest.mark.parametrize("aof", [True, False])
def test_config_renamed_falls_back_to_info(start: Any, aof: bool) -> None:
    async def go() -> None:
        srv = start(aof=aof, extra_args=["--rename-command", "CONFIG", "",
                                         "--maxmemory-policy", "allkeys-lfu"])
        a = await assessed(srv)
        assert any(n.startswith("CONFIG GET is unavailable") for n in a.notes)
        assert any("appendfsync could not be read" in n for n in a.notes) == aof
        assert ("appendonly is 'no'" in a.summary()) == (not aof)
        assert "maxmemory-policy is 'allkeys-lfu'" in a.summary()  # from INFO memory

    asyncio.run(go())


def test_config_denied_by_acl_falls_back_to_info(start: Any) -> None:
    async def go() -> None:
        srv = start()
        with srv.client() as c:
            c.acl_setuser("app", enabled=True, passwords=["+pw"], keys=["*"],
                          commands=["+@all", "-config"])
        a = await assessed(srv, username="app", password="pw")
        assert a.ok, a.problems
        assert any(n.startswith("CONFIG GET is unavailable") and "permission" in n.lower()
                   for n in a.notes)

    asyncio.run(go())


def test_replica_is_checked_and_noted(start: Any) -> None:
    async def go() -> None:
        primary = start()
        replica = start(replica_of=primary, aof=False)
        a = await assessed(replica)
        assert "appendonly is 'no'" in a.summary()
        assert any("role is 'slave'" in n for n in a.notes)
        assert not any("role" in n for n in (await assessed(primary)).notes)

    asyncio.run(go())


def test_unreachable_redis_is_a_storage_error(start: Any) -> None:
    async def go() -> None:
        srv = start()
        srv.stop()
        with pytest.raises(StorageError, match="redis persistence check"):
            await assessed(srv)

    asyncio.run(go())


def test_fixture_aof_survives_kill(start: Any) -> None:
    """The fixture's default (AOF everysec): a SIGKILLed Redis restarts with every write it
    acknowledged (the AOF reached the kernel before the reply)."""
    srv = start()
    with srv.client() as c:
        for i in range(200):
            c.set(f"k{i}", i)
    srv.kill()
    srv.start()
    with srv.client() as c:
        assert c.dbsize() == 200 and c.get("k199") == b"199"
