"""`transit cluster up/down` and the LocalCluster API's refusals and fault handles."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.ha.util import HACluster, free_layout
from tests.redis_fixtures import redis_available
from transit.dev.clusterstate import ClusterError
from transit.dev.localcluster import LocalCluster
from transit.dev.processes import _alive

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transit", "cluster", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_up_and_down(tmp_path: Path) -> None:
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    base, redis_port = free_layout(2, 1)
    work = tmp_path / "work"
    args = ["--dir", str(work), "--nodes", "2", "--replicas", "1", "--base-port", str(base),
            "--redis-port", str(redis_port), "--lock-ttl", "3s"]
    up = cli("up", *args)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        state = json.loads((work / "state.json").read_text())
        token = (work / "root-token").read_text().strip()
        assert f"Root Token: {token}" in up.stdout
        assert f"api http://127.0.0.1:{base}" in up.stdout
        assert f"cluster https://127.0.0.1:{base + 11}" in up.stdout
        assert "(active )" in up.stdout and "(standby)" in up.stdout
        codes = sorted(requests.get(f"{n['api_addr']}/v1/sys/health", timeout=5).status_code
                       for n in state["nodes"])
        assert codes == [200, 473]  # standbys are performance standbys by default
        config = (work / "node-1.hcl").read_text()
        assert f'address      = "127.0.0.1:{redis_port}"' in config
        assert f'read_address = "127.0.0.1:{redis_port + 1}"' in config
        assert 'lock_ttl     = "3s"' in config and "file://" in config
        # A second `up` on the same folder (or ports) refuses clearly.
        again = cli("up", *args)
        assert again.returncode == 1
        assert "still running" in again.stderr
    finally:
        down = cli("down", "--dir", str(work))
    assert down.returncode == 0, down.stderr
    assert "4 process(es) terminated, 0 killed" in down.stdout
    pids = [n["pid"] for n in state["nodes"]] + [r["pid"] for r in state["redis"]]
    assert not [pid for pid in pids if _alive(pid)]  # (zombies of an init that doesn't reap count as gone)
    again = cli("down", "--dir", str(work))
    assert again.returncode == 1 and "nothing to stop" in again.stderr


def test_refuses_busy_port_and_missing_redis(tmp_path: Path) -> None:
    base, redis_port = free_layout(1, 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 1))  # node 0's cluster port
        s.listen()
        r = cli("up", "--dir", str(tmp_path / "w"), "--nodes", "1", "--replicas", "0",
                "--base-port", str(base), "--redis-port", str(redis_port))
    assert r.returncode == 1
    assert f"port(s) already in use on 127.0.0.1: {base + 1}" in r.stderr
    assert not (tmp_path / "w" / "state.json").exists()

    c = LocalCluster(tmp_path / "w2", nodes=1, replicas=0, base_port=base,
                     redis_port=redis_port, redis_server=str(tmp_path / "no-redis-server"))
    with pytest.raises(ClusterError, match="redis-server not found"):
        c.up()
    r = cli("up", "--nodes", "0")
    assert r.returncode == 1 and "--nodes must be at least 1" in r.stderr


def test_kill_restart_and_active_index(tmp_path: Path) -> None:
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    c = HACluster(tmp_path / "c", nodes=2, replicas=0, lock_ttl=3.0)
    c.up()
    try:
        active = c.active_index()
        assert active is not None
        other = 1 - active
        c.kill(active, signal.SIGKILL)
        assert not c.nodes[active].running
        assert c.wait_active(timeout=10) == other
        c.restart(active)
        assert c.nodes[active].running
        assert c.active_index() == other
        assert c.health(active) is not None and c.health(active)[0] == 429
        state = json.loads(c.state_path.read_text())
        assert state["nodes"][active]["pid"] == c.nodes[active].pid
    finally:
        report = c.down()
    assert report["killed"] == 0 and report["terminated"] == 3
    assert not c.state_path.exists()


def test_cli_up_with_sentinel_and_haproxy(tmp_path: Path) -> None:
    """`--sentinels N --haproxy`: the deployment topology (docs/deploy.md) from the CLI;
    `down` stops HAProxy and the Sentinels too."""
    from tests.deploy.cluster import free_ports

    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    ports = free_ports(1, 2)
    work = tmp_path / "work"
    up = cli("up", "--dir", str(work), "--nodes", "1", "--replicas", "1", "--sentinels", "1",
             "--haproxy", "--base-port", str(ports["base_port"]),
             "--redis-port", str(ports["redis_port"]),
             "--sentinel-port", str(ports["sentinel_port"]),
             "--haproxy-port", str(ports["haproxy_port"]), "--lock-ttl", "3s")
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        h = ports["haproxy_port"]
        assert f"writes http://127.0.0.1:{h}  reads http://127.0.0.1:{h + 1}" in up.stdout
        assert f"sentinel        127.0.0.1:{ports['sentinel_port']}" in up.stdout
        assert f"VAULT_ADDR='http://127.0.0.1:{h}'" in up.stdout
        config = (work / "node-0.hcl").read_text()
        assert f'sentinel_addresses = "127.0.0.1:{ports["sentinel_port"]}"' in config
        assert f'read_address       = "127.0.0.1:{ports["redis_port"]}"' in config  # its own
        assert "http-check send meth GET uri /v1/sys/health\n" in (
            work / "haproxy" / "haproxy.cfg").read_text()
        for frontend in (h, h + 1):
            assert requests.get(f"http://127.0.0.1:{frontend}/v1/sys/health",
                                timeout=5).status_code == 200
    finally:
        down = cli("down", "--dir", str(work))
    assert down.returncode == 0, down.stderr
    assert "5 process(es) terminated, 0 killed" in down.stdout  # haproxy, node, sentinel, 2 redis


def test_refuses_without_haproxy(tmp_path: Path) -> None:
    base, redis_port = free_layout(1, 0)
    c = LocalCluster(tmp_path / "w", nodes=1, replicas=0, base_port=base,
                     redis_port=redis_port, haproxy_port=base + 5,
                     haproxy=str(tmp_path / "no-haproxy"))
    with pytest.raises(ClusterError, match="haproxy not found"):
        c.up()
    assert not (tmp_path / "w" / "state.json").exists()
    r = cli("up", "--help")
    assert "--sentinels" in r.stdout and "--haproxy-port" in r.stdout
