"""History-checking fault harness (DESIGN §8, issue 8): real Redis and `transit server`
processes, concurrent clients on separate connections that record every operation, and
checkers that run after heal + a restart of every node.

    cluster = FaultCluster(tmp / "c", nodes=1, workers=2).up()
    history = History()
    clients = [Client(cluster, history, node=0) for _ in range(8)]   # one Session each
    run_parallel([lambda c=c: loop(c) for c in clients], timeout=30)
    cluster.restart_all()                                            # caches dropped
    report = verify(cluster, history, "race")                        # the four checkers
    print(report.summary()); assert report.clean, report.details()

Checkers (each returns messages; `verify` gathers them into a `Report`):
1. `check_unique_rotations`: no two acknowledged (2xx) rotations of a key returned the same
   `latest_version`;
2. `check_latest`: after the restart every node reports, for every key, the same
   `latest_version`, and it is >= every version an acknowledged operation returned;
3. `check_decrypt`: every acknowledged ciphertext decrypts to its plaintext on every node (on
   several fresh connections per node, so every worker process answers), unless an
   acknowledged trim removed its version;
4. `check_fingerprints`: each (key, version) had one key material over the whole run. Sampled
   from export (exportable keys), backup blobs, an HMAC of a fixed input per version (any key
   type) and RSA/EC public keys; each sampling kind is compared with itself.

Statuses: 2xx = acknowledged; 503 or no answer (timeout, reset) = unknown outcome (it may or
may not have been applied); anything else = failed (must not have been applied).

Set FAULT_REPORT=<file> to append every report as a JSON line (used for bench/results).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from tests.fault.proxy import FaultProxy
from tests.ha.util import HACluster
from transit.dev.handles import NodeHandle, RedisHandle
from transit.dev.processes import HOST, port_free

MOUNT = "transit"
HMAC_INPUT = base64.b64encode(b"fault-harness fingerprint").decode()
_VERSION = re.compile(r"^vault:v(\d+):")


# -- processes ---------------------------------------------------------------------------------
def _redis_args(server: str, r: RedisHandle, replica_port: int | None = None) -> list[str]:
    """Redis as production should run it: AOF, fsync every second, no eviction. A replica
    connects to `replica_port` when given (a proxy on its replication link)."""
    args = [server, "--port", str(r.port), "--bind", HOST, "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction", "--dir", str(r.dir),
            "--logfile", str(r.log_path), "--repl-diskless-sync-delay", "0",
            "--daemonize", "no"]
    if r.replica_of is not None:
        args += ["--replicaof", HOST, str(replica_port or r.replica_of)]
    return args


SENTINEL_MASTER = "transit"


def _free_port() -> int:
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(30000, 32000)  # below the ephemeral range
        if port_free(port):
            return port
    raise RuntimeError("no free port for Sentinel")


class SentinelHandle:
    """One `redis-server --sentinel` process (quorum 1, down after 1 s, fast failover)."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, server: str, primary_port: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind {HOST}\ndir {self.dir}\n"
            f"logfile {self.dir / 'sentinel.log'}\n"
            f"sentinel monitor {SENTINEL_MASTER} {HOST} {primary_port} 1\n"
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
            f"sentinel failover-timeout {SENTINEL_MASTER} 5000\n"
            f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n")
        self.proc = subprocess.Popen([server, str(conf), "--sentinel"], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        with redis.Redis(host=HOST, port=self.port, socket_timeout=2) as c:
            while True:
                with contextlib.suppress(redis.RedisError):
                    if c.sentinel_get_master_addr_by_name(SENTINEL_MASTER):
                        return
                assert self.proc.poll() is None, "sentinel exited"
                assert time.monotonic() < deadline, "sentinel did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class FaultCluster(HACluster):
    """A local cluster for fault tests: Redis with AOF, optional TCP proxies in front of the
    primary (`storage_proxy`), of every node's cluster port (`cluster_proxies`) and on every
    replica's replication link (`replication_proxies`), extra storage options, a chosen
    worker count, and process-level faults on Redis."""

    def __init__(self, workdir: Path, nodes: int = 1, replicas: int = 0, *,
                 workers: int | None = 2, lock_ttl: float = 3.0,
                 storage_options: dict[str, str] | None = None, storage_proxy: bool = False,
                 cluster_proxies: bool = False, replication_proxies: bool = False,
                 read_replica: bool = False, perf_standby: bool = False,
                 seal: str = "static", extra_config: str = "", sentinel: bool = False
                 ) -> None:
        super().__init__(workdir, nodes=nodes, replicas=replicas, lock_ttl=lock_ttl,
                         perf_standby=perf_standby, seal=seal)
        self.extra_config = extra_config
        # One Sentinel (quorum 1, 1 s down-after) watching the primary; nodes then name only
        # Sentinel (`sentinel_addresses`), plus their replica with `read_replica`.
        self.sentinel: SentinelHandle | None = None
        if sentinel:
            self.sentinel = SentinelHandle(_free_port(), workdir / "sentinel")
        self.workers = workers
        self.storage_options = dict(storage_options or {})
        self.read_replica = read_replica
        self.storage_proxy: FaultProxy | None = None
        if storage_proxy:
            self.storage_proxy = FaultProxy((HOST, self.primary.port)).start()
        self.replication_proxies: dict[int, FaultProxy] = {}  # replica port -> proxy
        if replication_proxies:
            for r in self.replicas:
                self.replication_proxies[r.port] = FaultProxy((HOST, self.primary.port)).start()
        self.cluster_proxies: dict[int, FaultProxy] = {}
        if cluster_proxies:
            for n in self.nodes:
                self.cluster_proxies[n.index] = FaultProxy((HOST, n.cluster_port)).start()

    # -- configuration ------------------------------------------------------------------------
    def _start_redis(self) -> None:
        """Every Redis server with AOF on (the base class's own flags may differ)."""
        for r in self.redis:
            self.start_redis(r, wait=False)
        for r in self.redis:
            self.wait_redis(r)
        if self.sentinel is not None:
            assert self.redis_server is not None
            self.sentinel.start(self.redis_server, self.primary.port)

    def node_config(self, node: NodeHandle) -> str:
        address = (self.storage_proxy.address if self.storage_proxy is not None
                   else self.primary.address)
        lines = [f'  address  = "{address}"', f'  node_id  = "{node.node_id}"',
                 f'  lock_ttl = "{int(self.lock_ttl * 1000)}ms"']
        if self.sentinel is not None:
            lines[0] = (f'  sentinel_addresses = "{HOST}:{self.sentinel.port}"\n'
                        f'  sentinel_master = "{SENTINEL_MASTER}"')
        if self.read_replica and self.replicas:
            replica = self.replicas[node.index % len(self.replicas)]
            lines.append(f'  read_address = "{replica.address}"')
        lines += [f'  {k} = "{v}"' for k, v in self.storage_options.items()]
        proxy = self.cluster_proxies.get(node.index)
        cluster_addr = f"https://{proxy.address}" if proxy is not None else node.cluster_addr
        return (
            'storage "redis" {\n' + "\n".join(lines) + "\n}\n\n"
            'listener "tcp" {\n'
            f'  address     = "{HOST}:{node.api_port}"\n'
            f'  cluster_address = "{HOST}:{node.cluster_port}"\n'
            "  tls_disable = true\n}\n\n"
            + self.seal_stanza()
            + f'api_addr     = "{node.addr}"\n'
            f'cluster_addr = "{cluster_addr}"\n'
            'cluster_name = "transit-fault"\n'
            "disable_mlock = true\n"
            f"disable_performance_standby = {'false' if self.perf_standby else 'true'}\n"
            + (f"workers = {self.workers}\n" if self.workers is not None else "")
            + self.extra_config
        )

    # -- nodes ---------------------------------------------------------------------------------
    def add_node(self, node_id: str | None = None, *, wait_unsealed: bool = True) -> int:
        """Start one more node (same storage, seal and config shape) on free ports."""
        rng = random.Random()
        for _ in range(200):
            port = rng.randrange(20000, 30000)  # below the ephemeral range, as free_layout
            if port_free(port) and port_free(port + 1):
                break
        else:
            raise RuntimeError("no free port pair for another node")
        index = len(self.nodes)
        node = NodeHandle(index, port, self.workdir, node_id or f"node-{index}")
        self.nodes.append(node)
        self.sessions.append(requests.Session())
        node.config_path.write_text(self.node_config(node))
        self._spawn(node)
        self._save_state()
        self._wait_listening(node)
        if wait_unsealed:
            self.wait_unsealed(index)
        return index

    def wait_unsealed(self, i: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.health(i, timeout=0.5)
            if h is not None and not h[1].get("sealed", True):
                return
            time.sleep(0.05)
        raise AssertionError(f"node {i} not unsealed after {timeout}s:\n{self.nodes[i].log()}")

    def restart_all(self, timeout: float = 60.0) -> int:
        """Stop every node, then start them all again (every cache is dropped); the index of
        the active node once one is active and the others are standbys."""
        for node in self.nodes:
            if node.running:
                self.stop_node(node.index)
        for node in self.nodes:
            self._spawn(node)
        self._save_state()
        for node in self.nodes:
            self._wait_listening(node)
        return self.wait_ready(timeout)

    # -- Redis ---------------------------------------------------------------------------------
    def start_redis(self, r: RedisHandle, *, wait: bool = True, wipe: bool = False) -> None:
        """(Re)start one Redis server; `wipe` removes its data files first (a lost disk)."""
        assert self.redis_server is not None
        r.dir.mkdir(parents=True, exist_ok=True)
        if wipe:
            for name in ("appendonlydir", "appendonly.aof", "dump.rdb"):
                path = r.dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        link = self.replication_proxies.get(r.port) if r.replica_of == self.primary.port \
            else None
        args = _redis_args(self.redis_server, r, link.port if link is not None else None)
        r.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  cwd=r.dir, start_new_session=True)
        r.pid = r.proc.pid
        self._save_state()
        if wait:
            self.wait_redis(r)

    def wait_redis(self, r: RedisHandle, timeout: float = 20.0, link: bool = True) -> None:
        deadline = time.monotonic() + timeout
        with redis.Redis(host=HOST, port=r.port, socket_timeout=2) as c:
            while True:
                if r.proc is not None and r.proc.poll() is not None:
                    raise RuntimeError(f"redis {r.port} exited: {r.log_path.read_text()[-2000:]}")
                with contextlib.suppress(redis.RedisError):
                    if c.ping() and (r.replica_of is None or not link or c.info(
                            "replication").get("master_link_status") == "up"):
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis {r.port} not ready after {timeout}s")
                time.sleep(0.02)

    def signal_redis(self, r: RedisHandle, sig: int) -> None:
        assert r.pid is not None
        os.kill(r.pid, sig)
        if sig == signal.SIGKILL and r.proc is not None:
            r.proc.wait(10)

    def promote(self, replica: RedisHandle) -> None:
        """Fail over by hand: `REPLICAOF NO ONE` on `replica`, which becomes `primary`
        (the old primary's handle becomes a replica of it, to be started again with
        `start_redis`), and the storage proxy (the "virtual IP") moves to it."""
        old = self.primary
        with self.rclient(replica) as c:
            c.execute_command("REPLICAOF", "NO", "ONE")
        replica.replica_of = None
        old.replica_of = replica.port
        self.redis.remove(replica)
        self.redis.insert(0, replica)
        self._save_state()
        if self.storage_proxy is not None:
            self.storage_proxy.set_upstream((HOST, replica.port))

    def rclient(self, r: RedisHandle | None = None) -> redis.Redis:
        """A direct (not proxied) client of a Redis server (the primary by default)."""
        return redis.Redis(host=HOST, port=(r or self.primary).port, socket_timeout=10)

    def index(self, prefix: str = "transit") -> int:
        """The write index `<prefix>/core/index` on the primary."""
        with self.rclient() as c:
            return int(c.get(f"{prefix}/core/index") or 0)

    def wait_own_writes(self, prefix: str = "transit", timeout: float = 30.0) -> None:
        """Wait for the writes a fresh active node makes on its own, so that a test counting
        index increments counts only its clients' writes: the token expiration manager's
        first scan stores the `sys/token/lease-index` marker once (transit/tokens/
        expiration.py), some time after activation."""
        deadline = time.monotonic() + timeout
        with self.rclient() as c:
            while not c.exists(f"{prefix}/sys/token/lease-index"):
                assert time.monotonic() < deadline, "no lease-index marker written"
                time.sleep(0.05)

    def down(self, timeout: float = 20.0) -> dict[str, int]:
        for p in [self.storage_proxy, *self.cluster_proxies.values(),
                  *self.replication_proxies.values()]:
            if p is not None:
                p.stop()
        report = super().down(timeout)
        if self.sentinel is not None:
            self.sentinel.stop()
        return report

    def sentinel_primary(self) -> tuple[str, int] | None:
        """The primary Sentinel names now."""
        assert self.sentinel is not None
        with redis.Redis(host=HOST, port=self.sentinel.port, socket_timeout=2) as c:
            found = c.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
        if not found:
            return None
        host = found[0].decode() if isinstance(found[0], bytes) else str(found[0])
        return host, int(found[1])

    def check_aof(self) -> None:
        """Fail loudly when a Redis server of the cluster runs without AOF."""
        for r in self.redis:
            with self.rclient(r) as c:
                assert c.config_get("appendonly")["appendonly"] == "yes", r.port

    def setup(self, mount: str = MOUNT, kv: str | None = None) -> None:
        """Mount transit (and KV v2 at `kv`) through the active node."""
        active = self.wait_active()
        r = self.request(active, "POST", f"sys/mounts/{mount}", json={"type": "transit"})
        assert r.status_code == 204, r.text
        if kv:
            r = self.request(active, "POST", f"sys/mounts/{kv}",
                             json={"type": "kv", "options": {"version": "2"}})
            assert r.status_code == 204, r.text


# -- history -----------------------------------------------------------------------------------
@dataclass
class Op:
    """One client operation: invoke/complete monotonic times, node, kind, key, HTTP status
    (0 = no answer), the parsed result, and the request's own arguments in `args`."""

    id: int
    client: int
    node: int
    kind: str
    key: str
    invoke: float
    complete: float = 0.0
    status: int = -1
    result: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def unknown(self) -> bool:
        return self.status in (0, 503)

    @property
    def failed(self) -> bool:
        return not self.ok and not self.unknown


@dataclass(frozen=True)
class Fingerprint:
    key: str
    version: int
    kind: str  # material | hmac | public
    value: str
    source: str
    node: int
    at: float


class History:
    """Thread-safe record of operations and key fingerprints."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.ops: list[Op] = []
        self.fingerprints: list[Fingerprint] = []
        self.marks: dict[str, float] = {}

    def begin(self, client: int, node: int, kind: str, key: str, args: dict[str, Any]) -> Op:
        op = Op(next(self._ids), client, node, kind, key, time.monotonic(), args=args)
        with self._lock:
            self.ops.append(op)
        return op

    def fingerprint(self, key: str, version: int, kind: str, value: str, source: str,
                    node: int) -> None:
        digest = hashlib.sha256(value.encode()).hexdigest()[:16] if value else "<empty>"
        fp = Fingerprint(key, int(version), kind, digest, source, node, time.monotonic())
        with self._lock:
            self.fingerprints.append(fp)

    def mark(self, name: str) -> float:
        """Remember a point in time (e.g. when a fault started)."""
        self.marks[name] = time.monotonic()
        return self.marks[name]

    def select(self, kind: str | None = None, key: str | None = None) -> list[Op]:
        with self._lock:
            ops = list(self.ops)
        return [o for o in ops if (kind is None or o.kind == kind)
                and (key is None or o.key == key) and o.status != -1]

    def counts(self) -> dict[str, int]:
        ops = self.select()
        return {"ops": len(ops), "acknowledged": sum(o.ok for o in ops),
                "unknown": sum(o.unknown for o in ops), "failed": sum(o.failed for o in ops)}

    def errors_500(self, limit: int = 5) -> dict[str, int]:
        """The most frequent 500 answers ("kind: message"), for diagnosis."""
        c = Counter(f"{o.kind}: {o.error[:240]}" for o in self.select() if o.status == 500)
        return dict(c.most_common(limit))

    def statuses(self) -> dict[str, dict[int, int]]:
        out: dict[str, Counter[int]] = defaultdict(Counter)
        for o in self.select():
            out[o.kind][o.status] += 1
        return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def record_keyinfo(history: History, key: str, data: dict[str, Any], node: int,
                   source: str) -> None:
    """Fingerprints from a key read: public keys of asymmetric versions."""
    for version, entry in (data.get("keys") or {}).items():
        if isinstance(entry, dict) and entry.get("public_key"):
            history.fingerprint(key, int(version), "public", entry["public_key"], source, node)


def record_backup(history: History, key: str, blob: str, node: int, source: str) -> None:
    """Fingerprints of every version in a backup blob (policy keys and archive)."""
    doc = json.loads(base64.b64decode(blob))
    policy = doc.get("policy", {})
    for version, entry in (policy.get("keys") or {}).items():
        material = _entry_material(entry)
        if material:
            history.fingerprint(key, int(version), "material", material, source, node)


def _entry_material(entry: dict[str, Any]) -> str:
    if entry.get("key"):
        return str(entry["key"])
    if entry.get("rsa_key"):
        return json.dumps(entry["rsa_key"].get("D"), sort_keys=True)
    return ""


class Client:
    """One client thread's view: its own requests.Session (its own connections) to one node."""

    _ids = itertools.count()

    def __init__(self, cluster: HACluster, history: History, node: int, *,
                 mount: str = MOUNT, token: str | None = None, timeout: float = 20.0) -> None:
        self.cluster = cluster
        self.history = history
        self.node = node
        self.mount = mount
        self.token = token
        self.timeout = timeout
        self.id = next(self._ids)
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def http(self, method: str, path: str, json_body: Any = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        h = {"X-Vault-Token": self.token or self.cluster.root_token}
        h.update(headers or {})
        return self.session.request(method, f"{self.cluster.nodes[self.node].addr}/v1/{path}",
                                    json=json_body, headers=h, timeout=self.timeout,
                                    allow_redirects=False)

    def call(self, kind: str, key: str, method: str, path: str, body: Any = None, *,
             headers: dict[str, str] | None = None,
             parse: Callable[[Op, dict[str, Any]], None] | None = None) -> Op:
        """Send one request and record it (status 0 when no answer came)."""
        op = self.history.begin(self.id, self.node, kind, key, {"body": body, "path": path})
        try:
            r = self.http(method, path, body, headers)
        except requests.RequestException as exc:
            op.complete, op.status, op.error = time.monotonic(), 0, type(exc).__name__
            return op
        op.complete = time.monotonic()
        try:
            doc = r.json() if r.content else {}
        except ValueError:
            doc = {}
        if not (200 <= r.status_code < 300):
            errors = doc.get("errors", []) if isinstance(doc, dict) else []
            op.error = " ".join("; ".join(str(e) for e in errors).split())[:300]
            if r.status_code in (301, 302, 307, 308):
                op.error = f"redirect to {r.headers.get('location', '')}"
        elif parse is not None and isinstance(doc, dict):
            parse(op, doc)
        op.status = r.status_code
        return op

    # -- transit ops -----------------------------------------------------------------------
    def _keyinfo(self, op: Op, doc: dict[str, Any]) -> None:
        data = doc.get("data") or {}
        for f in ("latest_version", "min_decryption_version", "min_available_version",
                  "min_encryption_version"):
            if f in data:
                op.result[f] = data[f]
        record_keyinfo(self.history, op.key, data, self.node, op.kind)

    def create(self, key: str, **params: Any) -> Op:
        return self.call("create", key, "POST", f"{self.mount}/keys/{key}", params,
                         parse=self._keyinfo)

    def read(self, key: str) -> Op:
        return self.call("read", key, "GET", f"{self.mount}/keys/{key}", parse=self._keyinfo)

    def rotate(self, key: str) -> Op:
        return self.call("rotate", key, "POST", f"{self.mount}/keys/{key}/rotate",
                         parse=self._keyinfo)

    def config(self, key: str, **params: Any) -> Op:
        return self.call("config", key, "POST", f"{self.mount}/keys/{key}/config", params,
                         parse=self._keyinfo)

    def trim(self, key: str, min_available_version: int) -> Op:
        return self.call("trim", key, "POST", f"{self.mount}/keys/{key}/trim",
                         {"min_available_version": min_available_version}, parse=self._keyinfo)

    def encrypt(self, key: str, plaintext: bytes | None = None, **params: Any) -> Op:
        pt = base64.b64encode(plaintext or secrets.token_bytes(24)).decode()

        def parse(op: Op, doc: dict[str, Any]) -> None:
            ct = (doc.get("data") or {}).get("ciphertext", "")
            m = _VERSION.match(ct)
            op.result.update(ciphertext=ct, plaintext=pt, version=int(m.group(1)) if m else 0)

        return self.call("encrypt", key, "POST", f"{self.mount}/encrypt/{key}",
                         {"plaintext": pt, **params}, parse=parse)

    def decrypt(self, key: str, ciphertext: str) -> Op:
        def parse(op: Op, doc: dict[str, Any]) -> None:
            op.result["plaintext"] = (doc.get("data") or {}).get("plaintext", "")

        return self.call("decrypt", key, "POST", f"{self.mount}/decrypt/{key}",
                         {"ciphertext": ciphertext}, parse=parse)

    def backup(self, key: str) -> Op:
        def parse(op: Op, doc: dict[str, Any]) -> None:
            blob = (doc.get("data") or {}).get("backup", "")
            if blob:
                record_backup(self.history, key, blob, self.node, "backup")

        return self.call("backup", key, "GET", f"{self.mount}/backup/{key}", parse=parse)

    def export(self, key: str) -> Op:
        def parse(op: Op, doc: dict[str, Any]) -> None:
            for version, material in ((doc.get("data") or {}).get("keys") or {}).items():
                self.history.fingerprint(key, int(version), "material", str(material),
                                         "export", self.node)

        return self.call("export", key, "GET",
                         f"{self.mount}/export/encryption-key/{key}", parse=parse)

    def token_create(self, **params: Any) -> Op:
        def parse(op: Op, doc: dict[str, Any]) -> None:
            op.result["token"] = (doc.get("auth") or {}).get("client_token", "")

        return self.call("token_create", "token", "POST", "auth/token/create", params,
                         parse=parse)

    def hmac(self, key: str, version: int) -> Op:
        """An HMAC of a fixed input under one version: a fingerprint of that version."""
        def parse(op: Op, doc: dict[str, Any]) -> None:
            value = (doc.get("data") or {}).get("hmac", "")
            if value:
                self.history.fingerprint(key, version, "hmac", value, "hmac", self.node)

        return self.call("hmac", key, "POST", f"{self.mount}/hmac/{key}",
                         {"input": HMAC_INPUT, "key_version": version}, parse=parse)


class RedisMonitor:
    """MONITOR on a Redis server (a direct connection) in a thread: every command it runs,
    including the ones inside Lua scripts, as raw lines."""

    def __init__(self, port: int) -> None:
        import socket

        self.lines: list[str] = []
        self._sock = socket.create_connection((HOST, port), timeout=5)
        self._sock.sendall(b"MONITOR\r\n")
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._sock.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *complete, buf = buf.split(b"\r\n")
            self.lines += [x.decode("latin-1") for x in complete]

    def stop(self) -> list[str]:
        time.sleep(0.2)  # let the last lines arrive
        with contextlib.suppress(OSError):
            self._sock.close()
        self._thread.join(2)
        return self.lines

    def script_writes(self, needle: str) -> list[str]:
        """The SET commands run inside scripts on keys containing `needle` (as logged,
        value included)."""
        return [line.split("] ", 1)[1] for line in self.lines
                if " lua] " in line and '"SET"' in line[:80] and needle in line]


# -- running clients ---------------------------------------------------------------------------
def run_parallel(fns: Iterable[Callable[[], None]], timeout: float) -> None:
    """Run each function in its own thread; fail if one raises or they outlive `timeout`."""
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(fn,), daemon=True) for fn in fns]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError(f"client threads still running after {timeout}s")
    if errors:
        raise errors[0]


def bounded(max_ops: int, seconds: float) -> Iterator[int]:
    """0, 1, ... at most `max_ops` times and only while `seconds` have not passed."""
    deadline = time.monotonic() + seconds
    for i in range(max_ops):
        if time.monotonic() > deadline:
            return
        yield i


# -- checkers ----------------------------------------------------------------------------------
def check_unique_rotations(history: History) -> list[str]:
    """Checker 1: no two acknowledged rotations of a key returned the same latest_version."""
    seen: dict[tuple[str, int], list[int]] = defaultdict(list)
    for op in history.select("rotate"):
        if op.ok and "latest_version" in op.result:
            seen[(op.key, int(op.result["latest_version"]))].append(op.id)
    return [f"{key}: v{v} returned by {len(ids)} acknowledged rotations (ops {ids[:6]})"
            for (key, v), ids in sorted(seen.items()) if len(ids) > 1]


def acknowledged_versions(history: History) -> dict[str, int]:
    """Per key, the highest version an acknowledged operation returned."""
    best: dict[str, int] = defaultdict(int)
    for op in history.select():
        if not op.ok:
            continue
        v = op.result.get("latest_version", op.result.get("version"))
        if isinstance(v, int):
            best[op.key] = max(best[op.key], v)
    return dict(best)


def check_latest(history: History, final: dict[str, dict[int, int | None]], *,
                 may_refuse_key: Callable[[str], bool] | None = None) -> list[str]:
    """Checker 2: every node agrees on latest_version and it is >= every acknowledged one.
    `final[key][node]` is the latest_version read after the restart (None: not readable,
    allowed only for keys `may_refuse_key` selects)."""
    out = []
    acked = acknowledged_versions(history)
    for key in sorted(set(acked) | set(final)):
        per_node = final.get(key, {})
        values = set(per_node.values())
        missing = sorted(n for n, v in per_node.items() if v is None)
        if missing and key in acked:
            if may_refuse_key is None or not may_refuse_key(key):
                out.append(f"{key}: not readable after restart on node(s) {missing} "
                           f"(acknowledged up to v{acked[key]})")
            continue
        if len(values) > 1:
            out.append(f"{key}: nodes disagree on latest_version: {per_node}")
        lowest = min((v or 0 for v in values), default=0)
        if key in acked and lowest < acked[key]:
            out.append(f"{key}: latest_version {lowest} after restart < acknowledged "
                       f"v{acked[key]} ({acked[key] - lowest} versions lost)")
    return out


def check_monotonic_versions(history: History) -> list[str]:
    """latest_version never goes back: an acknowledged read or write of a key that started
    after an acknowledged rotation of it completed must not return a lower latest_version.
    (Two plain reads on different worker processes are not compared: a write whose outcome
    was unknown reaches the workers' caches at slightly different times.)"""
    out = []
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history.select():
        if op.ok and isinstance(op.result.get("latest_version"), int):
            by_key[op.key].append(op)
    for key, ops in sorted(by_key.items()):
        done = sorted((o for o in ops if o.kind == "rotate"), key=lambda o: o.complete)
        best, best_op, j = 0, None, 0
        for op in sorted(ops, key=lambda o: o.invoke):
            while j < len(done) and done[j].complete < op.invoke:
                if done[j].result["latest_version"] > best:
                    best, best_op = done[j].result["latest_version"], done[j]
                j += 1
            if op.result["latest_version"] < best and best_op is not None:
                out.append(f"{key}: {op.kind} op {op.id} saw v{op.result['latest_version']} "
                           f"after rotation op {best_op.id} had been acknowledged with v{best}")
    return out


WRITE_KINDS = ("create", "rotate", "config", "trim", "encrypt", "token_create", "sys_rotate")


def check_no_500(history: History, since: float = 0.0,
                 kinds: tuple[str, ...] = WRITE_KINDS) -> list[str]:
    """A write that fails must say why: refused (4xx, or 503 when the outcome is unknown or
    storage cannot take it), never an unexplained 500."""
    return [f"{o.kind} {o.key} op {o.id} answered 500: {o.error[:240]}"
            for o in history.select() if o.kind in kinds and o.status == 500
            and o.invoke >= since]


def trimmed_below(history: History) -> dict[str, int]:
    """Per key, the highest min_available_version an acknowledged trim set."""
    out: dict[str, int] = defaultdict(int)
    for op in history.select("trim"):
        if op.ok:
            out[op.key] = max(out[op.key], int(op.args["body"]["min_available_version"]))
    return dict(out)


@dataclass
class DecryptOutcome:
    op: Op
    node: int
    status: int
    plaintext: str
    error: str


def decrypt_all(cluster: HACluster, history: History, nodes: Iterable[int], *,
                mount: str = MOUNT, sessions: int = 3, chunk: int = 200,
                ops: list[Op] | None = None) -> list[DecryptOutcome]:
    """Decrypt every acknowledged ciphertext on every node, in batches, rotating over
    `sessions` fresh connections per node so that every worker process takes a share."""
    encs = ops if ops is not None else [o for o in history.select("encrypt")
                                        if o.ok and o.result.get("ciphertext")]
    by_key: dict[str, list[Op]] = defaultdict(list)
    for o in encs:
        by_key[o.key].append(o)
    out: list[DecryptOutcome] = []
    headers = {"X-Vault-Token": cluster.root_token}
    for node in nodes:
        pool = [requests.Session() for _ in range(sessions)]
        turn = itertools.cycle(pool)
        url = f"{cluster.nodes[node].addr}/v1/{mount}/decrypt/"
        for key, key_ops in sorted(by_key.items()):
            for i in range(0, len(key_ops), chunk):
                part = key_ops[i:i + chunk]
                batch = [{"ciphertext": o.result["ciphertext"]} for o in part]
                try:
                    r = next(turn).post(url + key, json={"batch_input": batch}, headers=headers,
                                        timeout=60)
                    status = r.status_code
                    doc = r.json() if r.content else {}
                except (requests.RequestException, ValueError) as exc:
                    status, doc = 0, {"errors": [type(exc).__name__]}
                items = (doc.get("data") or {}).get("batch_results") if isinstance(doc, dict) \
                    else None
                if not items or len(items) != len(part):
                    err = "; ".join(doc.get("errors", [])) if isinstance(doc, dict) else ""
                    out += [DecryptOutcome(o, node, status or 0, "", err or "no batch results")
                            for o in part]
                    continue
                for o, item in zip(part, items, strict=True):
                    out.append(DecryptOutcome(o, node, status, item.get("plaintext", ""),
                                              item.get("error", "")))
        for s in pool:
            s.close()
    return out


def check_decrypt(history: History, outcomes: list[DecryptOutcome], *,
                  may_refuse: Callable[[Op], bool] | None = None) -> list[str]:
    """Checker 3: every acknowledged ciphertext decrypts to its plaintext on every node.
    A version below an acknowledged trim may fail; `may_refuse(op)` allows a clear refusal
    (an error, never a wrong plaintext) for the ops it selects."""
    trims = trimmed_below(history)
    bad: dict[int, list[str]] = defaultdict(list)
    for d in outcomes:
        o = d.op
        if d.plaintext == o.result["plaintext"]:
            continue
        if not d.plaintext and o.result.get("version", 0) < trims.get(o.key, 0):
            continue  # trimmed away by an acknowledged trim
        if not d.plaintext and may_refuse is not None and may_refuse(o):
            continue
        what = "wrong plaintext" if d.plaintext else (d.error or f"HTTP {d.status}")[:120]
        bad[o.id].append(f"node {d.node}: {what}")
    ops = {o.id: o for o in history.select("encrypt")}
    return [f"{ops[i].key}: ciphertext v{ops[i].result.get('version')} (op {i}, acknowledged "
            f"on node {ops[i].node}) does not decrypt: {'; '.join(msgs[:3])}"
            for i, msgs in sorted(bad.items())]


def check_fingerprints(history: History) -> list[str]:
    """Checker 4: one key material per (key, version) over the whole run."""
    seen: dict[tuple[str, int, str], dict[str, list[Fingerprint]]] = defaultdict(
        lambda: defaultdict(list))
    for fp in history.fingerprints:
        seen[(fp.key, fp.version, fp.kind)][fp.value].append(fp)
    out = []
    for (key, version, kind), values in sorted(seen.items()):
        if len(values) > 1:
            desc = ", ".join(f"{v[:8]}×{len(fps)} (from {sorted({f.source for f in fps})})"
                             for v, fps in values.items())
            out.append(f"{key}: v{version} has {len(values)} different {kind} fingerprints: "
                       f"{desc}")
    return out


def check_tokens(cluster: HACluster, history: History) -> list[str]:
    """Every acknowledged token still looks itself up, on every node."""
    out = []
    for op in history.select("token_create"):
        token = op.result.get("token")
        if not op.ok or not token:
            continue
        for node in (n.index for n in cluster.nodes if n.running):
            try:
                status = cluster.request(node, "GET", "auth/token/lookup-self",
                                         token=token).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__  # type: ignore[assignment]
            if status != 200:
                out.append(f"token from op {op.id}: lookup-self on node {node} answered "
                           f"{status}")
    return out


def restart_all_or_report(cluster: FaultCluster, timeout: float = 45.0) -> list[str]:
    """Restart every node; a cluster that does not come back is a violation, not a crash
    (the checkers then find what is unreadable)."""
    try:
        cluster.restart_all(timeout)
    except Exception as exc:  # noqa: BLE001 - reported
        return [f"the cluster did not come back after a restart: {str(exc)[:300]}"]
    return []


# -- final state and reports -------------------------------------------------------------------
@dataclass
class Report:
    """What a scenario did and what the checkers found."""

    scenario: str
    ops: int
    acknowledged: int
    unknown: int
    failed: int
    statuses: dict[str, dict[int, int]]
    violations: dict[str, list[str]]
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    errors_500: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(len(v) for v in self.violations.values())

    @property
    def clean(self) -> bool:
        return self.lost == 0

    def summary(self) -> str:
        per = ", ".join(f"{k}={len(v)}" for k, v in self.violations.items())
        extra = "".join(f" {k}={v}" for k, v in self.metrics.items())
        return (f"[fault] {self.scenario}: ops={self.ops} acknowledged={self.acknowledged} "
                f"unknown={self.unknown} failed={self.failed} violations={self.lost} "
                f"({per}){extra} statuses={self.statuses} in {self.seconds:.1f}s")

    def details(self, limit: int = 8) -> str:
        lines = [self.summary()]
        for msg, n in self.errors_500.items():
            lines.append(f"  HTTP 500 x{n}: {msg}")
        for name, msgs in self.violations.items():
            for m in msgs[:limit]:
                lines.append(f"  {name}: {m}")
            if len(msgs) > limit:
                lines.append(f"  {name}: ... {len(msgs) - limit} more")
        return "\n".join(lines)

    def emit(self) -> None:
        """Print the summary; append a JSON line to $FAULT_REPORT when set."""
        print(self.details())
        path = os.environ.get("FAULT_REPORT")
        if path:
            row = {"scenario": self.scenario, "ops": self.ops, "acknowledged": self.acknowledged,
                   "unknown": self.unknown, "failed": self.failed, "violations": self.lost,
                   "by_checker": {k: len(v) for k, v in self.violations.items()},
                   "examples": {k: v[:3] for k, v in self.violations.items() if v},
                   "metrics": self.metrics, "statuses": self.statuses,
                   "errors_500": self.errors_500,
                   "seconds": round(self.seconds, 1)}
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")


def make_report(scenario: str, history: History, violations: dict[str, list[str]],
                metrics: dict[str, Any] | None = None, started: float = 0.0) -> Report:
    c = history.counts()
    return Report(scenario, c["ops"], c["acknowledged"], c["unknown"], c["failed"],
                  history.statuses(), violations, metrics or {},
                  time.monotonic() - started if started else 0.0, history.errors_500())


def final_state(cluster: HACluster, history: History, keys: Iterable[str], *,
                mount: str = MOUNT, exportable: bool = False,
                nodes: Iterable[int] | None = None) -> dict[str, dict[int, int | None]]:
    """After the restart: read every key on every node (latest_version), and sample its
    fingerprints again (export when exportable, else an HMAC per live version)."""
    final: dict[str, dict[int, int | None]] = defaultdict(dict)
    node_list = list(nodes) if nodes is not None else [n.index for n in cluster.nodes]
    for node in node_list:
        c = Client(cluster, history, node, mount=mount)
        for key in sorted(set(keys)):
            op = c.read(key)
            latest = op.result.get("latest_version") if op.ok else None
            final[key][node] = latest
            if not op.ok or latest is None:
                continue
            if exportable:
                c.export(key)
            else:
                low = max(1, int(op.result.get("min_decryption_version", 1)))
                for v in range(low, int(latest) + 1):
                    c.hmac(key, v)
        c.close()
    return dict(final)


def verify(cluster: HACluster, history: History, scenario: str, *,
           keys: Iterable[str] | None = None, mount: str = MOUNT, exportable: bool = False,
           may_refuse: Callable[[Op], bool] | None = None,
           may_refuse_key: Callable[[str], bool] | None = None, started: float = 0.0,
           extra: dict[str, list[str]] | None = None,
           metrics: dict[str, Any] | None = None) -> Report:
    """Run the four checkers against the (restarted) cluster; the report of them all.
    The final reads themselves are not counted as the scenario's operations."""
    checked = len(history.ops)
    key_set = set(keys) if keys is not None else {o.key for o in history.select()
                                                  if o.kind in ("encrypt", "rotate", "create")}
    nodes = [n.index for n in cluster.nodes if n.running]
    final = final_state(cluster, history, key_set, mount=mount, exportable=exportable,
                        nodes=nodes)
    outcomes = decrypt_all(cluster, history, nodes, mount=mount,
                           ops=[o for o in history.ops[:checked] if o.kind == "encrypt"
                                and o.ok and o.result.get("ciphertext")])
    run = History()
    run.ops = history.ops[:checked]
    run.fingerprints = history.fingerprints
    violations = {
        "duplicate_rotation_versions": check_unique_rotations(run),
        "latest_version_lost": check_latest(run, final, may_refuse_key=may_refuse_key),
        "ciphertexts_lost": check_decrypt(run, outcomes, may_refuse=may_refuse),
        "fingerprint_conflicts": check_fingerprints(history),
    }
    violations.update(extra or {})
    return make_report(scenario, run, violations, metrics, started)
