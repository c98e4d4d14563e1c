"""Fault tests: each test builds its own FaultCluster(s) on free loopback ports through the
`make_cluster` factory; everything is torn down afterwards, and node logs are printed when
the test failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fault.harness import FaultCluster
from tests.redis_fixtures import redis_available

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


@pytest.fixture
def make_cluster(tmp_path: Path, request: pytest.FixtureRequest
                 ) -> Iterator[Callable[..., FaultCluster]]:
    """`make_cluster(nodes=1, replicas=0, workers=2, ...)`: a started FaultCluster (Redis with
    AOF, initialised, one node active, root token set)."""
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    made: list[FaultCluster] = []

    def make(**kwargs: Any) -> FaultCluster:
        c = FaultCluster(tmp_path / f"cluster-{len(made)}", **kwargs)
        made.append(c)
        c.up()
        c.check_aof()
        return c

    yield make
    for c in made:
        if request.node.stash.get(_FAILED, False):
            print(c.logs())
        c.down(timeout=5.0)
