"""The HA lock owner (transit/cluster/identity.py): `<node id>@<instance>`, one per running
server, shared by the workers of one node; node ids with "@" are configuration errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from transit.cli import main
from transit.cluster.advert import LeaderRecord
from transit.cluster.identity import check_node_id, configured_node_id, new_owner, node_of
from transit.config import parse_config
from transit.errors import ConfigError
from transit.server import preflight
from transit.workers import Supervisor, WorkerInfo, node_id_for

LISTENER = 'listener "tcp" {\n  address = "127.0.0.1:1"\n  tls_disable = true\n}\n'


def redis_config(node_id: str, workers: int = 2) -> str:
    return (f'storage "redis" {{\n  address = "127.0.0.1:1"\n  node_id = "{node_id}"\n}}\n'
            + LISTENER + f"workers = {workers}\n")


def test_owner_format_and_node_of() -> None:
    a, b = new_owner("node-1"), new_owner("node-1")
    assert a != b  # one per start: two processes with one node id are two owners
    for owner in (a, b):
        node, sep, instance = owner.rpartition("@")
        assert (node, sep, len(instance)) == ("node-1", "@", 12)
        assert int(instance, 16) >= 0
        assert node_of(owner) == "node-1"
    assert node_of("bare") == "bare"  # no instance part: its own node id
    assert node_of("host:8200@ab") == "host:8200"
    assert node_of("@x") == "@x"


@pytest.mark.parametrize("bad", ["", "a@b", "@", "node 1", "tab\tid", "nl\n"])
def test_invalid_node_ids(bad: str) -> None:
    with pytest.raises(ConfigError, match="node_id"):
        check_node_id(bad)
    if bad:
        with pytest.raises(ConfigError):
            new_owner(bad)


def test_configured_node_id() -> None:
    assert configured_node_id({"node_id": "host:8200"}) == "host:8200"
    generated = configured_node_id({})
    assert generated and "@" not in generated and configured_node_id({}) != generated
    assert configured_node_id({"node_id": ""}) != ""
    with pytest.raises(ConfigError, match="must not contain '@'"):
        configured_node_id({"node_id": "a@b"})


def test_config_with_at_in_node_id_is_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = parse_config(redis_config("a@b"), env={})
    with pytest.raises(ConfigError, match="node_id"):
        preflight(config, 2)
    with pytest.raises(ConfigError, match="node_id"):
        node_id_for(config)
    path = tmp_path / "node.hcl"
    path.write_text(redis_config("a@b"))
    assert main(["server", "-config", str(path)]) == 1  # the supervisor: before any fork
    assert "must not contain '@'" in capsys.readouterr().err
    path.write_text(redis_config("a@b", workers=1))
    assert main(["server", "-config", str(path)]) == 1  # one process: before any connection
    assert "must not contain '@'" in capsys.readouterr().err


def test_leader_record_carries_its_owner() -> None:
    record = LeaderRecord("n1", "http://a", "https://a:1", "cert", "key", "n1@abc")
    again = LeaderRecord.from_json(record.to_json())
    assert again == record and again.owner == "n1@abc" and again.node_id == "n1"
    assert record.advertises("n1@abc") and not record.advertises("n1@def")
    old = orjson.loads(record.to_json())
    del old["owner"]  # written by an older version: taken at its word
    legacy = LeaderRecord.from_json(orjson.dumps(old))
    assert legacy.owner == "" and legacy.advertises("n1@def")


class _FakeConn:
    def close(self) -> None:
        pass


class _FakeProcess:
    started: list[WorkerInfo] = []

    def __init__(self, target: Any, args: tuple[Any, ...], name: str, daemon: bool) -> None:
        self.info = args[0]
        self.pid = 1

    def start(self) -> None:
        _FakeProcess.started.append(self.info)


class _FakeContext:
    Process = _FakeProcess

    @staticmethod
    def Pipe(duplex: bool = True) -> tuple[_FakeConn, _FakeConn]:  # noqa: N802
        return _FakeConn(), _FakeConn()


def test_supervisor_gives_every_worker_the_same_owner() -> None:
    config = parse_config(redis_config("twin"), env={})
    sup = Supervisor(config, 3, "twin", lambda info: None)
    assert node_of(sup.owner) == "twin" and sup.owner != "twin"
    assert Supervisor(config, 3, "twin", lambda info: None).owner != sup.owner  # per start
    sup.ctx = _FakeContext()  # type: ignore[assignment]
    sup.sockets = [[] for _ in range(3)]
    _FakeProcess.started = []
    for i in range(3):
        sup._spawn(i, restarted=False)
    sup._spawn(0, restarted=True)  # a restarted worker 0 keeps the node's owner
    assert [(w.index, w.owner, w.node_id) for w in _FakeProcess.started] == [
        (0, sup.owner, "twin"), (1, sup.owner, "twin"), (2, sup.owner, "twin"),
        (0, sup.owner, "twin")]
