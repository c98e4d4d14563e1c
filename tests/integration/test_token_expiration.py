"""The expiration manager on a real server: expired tokens leave storage in the background,
with their children, and expired wrapping tokens with their wrapped data — nobody looks them
up. The server runs on file storage, so the test sees what is stored (key names only: the
values are barrier-encrypted)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hvac
import pytest

from tests.helpers import ServerProcess, free_port, init_and_unseal

WAIT = 15.0  # seconds at most for the background revocation (the manager ticks every second)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    tmp = tmp_path_factory.mktemp("expiration")
    data, port = tmp / "data", free_port()
    cfg = tmp / "server.hcl"
    cfg.write_text(
        f'storage "file" {{\n  path = "{data}"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        f'api_addr = "http://127.0.0.1:{port}"\nlog_level = "debug"\n'
    )
    srv = ServerProcess(["server", "-config", str(cfg)], port, token="",
                        log=tmp / "server.log").start()
    init_and_unseal(srv)
    yield srv, data
    srv.stop()


def stored(data: Path, folder: str) -> set[str]:
    """Storage keys under `folder` (a barrier path such as "sys/token/id/")."""
    return {p.relative_to(data).as_posix() for p in data.rglob("*")
            if p.is_file() and p.relative_to(data).as_posix().startswith(folder)}


def accessors(srv: ServerProcess) -> set[str]:
    """The accessor index (a storage listing: it looks no token up)."""
    r = srv.request("LIST", "auth/token/accessors")
    assert r.status_code == 200, r.text
    return set(r.json()["data"]["keys"])


def wait_until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not done() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_an_expired_parent_and_its_child_leave_storage_unlooked(
    node: tuple[ServerProcess, Path],
) -> None:
    srv, data = node
    ids_before = stored(data, "sys/token/id/")
    parent = srv.client().auth.token.create(policies=["root"], ttl="2s")["auth"]
    # a periodic child would live on by itself (its TTL is not capped by the parent's)
    child = srv.client(parent["client_token"]).auth.token.create(
        policies=["default"], period="1h")["auth"]
    assert child["lease_duration"] == 3600 and child["orphan"] is False
    new_ids = stored(data, "sys/token/id/") - ids_before
    assert len(new_ids) == 2
    assert {parent["accessor"], child["accessor"]} <= accessors(srv)

    wait_until(lambda: not new_ids & stored(data, "sys/token/id/"))
    assert not new_ids & stored(data, "sys/token/id/")
    assert not {parent["accessor"], child["accessor"]} & accessors(srv)
    hashes = {Path(k).name.lstrip("_") for k in new_ids}  # file storage: leaves are "_<key>"
    assert not any(h in k for h in hashes for k in stored(data, "sys/token/parent/"))
    # logged just after the revocation it reports: wait for it rather than race it
    line = "revoked expired token (accessor " + parent["accessor"]
    wait_until(lambda: line in srv.log_path.read_text())
    assert line in srv.log_path.read_text()
    r = srv.request("POST", "auth/token/lookup-accessor", json={"accessor": child["accessor"]})
    assert r.status_code == 400 and r.json()["errors"] == ["invalid accessor"]
    with pytest.raises(hvac.exceptions.Forbidden):
        srv.client(child["client_token"]).auth.token.lookup_self()


def test_an_expired_wrapping_token_and_its_data_leave_storage(
    node: tuple[ServerProcess, Path],
) -> None:
    srv, data = node
    assert stored(data, "sys/wrapping/") == set()
    info = srv.client().sys.wrap(payload={"secret": "s3cr3t"}, ttl=1)["wrap_info"]
    assert len(stored(data, "sys/wrapping/")) == 2  # <token hash>/response and /wrapinfo
    assert info["accessor"] in accessors(srv)

    wait_until(lambda: not stored(data, "sys/wrapping/"))
    assert stored(data, "sys/wrapping/") == set()
    assert info["accessor"] not in accessors(srv)
    r = srv.request("POST", "sys/wrapping/unwrap", json={"token": info["token"]})
    assert r.status_code == 400
