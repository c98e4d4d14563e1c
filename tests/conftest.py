"""Shared fixtures: one real dev server per test session, a fresh transit mount per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from tests.helpers import ServerProcess
from tests.redis_fixtures import redis_primary_with_replica, redis_server  # noqa: F401

TESTS_DIR = Path(__file__).resolve().parent
# The tree a test lives in names its marker (registered in pyproject.toml, --strict-markers).
TREE_MARKERS = ("unit", "integration", "ha", "fault", "fuzz", "bench", "deploy", "ui")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tree (`tests/ha/...` -> `ha`), so `-m` selects by tree."""
    for item in items:
        try:
            tree = Path(item.path).resolve().relative_to(TESTS_DIR).parts[0]
        except ValueError:
            continue
        if tree in TREE_MARKERS:
            item.add_marker(getattr(pytest.mark, tree))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real `transit server -dev` process (root token "root") shared by the session."""
    srv = ServerProcess.dev(tmp_path_factory.mktemp("dev")).start()
    yield srv
    srv.stop()


@pytest.fixture
def mount(server: ServerProcess) -> Iterator[str]:
    """A fresh transit mount (e.g. "t-1a2b3c4d") so tests never share keys."""
    path = f"t-{uuid.uuid4().hex[:8]}"
    r = server.request("POST", f"sys/mounts/{path}", json={"type": "transit"})
    assert r.status_code == 204, r.text
    yield path
    server.request("DELETE", f"sys/mounts/{path}")


@pytest.fixture
def client(server: ServerProcess) -> hvac.Client:
    return server.client()
