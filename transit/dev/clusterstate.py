"""State-file control of a local cluster (`transit cluster down`, run in another process than
the `up` that started it): read `state.json`, tell which recorded processes still run, stop them in
order; and the summary `transit cluster up` prints (`describe`).

`transit.dev.localcluster` starts clusters and writes `state.json`; this module only reads it
(and never imports localcluster: `describe` takes the narrow `RunningCluster` protocol).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from transit.deploy.local import ProcHandle
from transit.deploy.topology import Layout
from transit.dev.handles import NodeHandle, RedisHandle
from transit.dev.processes import HOST, _alive, _cmdline, _terminate

STATE_FILE = "state.json"


class RunningCluster(Protocol):
    """What `describe` reads of a started cluster (transit.dev.localcluster.LocalCluster)."""

    workdir: Path
    lock_ttl: float
    root_token: str
    nodes: list[NodeHandle]
    sentinels: list[ProcHandle]
    haproxy: ProcHandle | None
    layout: Layout

    @property
    def primary(self) -> RedisHandle: ...

    @property
    def replicas(self) -> list[RedisHandle]: ...

    def haproxy_url(self, frontend: str = "write") -> str: ...


class ClusterError(Exception):
    """A local cluster could not be started or stopped; the message says why."""


def _fmt_ttl(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def load_state(workdir: str | Path) -> dict[str, Any]:
    path = Path(workdir).resolve() / STATE_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterError(f"no cluster state in {path.parent} (nothing to stop)") from None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot read {path}: {exc}") from None


def _ours(pid: int, kind: str) -> bool:
    """The pid is alive and still the process we started (guards against pid reuse)."""
    if not _alive(pid):
        return False
    cmd = _cmdline(pid)
    needle = {"redis": "redis", "sentinel": "redis", "haproxy": "haproxy"}.get(kind, "transit")
    return not cmd or needle in cmd


_STOP_ORDER = ("haproxy", "node", "sentinel", "redis")


def _state_pids(state: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """(kind, pid) of every process `state.json` records, in the order to stop them."""
    if (state.get("haproxy") or {}).get("pid"):
        yield "haproxy", int(state["haproxy"]["pid"])
    for n in state.get("nodes", []):
        if n.get("pid"):
            yield "node", int(n["pid"])
    for s in state.get("sentinels", []):
        if s.get("pid"):
            yield "sentinel", int(s["pid"])
    for r in reversed(state.get("redis", [])):
        if r.get("pid"):
            yield "redis", int(r["pid"])


def running_pids(state: dict[str, Any]) -> list[int]:
    return [pid for kind, pid in _state_pids(state) if _ours(pid, kind)]


def down_from_state(workdir: str | Path, timeout: float = 20.0) -> dict[str, int]:
    """Stop what `state.json` in `workdir` records (HAProxy, nodes, Sentinels, then Redis)."""
    state = load_state(workdir)
    pids = list(_state_pids(state))
    report = {"terminated": 0, "killed": 0}
    stopped = 0
    for kind in _STOP_ORDER:
        group: list[tuple[int | None, Any]] = [(pid, None) for k, pid in pids
                                               if k == kind and _ours(pid, k)]
        stopped += len(group)
        for k, v in _terminate(group, timeout).items():
            report[k] += v
    report["already_gone"] = len(pids) - stopped
    (Path(workdir).resolve() / STATE_FILE).unlink(missing_ok=True)
    return report


def describe(cluster: RunningCluster, active: int | None) -> str:
    """The summary `transit cluster up` prints."""
    lines = [f"==> transit cluster is up (work folder: {cluster.workdir})", ""]
    for n in cluster.nodes:
        role = "active" if n.index == active else "standby"
        lines.append(f"  node {n.index} ({role:7}) api {n.addr}  cluster {n.cluster_addr}"
                     f"  pid {n.pid}")
    p = cluster.primary
    lines.append(f"  redis primary   {p.address}  pid {p.pid}")
    for r in cluster.replicas:
        lines.append(f"  redis replica   {r.address}  pid {r.pid}")
    for s in cluster.sentinels:
        lines.append(f"  sentinel        {HOST}:{s.port}  pid {s.pid}")
    addr = cluster.nodes[active if active is not None else 0].addr
    if cluster.haproxy is not None:
        f = cluster.layout.frontends
        lines.append(f"  haproxy         writes http://{HOST}:{f.write}  reads "
                     f"http://{HOST}:{f.read}  stats http://{HOST}:{f.stats}/stats  "
                     f"pid {cluster.haproxy.pid}")
        addr = cluster.haproxy_url("write")
    lines += [
        "",
        f"  lock_ttl {_fmt_ttl(cluster.lock_ttl)}; logs and configs in {cluster.workdir}",
        f"Root Token: {cluster.root_token}  (saved in {cluster.workdir / 'root-token'})",
        "",
        f"    $ export VAULT_ADDR='{addr}'",
        f"    $ export VAULT_TOKEN=$(cat {cluster.workdir / 'root-token'})",
        "",
        f"Stop it with: transit cluster down --dir {cluster.workdir}",
    ]
    return "\n".join(lines) + "\n"
