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

This module holds the process actions (up, unseal, down, kill, restart); `LocalCluster` builds
on `ClusterParts` (transit/dev/clusterparts.py: the handles, ports, layout, node configurations
and state record) and `ClusterProbes` (transit/dev/clusterprobe.py: sys/health and the waits).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from typing import Any

import httpx

from transit.deploy.local import (
    DeployError,
    find_haproxy,
    start_haproxy,
    start_sentinels,
)
from transit.dev.clusterprobe import ClusterProbes
from transit.dev.clusterstate import ClusterError, load_state, running_pids
from transit.dev.handles import NodeHandle
from transit.dev.processes import (
    HOST,
    _signal,
    _tail,
    _terminate,
    find_redis_server,
    port_free,
)

# Env vars that would override the generated config files (the env wins in Vault).
_OVERRIDING_ENV = ("VAULT_API_ADDR", "VAULT_CLUSTER_ADDR", "VAULT_REDIRECT_ADDR")


class LocalCluster(ClusterProbes):
    """Start, inspect and stop a local HA cluster (see the module docstring)."""

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

    # -- faults -------------------------------------------------------------------------------
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
