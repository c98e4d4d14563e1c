"""Helpers for the HA tests: a LocalCluster on free ports with per-node HTTP/hvac clients,
and a bounded poll."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hvac
import requests

from transit.dev.localcluster import LocalCluster
from transit.dev.processes import port_free

T = TypeVar("T")


def free_layout(nodes: int, replicas: int, tries: int = 200) -> tuple[int, int]:
    """(base_port, redis_port) with every port the cluster needs free. Ports are picked below
    the Linux ephemeral range (32768+), so client sockets don't collide with them."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20000, 30000)
        redis_port = rng.randrange(30100, 32700 - replicas)
        ports = [redis_port + j for j in range(replicas + 1)]
        for i in range(nodes):
            ports += [base + 10 * i, base + 10 * i + 1]
        if all(port_free(p) for p in ports):
            return base, redis_port
    raise RuntimeError("no free port layout found")


def poll(fn: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call `fn` until it returns something other than None/False (returned; note that a
    4xx/5xx `requests.Response` counts, although it is falsy) or `timeout` passes (fail)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
        except (requests.RequestException, hvac.exceptions.VaultError) as exc:
            last = exc
        if last is not None and last is not False and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class HACluster(LocalCluster):
    """A LocalCluster with test conveniences: raw requests and hvac clients per node."""

    def __init__(self, workdir: Path, nodes: int = 3, replicas: int = 1,
                 lock_ttl: float = 3.0, *, perf_standby: bool = False,
                 seal: str = "static", workers: int | None = None) -> None:
        base, redis_port = free_layout(nodes, replicas)
        super().__init__(workdir, nodes=nodes, replicas=replicas, base_port=base,
                         redis_port=redis_port, lock_ttl=lock_ttl, perf_standby=perf_standby,
                         seal=seal, workers=workers)
        self.sessions = [requests.Session() for _ in range(nodes)]

    def client(self, i: int, **kwargs: Any) -> hvac.Client:
        return hvac.Client(url=self.nodes[i].addr, token=self.root_token, timeout=30, **kwargs)

    def request(self, i: int, method: str, path: str, *, json: Any = None,
                headers: dict[str, str] | None = None, params: Any = None,
                token: str | None = None, timeout: float = 30.0,
                allow_redirects: bool = False) -> requests.Response:
        """Raw HTTP to node i (`path` relative to /v1/); redirects are not followed."""
        h = {"X-Vault-Token": self.root_token if token is None else token}
        h.update(headers or {})
        return self.sessions[i].request(
            method, f"{self.nodes[i].addr}/v1/{path.lstrip('/')}", json=json, headers=h,
            params=params, timeout=timeout, allow_redirects=allow_redirects)

    def standbys(self, active: int) -> list[int]:
        return [n.index for n in self.nodes if n.index != active]

    def redis_client(self, **kwargs: Any) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.primary.port, socket_timeout=5, **kwargs)

    def logs(self) -> str:
        return "\n".join(f"--- node {n.index} (pid {n.pid}) ---\n{n.log(3000)}"
                         for n in self.nodes)
