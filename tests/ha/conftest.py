"""HA tests: each test gets its own local cluster (Redis primary + replica, three nodes,
lock_ttl 3 s) on free loopback ports, torn down afterwards. Node logs are printed when a
test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.ha.util import HACluster
from tests.redis_fixtures import redis_available

LOCK_TTL = 3.0
C = TypeVar("C", bound=HACluster)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


def make_cluster(tmp_path: Path, nodes: int = 3, lock_ttl: float = LOCK_TTL) -> HACluster:
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    return HACluster(tmp_path / "cluster", nodes=nodes, replicas=1, lock_ttl=lock_ttl)


def running(c: C, request: pytest.FixtureRequest) -> Iterator[C]:
    """Bring `c` up, yield it, print its logs if the test failed, take it down."""
    c.up()
    try:
        yield c
    finally:
        if request.node.stash.get(_FAILED, False):
            print(c.logs())
        c.down(timeout=5.0)


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[HACluster]:
    """A running three-node cluster; `cluster.root_token` is set, one node is active."""
    yield from running(make_cluster(tmp_path), request)
