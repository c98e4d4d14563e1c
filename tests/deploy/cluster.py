"""The deployment topology on 127.0.0.1 (`transit cluster up --sentinels 3 --haproxy`) for
tests and bench/deploy_failover.py: free ports, clients that go through HAProxy only, Redis
restarts, and the longest gap between acknowledged operations."""

from __future__ import annotations

import contextlib
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
import requests

from tests.fault.harness import Client, History, Op
from transit.deploy.local import haproxy_stats
from transit.deploy.topology import SENTINEL_MASTER, Checks, SentinelTimings
from transit.dev.handles import RedisHandle
from transit.dev.localcluster import LocalCluster
from transit.dev.processes import HOST, port_free

# The tests run docker/'s settings: HAProxy checks every 1 s (250 ms while a server changes
# state or is down, rise 1, fall 1), Sentinel down-after 2 s, lock_ttl 10 s.
CHECKS = Checks()
SENTINEL = SentinelTimings()
LOCK_TTL = 10.0


def _free_run(count: int, low: int, high: int, rng: random.Random) -> int:
    for _ in range(500):
        first = rng.randrange(low, high - count)
        if all(port_free(first + k) for k in range(count)):
            return first
    raise RuntimeError(f"no {count} free consecutive ports in [{low}, {high})")


def free_ports(nodes: int, redis_servers: int) -> dict[str, int]:
    """Ports below the ephemeral range (32768+): nodes at base + 10*i (+1), Redis, Sentinels
    and HAProxy each on a run of consecutive free ports."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 26000)
        if all(port_free(base + 10 * i + k) for i in range(nodes) for k in (0, 1)):
            break
    else:
        raise RuntimeError("no free node ports")
    return {"base_port": base,
            "redis_port": _free_run(redis_servers, 30100, 32700, rng),
            "sentinel_port": _free_run(redis_servers, 26100, 28000, rng),
            "haproxy_port": _free_run(3, 28100, 30000, rng)}


class DeployCluster(LocalCluster):
    """Three nodes, a Redis primary and two replicas, three Sentinels and HAProxy."""

    def __init__(self, workdir: Path, *, nodes: int = 3, replicas: int = 2,
                 lock_ttl: float = LOCK_TTL, workers: int = 1) -> None:
        ports = free_ports(nodes, replicas + 1)
        super().__init__(workdir, nodes=nodes, replicas=replicas, lock_ttl=lock_ttl,
                         perf_standby=True, workers=workers, sentinels=3, checks=CHECKS,
                         sentinel_timings=SENTINEL, **ports)
        self.sessions = [requests.Session() for _ in range(nodes)]

    # -- what the harness's checkers use ------------------------------------------------------
    def request(self, i: int, method: str, path: str, *, json: Any = None,
                token: str | None = None, timeout: float = 30.0) -> requests.Response:
        """Raw HTTP straight to node i (for checks after the fact, not as a client)."""
        h = {"X-Vault-Token": self.root_token if token is None else token}
        return self.sessions[i].request(method, f"{self.nodes[i].addr}/v1/{path}", json=json,
                                        headers=h, timeout=timeout, allow_redirects=False)

    def restart_all(self, timeout: float = 60.0) -> int:
        """Every node stopped, then started again (caches dropped); the active index."""
        for node in self.nodes:
            if node.running:
                self.stop_node(node.index)
        for node in self.nodes:
            self._spawn(node)
        self._save_state()
        for node in self.nodes:
            self._wait_listening(node)
        return self.wait_ready(timeout)

    def logs(self) -> str:
        out = [f"--- node {n.index} (pid {n.pid}) ---\n{n.log(3000)}" for n in self.nodes]
        if self.haproxy is not None:
            with contextlib.suppress(OSError):
                out.append("--- haproxy ---\n" + self.haproxy.log_path.read_text()[-3000:])
        return "\n".join(out)

    # -- HAProxy ------------------------------------------------------------------------------
    def via(self, frontend: str, method: str, path: str, *, json: Any = None,
            headers: dict[str, str] | None = None, timeout: float = 10.0) -> requests.Response:
        h = {"X-Vault-Token": self.root_token, **(headers or {})}
        return requests.request(method, f"{self.haproxy_url(frontend)}/v1/{path}", json=json,
                                headers=h, timeout=timeout, allow_redirects=False)

    def served(self, backend: str) -> dict[str, int]:
        """2xx answers per server of an HAProxy backend (`active` or `unsealed`)."""
        return {row["svname"]: int(row["hrsp_2xx"] or 0) for row in haproxy_stats(self.layout)
                if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")}

    # -- Redis --------------------------------------------------------------------------------
    def sentinel_primary(self) -> int | None:
        """The port of the primary the first answering Sentinel names."""
        for s in self.sentinels:
            with contextlib.suppress(redis.RedisError), \
                    redis.Redis(host=HOST, port=s.port, socket_timeout=1) as c:
                found = c.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
                if found:
                    return int(found[1])
        return None

    def redis_handle(self, port: int) -> RedisHandle:
        return next(r for r in self.redis if r.port == port)

    def kill_redis(self, r: RedisHandle) -> None:
        assert r.proc is not None
        r.proc.kill()
        r.proc.wait(10)

    def start_redis_as_replica(self, r: RedisHandle, primary_port: int) -> None:
        """Start a (killed) Redis server again, replicating the current primary."""
        assert self.redis_server is not None
        r.replica_of = primary_port
        r.proc = subprocess.Popen(r.args(self.redis_server), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  cwd=r.dir, start_new_session=True)
        r.pid = r.proc.pid
        self._save_state()


class ProxyClient(Client):
    """A harness client whose every request goes through one HAProxy frontend."""

    def __init__(self, cluster: DeployCluster, history: History, frontend: str,
                 timeout: float = 10.0) -> None:
        super().__init__(cluster, history, node=0, timeout=timeout)  # type: ignore[arg-type]
        self.base = cluster.haproxy_url(frontend)

    def http(self, method: str, path: str, json_body: Any = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        h = {"X-Vault-Token": self.token or self.cluster.root_token, **(headers or {})}
        return self.session.request(method, f"{self.base}/v1/{path}", json=json_body,
                                    headers=h, timeout=self.timeout, allow_redirects=False)


def longest_gap(ops: list[Op], since: float, until: float) -> float:
    """The longest time within [since, until] without an acknowledged (2xx) completion."""
    done = sorted(o.complete for o in ops if o.ok and since <= o.complete <= until)
    points = [since, *done, until]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def first_ok_after(ops: list[Op], t: float) -> float | None:
    return min((o.complete for o in ops if o.ok and o.invoke >= t), default=None)


def wait_for(fn: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, redis.RedisError):
            value = fn()
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
