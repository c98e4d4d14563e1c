"""Health and readiness of a local HA cluster's nodes (transit/dev/localcluster.py).

`ClusterProbes` asks each node's `sys/health` (`health`, `active_index`, `wait_active`) and
waits for the states `transit cluster up` and the HA tests need: a node listening, every node
unsealed with exactly one active and every worker process of each node in its role (read from
the node's log: `wait_ready`), HAProxy routing (`wait_haproxy`). It only observes; starting
and stopping are `LocalCluster`'s, which builds on this class.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from transit.dev.clusterparts import ClusterParts
from transit.dev.clusterstate import ClusterError
from transit.dev.handles import NodeHandle

# What a node's log says once one of its worker processes has taken a role (wait_ready).
_WORKER_COUNT = re.compile(r"==> transit node \S+: (\d+) worker processes")
_WORKER_ID = re.compile(r"\bworker=(\d+)")
_ACTIVE_ROLE = re.compile(r"is now the active node|follows the active role")
_STANDBY_ROLE = re.compile(r"entered standby mode")


class ClusterProbes(ClusterParts):
    """sys/health of the nodes and the waits built on it (see the module docstring)."""

    def health(self, i: int, timeout: float = 1.0) -> tuple[int, dict[str, Any]] | None:
        """(status, body) of node i's sys/health, or None when it does not answer."""
        try:
            r = self._http.get(self.nodes[i].addr + "/v1/sys/health", timeout=timeout)
        except httpx.HTTPError:
            return None
        try:
            body = r.json()
        except ValueError:
            body = {}
        return r.status_code, body

    def _wait_listening(self, node: NodeHandle) -> None:
        deadline = time.monotonic() + self.start_timeout
        while self.health(node.index, timeout=0.5) is None:
            if not node.running:
                raise ClusterError(f"node {node.index} exited at start:\n{node.log()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"node {node.index} not listening after "
                                   f"{self.start_timeout:.0f}s:\n{node.log()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float | None = None, *, skip: tuple[int, ...] = ()) -> int:
        """Wait until every node (except `skip`) is unsealed and exactly one of them is
        active; returns the active index."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        last: dict[int, Any] = {}
        while True:
            actives, ready = [], True
            for node in self.nodes:
                if node.index in skip:
                    continue
                if not node.running:
                    raise ClusterError(f"node {node.index} exited:\n{node.log()}")
                h = self.health(node.index, timeout=0.5)
                last[node.index] = h
                if h is None or h[1].get("sealed", True):
                    ready = False
                elif h[0] == 200:
                    actives.append(node.index)
                    ready = ready and self._every_worker_in(node, _ACTIVE_ROLE)
                elif h[0] in (429, 473):  # standby, performance standby
                    ready = ready and self._every_worker_in(node, _STANDBY_ROLE)
                else:
                    ready = False
            if ready and len(actives) == 1:
                return actives[0]
            if time.monotonic() > deadline:
                raise ClusterError(f"cluster not ready (health: {last})")
            time.sleep(0.05)

    @staticmethod
    def _every_worker_in(node: NodeHandle, role: re.Pattern[str]) -> bool:
        """Whether every worker process of `node` has logged taking `role`: the health
        answer above came from one of them, and a sibling may still be unsealing (503) or
        taking the role; a few more requests could all reach the same worker."""
        try:
            with open(node.log_path, "rb") as f:
                f.seek(node.log_start)
                text = f.read().decode(errors="replace")
        except OSError:
            return False
        count = _WORKER_COUNT.search(text)
        if count is None:  # one process: no worker=<i> on its lines
            return role.search(text) is not None
        seen = {m.group(1) for line in text.splitlines() if role.search(line)
                for m in [_WORKER_ID.search(line)] if m is not None}
        return len(seen) >= int(count.group(1))

    # -- inspection and faults ----------------------------------------------------------------
    def active_index(self, timeout: float = 0.5) -> int | None:
        """The node answering sys/health with 200 (the first, if several), or None."""
        for node in self.nodes:
            h = self.health(node.index, timeout=timeout)
            if h is not None and h[0] == 200:
                return node.index
        return None

    def wait_active(self, timeout: float = 30.0, *, exclude: tuple[int, ...] = (),
                    poll: float = 0.02) -> int:
        """Poll until a node other than `exclude` is active; its index."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.index in exclude:
                    continue
                h = self.health(node.index, timeout=0.3)
                if h is not None and h[0] == 200:
                    return node.index
            time.sleep(poll)
        raise ClusterError(f"no active node (excluding {exclude}) after {timeout:.1f}s")

    def haproxy_url(self, frontend: str = "write") -> str:
        """The base URL of HAProxy's `write` or `read` frontend."""
        f = self.layout.frontends
        return f"http://{f.bind_host}:{f.write if frontend == 'write' else f.read}"

    def wait_haproxy(self, timeout: float | None = None) -> None:
        """Wait until HAProxy routes: its writes frontend reaches the active node and its
        reads frontend an unsealed node."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        codes: list[int | None] = []
        while time.monotonic() < deadline:
            codes = []
            for frontend in ("write", "read"):
                try:
                    codes.append(self._http.get(self.haproxy_url(frontend) + "/v1/sys/health",
                                                timeout=1.0).status_code)
                except httpx.HTTPError:
                    codes.append(None)
            if codes[0] == 200 and codes[1] in (200, 429, 473):
                return
            time.sleep(0.05)
        raise ClusterError(f"haproxy does not route to the nodes (health through its "
                           f"frontends: {codes})")
