"""Shared fixtures: one real dev server per test session, a fresh transit mount per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import hvac
import pytest

from tests.helpers import ServerProcess
from tests.redis_fixtures import redis_primary_with_replica, redis_server  # noqa: F401


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
