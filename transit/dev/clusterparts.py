"""What a local HA cluster is made of (`transit cluster up`, transit/dev/localcluster.py):
its Redis servers, nodes, Sentinels and HAProxy with their ports and folders, the deployment
layout they follow, each node's configuration text, and the state record `down` reads.

`ClusterParts` is the base of `LocalCluster`: it describes the cluster and starts nothing.
Its constructor checks the options and builds every handle; `ClusterProbes`
(transit/dev/clusterprobe.py) adds the health and readiness checks on top, and `LocalCluster`
the process actions (up, down, kill, restart). Node i listens on `base_port + 10*i` with its
cluster port one above; Redis uses `redis_port` (primary) and `redis_port + 1 ...` (replicas);
Sentinels start at `sentinel_port` (default `redis_port + 20000`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx

from transit.deploy.local import ProcHandle, haproxy_handle, sentinel_handles
from transit.deploy.render import hcl_str, layout_node_hcl, node_hcl
from transit.deploy.topology import (
    Checks,
    Layout,
    SentinelTimings,
    local_layout,
)
from transit.dev.clusterstate import STATE_FILE, ClusterError, _fmt_ttl
from transit.dev.handles import NodeHandle, RedisHandle, parse_ttl
from transit.dev.processes import HOST

DEFAULT_WORKDIR = ".transit-cluster"


class ClusterParts:
    """The handles, ports, layout and configuration of a local cluster (module docstring)."""

    def __init__(
        self, workdir: str | Path = DEFAULT_WORKDIR, nodes: int = 3, replicas: int = 2,
        base_port: int = 8200, redis_port: int = 6379, lock_ttl: float | str = 10.0,
        *, perf_standby: bool = False, workers: int | None = None, python: str | None = None,
        redis_server: str | None = None, start_timeout: float = 30.0, seal: str = "static",
        sentinels: int = 0, sentinel_port: int | None = None, haproxy_port: int | None = None,
        checks: Checks | None = None, sentinel_timings: SentinelTimings | None = None,
        haproxy: str | None = None,
    ) -> None:
        if nodes < 1:
            raise ClusterError("--nodes must be at least 1")
        if replicas < 0:
            raise ClusterError("--replicas must be 0 or more")
        if sentinels < 0:
            raise ClusterError("--sentinels must be 0 or more")
        if seal not in ("static", "shamir"):
            raise ClusterError(f"seal must be 'static' or 'shamir', not {seal!r}")
        self.seal = seal
        self.extra_config = ""  # top-level HCL appended to every node's configuration
        self.unseal_key = ""  # the one key share of a Shamir-sealed cluster (base64)
        self.unsealed_at = 0.0  # monotonic time `unseal_all` last sent the shares
        self.workdir = Path(workdir).resolve()
        self.lock_ttl = parse_ttl(lock_ttl)
        if self.lock_ttl <= 0:
            raise ClusterError("--lock-ttl must be positive")
        self.base_port = base_port
        self.redis_port = redis_port
        self.perf_standby = perf_standby
        self.workers = workers  # processes per node; None: the server's default
        self.python = python or sys.executable
        self.start_timeout = start_timeout
        self.root_token = ""
        self.redis_server: str | None = redis_server
        self.redis: list[RedisHandle] = [RedisHandle(redis_port, self.workdir)] + [
            RedisHandle(redis_port + 1 + j, self.workdir, replica_of=redis_port)
            for j in range(replicas)
        ]
        self.nodes: list[NodeHandle] = [
            NodeHandle(i, base_port + 10 * i, self.workdir, f"node-{i}") for i in range(nodes)
        ]
        self.haproxy_bin = haproxy
        self.layout = self._make_layout(sentinels, sentinel_port, haproxy_port, checks,
                                        sentinel_timings)
        self.sentinels: list[ProcHandle] = (sentinel_handles(self.layout, self.workdir)
                                            if sentinels else [])
        self.haproxy: ProcHandle | None = (haproxy_handle(self.layout, self.workdir)
                                           if haproxy_port is not None else None)
        self._http = httpx.Client(timeout=2.0)

    def _make_layout(self, sentinels: int, sentinel_port: int | None,
                     haproxy_port: int | None, checks: Checks | None,
                     timings: SentinelTimings | None) -> Layout:
        """The deployment topology of this cluster (transit/deploy/topology.py)."""
        first = sentinel_port if sentinel_port is not None else self.redis_port + 20000
        return local_layout(
            host=HOST, api_ports=[n.api_port for n in self.nodes],
            redis_ports=[r.port for r in self.redis],
            sentinel_ports=[first + j for j in range(sentinels)],
            haproxy_port=haproxy_port if haproxy_port is not None else 0,
            lock_ttl=_fmt_ttl(self.lock_ttl), checks=checks,
            sentinel=timings or SentinelTimings(quorum=sentinels // 2 + 1))

    # -- addresses and state ----------------------------------------------------------------
    @property
    def primary(self) -> RedisHandle:
        return self.redis[0]

    @property
    def replicas(self) -> list[RedisHandle]:
        return self.redis[1:]

    @property
    def seal_key_path(self) -> Path:
        return self.workdir / "seal.key"

    @property
    def state_path(self) -> Path:
        return self.workdir / STATE_FILE

    def ports(self) -> list[int]:
        """Every TCP port the cluster listens on."""
        out = [r.port for r in self.redis]
        for n in self.nodes:
            out += [n.api_port, n.cluster_port]
        out += [s.port for s in self.sentinels]
        if self.haproxy is not None:
            f = self.layout.frontends
            out += [f.write, f.read, f.stats]
        return out

    def state(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir), "lock_ttl": self.lock_ttl,
            "perf_standby": self.perf_standby, "base_port": self.base_port, "redis_port": self.redis_port,
            "redis": [{"role": r.role, "port": r.port, "address": r.address, "pid": r.pid}
                      for r in self.redis],
            "nodes": [{"index": n.index, "node_id": n.node_id, "api_addr": n.addr,
                       "cluster_addr": n.cluster_addr, "pid": n.pid} for n in self.nodes],
            "root_token_file": str(self.workdir / "root-token"),
            "sentinels": [{"port": s.port, "pid": s.pid} for s in self.sentinels],
            "haproxy": None if self.haproxy is None else {
                "writes": self.layout.frontends.write, "reads": self.layout.frontends.read,
                "stats": self.layout.frontends.stats, "pid": self.haproxy.pid},
        }

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state(), indent=2) + "\n")
        tmp.replace(self.state_path)

    # -- each node's configuration ----------------------------------------------------------
    def node_config(self, node: NodeHandle) -> str:
        header = f"generated by `transit cluster up`: node {node.index} of {len(self.nodes)}"
        if self.sentinels:  # the deployment topology: the same renderer as docker/'s
            return layout_node_hcl(self.layout, node.index, header=header,
                                   seal=self.seal_stanza(), perf_standby=self.perf_standby,
                                   workers=self.workers, extra=self.extra_config)
        storage = [("address", hcl_str(self.primary.address))]
        if self.replicas:
            replica = self.replicas[node.index % len(self.replicas)]
            storage.append(("read_address", hcl_str(replica.address)))
        storage += [("node_id", hcl_str(node.node_id)),
                    ("lock_ttl", hcl_str(_fmt_ttl(self.lock_ttl)))]
        return node_hcl(header=header, storage=storage, listen=f"{HOST}:{node.api_port}",
                        seal=self.seal_stanza(), api_addr=node.addr,
                        cluster_addr=node.cluster_addr, cluster_name="transit-local",
                        perf_standby=self.perf_standby, workers=self.workers,
                        extra=self.extra_config)

    def seal_stanza(self) -> str:
        """The `seal` block of every node's configuration ("" for Shamir: the default)."""
        if self.seal == "shamir":
            return ""
        return f'seal "static" {{\n  current_key = "file://{self.seal_key_path}"\n}}\n\n'
