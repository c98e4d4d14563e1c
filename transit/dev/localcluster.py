"""A local HA cluster on one machine: Redis primary + replicas and N `transit server` nodes.

    cluster = LocalCluster(".transit-cluster", nodes=3, replicas=2).up()
    cluster.nodes[0].addr          # "http://127.0.0.1:8200"
    cluster.active_index()         # which node answers sys/health with 200
    cluster.kill(1, signal.SIGKILL); cluster.restart(1)
    cluster.down()

`transit cluster up` / `transit cluster down` (transit/cli.py) are thin wrappers around this;
`down` from another process reads `state.json` (transit/dev/clusterstate.py).
Everything lives in the work folder (default `./.transit-cluster`):

- `redis-<port>/`               each Redis server's folder: its log and its append-only file
                                (`appendonlydir/`; AOF with `appendfsync everysec`, eviction
                                off), so a Redis restart keeps the data. `up` starts a new
                                cluster with a new seal key, so it first removes the data files
                                a previous `up` left there (they could not be unsealed anyway)
- `seal.key`                    the static seal key (32 random bytes, hex) shared by the nodes
- `node-<i>.hcl`, `node-<i>.log`  each node's configuration and stdout/stderr
- `root-token`                  the root token returned by `sys/init`
- `state.json`                  ports and pids, read by `down` (and by `up` to refuse a second run)

`up` starts every node at once, sends `sys/init` to node 0 and then unseals every node at
once, as an operator's script would: with the static seal (the default) the nodes unseal
themselves once they see the storage initialised; with `seal="shamir"` the one key share goes
to every node at the same time (`unseal_all`).
Standbys are plain (forwarding) standbys unless `perf_standby=True` (`--perf-standby`);
`workers=N` (`--workers`) sets the processes per node (default: the server's own default).
Signals from `kill()` go to a node's whole process group (all its workers).
Node i listens on `base_port + 10*i` (plain HTTP on 127.0.0.1) with its cluster port one
above; Redis uses `redis_port` (primary) and `redis_port + 1 ...` (replicas). Node i's storage
stanza points `address` at the primary and `read_address` at replica `i % replicas`.
Processes are started in their own session, so they outlive the `transit cluster up` command.

The deployment topology (docs/deploy.md; `docker/compose.yml` without containers):
`sentinels=3` (`--sentinels 3`) adds three Sentinels on `sentinel_port`, `+1`, ... watching the
primary; nodes then find the primary through them, and node i reads from Redis server
`i % (replicas + 1)` (the one "next to it", the primary included). `haproxy_port=P`
(`--haproxy`) adds HAProxy: writes on P (→ the active node), reads on P+1 (→ every unsealed
node), stats on P+2. Their configurations come from `transit.deploy.render`, as docker/'s do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from transit.deploy.local import (
    DeployError,
    ProcHandle,
    find_haproxy,
    haproxy_handle,
    sentinel_handles,
    start_haproxy,
    start_sentinels,
)
from transit.deploy.render import hcl_str, layout_node_hcl, node_hcl
from transit.deploy.topology import (
    Checks,
    Layout,
    SentinelTimings,
    local_layout,
)
from transit.dev.clusterstate import (
    STATE_FILE,
    ClusterError,
    _fmt_ttl,
    load_state,
    running_pids,
)
from transit.dev.handles import HOST, NodeHandle, RedisHandle, parse_ttl

# re-exported: tests and the CLI use them
from transit.dev.processes import (
    _signal,
    _tail,
    _terminate,
    find_redis_server,
    port_free,
)

DEFAULT_WORKDIR = ".transit-cluster"
# Env vars that would override the generated config files (the env wins in Vault).
_OVERRIDING_ENV = ("VAULT_API_ADDR", "VAULT_CLUSTER_ADDR", "VAULT_REDIRECT_ADDR")


# What a node's log says once one of its worker processes has taken a role (wait_ready).
_WORKER_COUNT = re.compile(r"==> transit node \S+: (\d+) worker processes")
_WORKER_ID = re.compile(r"\bworker=(\d+)")
_ACTIVE_ROLE = re.compile(r"is now the active node|follows the active role")
_STANDBY_ROLE = re.compile(r"entered standby mode")


class LocalCluster:
    """Start, inspect and stop a local HA cluster (see the module docstring)."""

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

    # -- up ---------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Refuse (ClusterError) when redis-server is missing, a port is taken, or a cluster
        recorded in this work folder is still running."""
        if self.redis_server is None:
            self.redis_server = find_redis_server()
        if self.redis_server is None or not os.access(self.redis_server, os.X_OK):
            raise ClusterError("redis-server not found on PATH (install Redis, e.g. "
                               "`apt-get install redis-server`, or run `make deps`)")
        if self.haproxy is not None:
            self.haproxy_bin = self.haproxy_bin or find_haproxy()
            if self.haproxy_bin is None or not os.access(self.haproxy_bin, os.X_OK):
                raise ClusterError("haproxy not found (install it, e.g. `apt-get install "
                                   "haproxy`, or run `make deps`)")
        if self.state_path.exists():
            running = running_pids(load_state(self.workdir))
            if running:
                raise ClusterError(
                    f"a cluster recorded in {self.workdir} is still running (pids "
                    f"{', '.join(str(p) for p in running)}); run `transit cluster down"
                    f" --dir {self.workdir}` first")
        ports = self.ports()
        if len(set(ports)) != len(ports):
            raise ClusterError(f"the port ranges overlap: {sorted(ports)}; choose --base-port "
                               "and --redis-port further apart")
        busy = [p for p in ports if not port_free(p)]
        if busy:
            raise ClusterError(f"port(s) already in use on {HOST}: "
                               f"{', '.join(str(p) for p in busy)}")

    def up(self) -> LocalCluster:
        """Start Redis and every node, initialise, wait for one active node. On failure
        everything started so far is stopped and ClusterError is raised.

        As an operator's script does it: every node is started at once, `sys/init` goes to
        node 0, and then every node is unsealed at once — with the static seal the nodes
        unseal themselves as soon as they see the storage initialised; with `seal="shamir"`
        the key share is sent to every node at the same time (`unseal_all`)."""
        self.preflight()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_redis()
            if self.sentinels:
                assert self.redis_server is not None
                start_sentinels(self.layout, self.sentinels, self.redis_server,
                                self.start_timeout)
                self._save_state()
            self._write_configs()
            self._save_state()
            for node in self.nodes:
                self._spawn(node)
            self._save_state()
            for node in self.nodes:
                self._wait_listening(node)
            self._initialise(self.nodes[0])
            if self.seal == "shamir":
                self.unseal_all()
            self.wait_ready()
            if self.haproxy is not None:
                assert self.haproxy_bin is not None
                start_haproxy(self.layout, self.haproxy, self.haproxy_bin, self.start_timeout)
                self._save_state()
                self.wait_haproxy()
        except DeployError as exc:
            self.down()
            raise ClusterError(str(exc)) from None
        except BaseException:
            self.down()
            raise
        return self

    def unseal_all(self, indices: list[int] | None = None) -> None:
        """Send the key share of a Shamir-sealed cluster to every node (or `indices`) at the
        same time, one thread per node."""
        import threading

        errors: list[str] = []

        def one(node: NodeHandle) -> None:
            try:
                r = httpx.put(node.addr + "/v1/sys/unseal", json={"key": self.unseal_key},
                              timeout=30.0)
                if r.status_code != 200:
                    errors.append(f"node {node.index}: {r.status_code} {r.text}")
            except httpx.HTTPError as exc:
                errors.append(f"node {node.index}: {exc!r}")

        nodes = [self.nodes[i] for i in (indices if indices is not None else range(len(self.nodes)))]
        self.unsealed_at = time.monotonic()
        threads = [threading.Thread(target=one, args=(n,)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise ClusterError("sys/unseal failed: " + "; ".join(errors))

    def _start_redis(self) -> None:
        assert self.redis_server is not None
        for r in self.redis:
            r.dir.mkdir(parents=True, exist_ok=True)
            r.clear_data()  # a previous `up`'s data: sealed with a key that is now gone
            r.proc = subprocess.Popen(r.args(self.redis_server), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                      cwd=r.dir, start_new_session=True)
            r.pid = r.proc.pid
        self._save_state()
        import redis

        deadline = time.monotonic() + self.start_timeout
        for r in self.redis:
            with redis.Redis(host=HOST, port=r.port, socket_timeout=2) as c:
                while True:
                    if r.proc is not None and r.proc.poll() is not None:
                        raise ClusterError(f"redis-server on port {r.port} exited: "
                                           f"{_tail(r.log_path)}")
                    with contextlib.suppress(redis.RedisError):
                        if c.ping() and (r.replica_of is None or c.info("replication").get(
                                "master_link_status") == "up"):
                            break
                    if time.monotonic() > deadline:
                        raise ClusterError(f"redis-server on port {r.port} not ready in "
                                           f"{self.start_timeout:.0f}s: {_tail(r.log_path)}")
                    time.sleep(0.02)

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

    def _write_configs(self) -> None:
        key = self.seal_key_path
        key.write_text(secrets.token_hex(32) + "\n")
        key.chmod(0o600)
        for node in self.nodes:
            node.config_path.write_text(self.node_config(node))

    def _spawn(self, node: NodeHandle) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _OVERRIDING_ENV}
        env["PYTHONUNBUFFERED"] = "1"
        with open(node.log_path, "ab") as log:
            node.log_start = log.tell()
            node.proc = subprocess.Popen(
                [self.python, "-m", "transit", "server", "-config", str(node.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, env=env, start_new_session=True,
            )
        node.pid = node.proc.pid

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

    def _initialise(self, node: NodeHandle) -> None:
        body = ({"secret_shares": 1, "secret_threshold": 1} if self.seal == "shamir"
                else {"recovery_shares": 1, "recovery_threshold": 1})
        r = self._http.put(node.addr + "/v1/sys/init", timeout=30.0, json=body)
        if r.status_code != 200:
            raise ClusterError(f"sys/init on node {node.index} failed: {r.status_code} {r.text}")
        self.root_token = r.json()["root_token"]
        if self.seal == "shamir":
            self.unseal_key = r.json()["keys_base64"][0]
        token_file = self.workdir / "root-token"
        token_file.write_text(self.root_token + "\n")
        token_file.chmod(0o600)

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

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to node i: to its whole process group, so SIGSTOP/SIGCONT/SIGKILL reach
        every worker process of the node (SIGKILL: reaped at once)."""
        node = self.nodes[i]
        if node.pid is None:
            raise ClusterError(f"node {i} is not running")
        _signal(node.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM) and node.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(10 if sig == signal.SIGKILL else 30)

    def stop_node(self, i: int, timeout: float = 10.0) -> None:
        """SIGTERM node i (SIGCONT first, in case it is stopped), then SIGKILL."""
        node = self.nodes[i]
        _terminate([(node.pid, node.proc)], timeout)

    def restart(self, i: int, *, wait: bool = True) -> None:
        """Stop node i if it still runs, start it again with the same configuration (it
        unseals itself with the static seal) and, with `wait`, wait for it to be ready."""
        node = self.nodes[i]
        if node.running:
            self.stop_node(i)
        self._spawn(node)
        self._save_state()
        if wait:
            self._wait_listening(node)
            self.wait_ready()

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

    # -- down -------------------------------------------------------------------------------
    def down(self, timeout: float = 20.0) -> dict[str, int]:
        """Stop HAProxy, every node, the Sentinels, then every Redis server: SIGTERM, SIGKILL
        after `timeout`."""
        front = [(self.haproxy.pid, self.haproxy.proc)] if self.haproxy is not None else []
        nodes = [(n.pid, n.proc) for n in self.nodes if n.pid is not None]
        sentinels = [(s.pid, s.proc) for s in self.sentinels]
        redis_ = [(r.pid, r.proc) for r in reversed(self.redis) if r.pid is not None]
        report = {"terminated": 0, "killed": 0}
        for group in (front, nodes, sentinels, redis_):
            for k, v in _terminate(group, timeout).items():
                report[k] += v
        extra: list[Any] = [*self.sentinels, *([self.haproxy] if self.haproxy else [])]
        for handle in [*self.nodes, *self.redis, *extra]:
            handle.pid, handle.proc = None, None
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        self._http.close()
        self._http = httpx.Client(timeout=2.0)
        return report

    def __enter__(self) -> LocalCluster:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()
