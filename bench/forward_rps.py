"""Forwarding benchmark: encrypt sent to a plain standby (every request forwarded to the active
over the mutual-TLS cluster port) against the same encrypt sent to the active, in one run.

    .venv/bin/python bench/forward_rps.py [--nodes 2] [--replicas 1] [--duration 10]
        [--conns 32] [--repeat 3] [--workers N] [--profile DIR --label before]
        [--writes] [--json OUT]

Starts a LocalCluster (plain standbys: `perf_standby=False`) on free loopback ports, creates
an aes256-gcm96 key `bench` through the active node, then for each of `--repeat` rounds drives
the ACTIVE and then the STANDBY with wrk (bench/peak.lua: one fixed 64 B encrypt, `-t1
-c<conns>`, a 3 s warm-up, then `--duration` s measured), reporting req/s, p50, p99, non-2xx
answers, the CPU seconds the standby and the active node used (all their processes, from
/proc) per 1,000 requests, and the 1-minute load average. The ratio standby/active is taken
per round (same run, same conditions).

`--profile DIR`: afterwards, a py-spy flame graph (`DIR/standby-<label>.svg`) of the standby's
worker processes while wrk drives the standby (py-spy samples every process of the node:
`--subprocesses`), and one of the active (`DIR/active-<label>.svg`) during the same run.

`--writes`: with performance standbys instead (`perf_standby=True`), writes through a standby
vs the active: key rotation and KV v2 put, each with wrk (a fixed POST per request).

Needs wrk (Debian package `wrk`, `make bench-deps`), redis-server and, for `--profile`,
py-spy (`.venv/bin/pip install py-spy`).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transit.dev.localcluster import LocalCluster, port_free  # noqa: E402

PEAK = ROOT / "bench" / "peak.lua"
BODY = b'{"plaintext":"' + b"QUFB" * 21 + b'QQ=="}'  # base64 of 64 bytes


def free_layout(nodes: int, replicas: int) -> tuple[int, int]:
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        redis_port = rng.randrange(30100, 32700 - replicas)
        ports = [redis_port + j for j in range(replicas + 1)]
        ports += [base + 10 * i + k for i in range(nodes) for k in (0, 1)]
        if all(port_free(p) for p in ports):
            return base, redis_port
    raise SystemExit("no free port layout found")


def node_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a node: its supervisor and every worker."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def wrk(addr: str, token: str, path: str, body_file: str, duration: float, conns: int,
        warmup: float = 3.0) -> dict[str, Any]:
    base = ["wrk", "-t1", f"-c{conns}", "-s", str(PEAK)]
    tail = [addr, "--", token, path, body_file]
    if warmup:
        subprocess.run([*base, f"-d{warmup:g}s", *tail], check=True, capture_output=True)
    out = subprocess.run([*base, f"-d{duration:g}s", "--latency", *tail], check=True,
                         capture_output=True, text=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": float(rps.group(1)) if rps else 0.0,
            "requests": int(total.group(1)) if total else 0,
            "p50": p50.group(1) if p50 else "?", "p99": p99.group(1) if p99 else "?",
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": errors.group(0) if errors else "", "raw": out}


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def measured(c: LocalCluster, target: int, other: int, path: str, body_file: str,
             args: argparse.Namespace) -> dict[str, Any]:
    """One wrk run at node `target`, with the CPU both nodes used meanwhile."""
    load0 = loadavg()
    t_pid, o_pid = c.nodes[target].pid, c.nodes[other].pid
    assert t_pid is not None and o_pid is not None
    # warm-up outside the CPU accounting
    wrk(c.nodes[target].addr, c.root_token, path, body_file, args.warmup, args.conns, 0)
    cpu0 = node_cpu(t_pid), node_cpu(o_pid)
    r = wrk(c.nodes[target].addr, c.root_token, path, body_file, args.duration, args.conns, 0)
    cpu1 = node_cpu(t_pid), node_cpu(o_pid)
    n = max(1, r["requests"])
    r["cpu_ms_target"] = (cpu1[0] - cpu0[0]) * 1000 / n
    r["cpu_ms_other"] = (cpu1[1] - cpu0[1]) * 1000 / n
    r["load"] = f"{load0} -> {loadavg()}"
    return r


def profile(c: LocalCluster, standby: int, active: int, path: str, body_file: str,
            args: argparse.Namespace) -> list[str]:
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    secs = int(args.duration)
    files = [out / f"standby-{args.label}.svg", out / f"active-{args.label}.svg"]
    spies = [subprocess.Popen([spy, "record", "--pid", str(c.nodes[i].pid), "--subprocesses",
                               "--rate", "200", "--duration", str(secs), "--format",
                               "flamegraph", "--output", str(f), "--nonblocking"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i, f in ((standby, files[0]), (active, files[1]))]
    time.sleep(0.5)
    wrk(c.nodes[standby].addr, c.root_token, path, body_file, secs + 1, args.conns, 0)
    for p in spies:
        _, err = p.communicate(timeout=60)
        if p.returncode:
            print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
    return [str(f) for f in files]


def setup(c: LocalCluster, active: int, kv: bool) -> None:
    h = {"X-Vault-Token": c.root_token}
    s = requests.Session()
    a = c.nodes[active].addr
    s.post(f"{a}/v1/sys/mounts/transit", headers=h, json={"type": "transit"},
           timeout=30).raise_for_status()
    s.post(f"{a}/v1/transit/keys/bench", headers=h, timeout=30).raise_for_status()
    if kv:
        s.post(f"{a}/v1/sys/mounts/secret", headers=h,
               json={"type": "kv", "options": {"version": "2"}}, timeout=30).raise_for_status()
    time.sleep(1)  # let the standbys' invalidation feeds catch up


def row(name: str, r: dict[str, Any]) -> str:
    return (f"| {name} | {r['rps']:,.0f} | {r['p50']} | {r['p99']} | {r['non2xx']} | "
            f"{r['cpu_ms_target']:.3f} | {r['cpu_ms_other']:.3f} | {r['load']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", default="", help="folder for py-spy flame graphs")
    ap.add_argument("--label", default="run")
    ap.add_argument("--writes", action="store_true",
                    help="performance standbys; rotate and KV put instead of encrypt")
    ap.add_argument("--json", default="", help="write every run's figures here")
    ap.add_argument("--workdir", default="")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="forward-rps-"))
    base, redis_port = free_layout(args.nodes, args.replicas)
    c = LocalCluster(work, nodes=args.nodes, replicas=args.replicas, base_port=base,
                     redis_port=redis_port, lock_ttl=10.0, perf_standby=args.writes,
                     workers=args.workers)
    c.up()
    results: dict[str, Any] = {"runs": []}
    try:
        active = c.wait_ready()
        standby = next(n.index for n in c.nodes if n.index != active)
        setup(c, active, args.writes)
        workers = re.search(r"(\d+) worker processes", c.nodes[standby].log(100_000))
        body_dir = Path(tempfile.mkdtemp(prefix="forward-body-"))
        if args.writes:
            (body_dir / "rotate.json").write_bytes(b"{}")
            (body_dir / "kv.json").write_bytes(b'{"data":{"value":"' + b"x" * 64 + b'"}}')
            ops = [("rotate", "/v1/transit/keys/bench/rotate", str(body_dir / "rotate.json")),
                   ("kv put", "/v1/secret/data/bench", str(body_dir / "kv.json"))]
        else:
            (body_dir / "encrypt.json").write_bytes(BODY)
            ops = [("encrypt 64 B", "/v1/transit/encrypt/bench", str(body_dir / "encrypt.json"))]
        kind = "performance standby" if args.writes else "plain standby"
        print(f"cluster: {args.nodes} nodes ({workers.group(1) if workers else 1} worker "
              f"process(es) each), {args.replicas} replica(s), {kind}; wrk -t1 -c{args.conns} "
              f"-d{args.duration:g}s ({args.warmup:g} s warm-up) bench/peak.lua; "
              f"nproc {psutil.cpu_count()}\n")
        print("| round | op | node | req/s | p50 | p99 | non-2xx | CPU ms/req of that node "
              "| CPU ms/req of the other node | load avg |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        ratios: dict[str, list[float]] = {}
        for rnd in range(1, args.repeat + 1):
            for op, path, body_file in ops:
                ra = measured(c, active, standby, path, body_file, args)
                rs = measured(c, standby, active, path, body_file, args)
                ratio = rs["rps"] / ra["rps"] if ra["rps"] else 0.0
                ratios.setdefault(op, []).append(ratio)
                print(row(f"{rnd} | {op} | active", ra))
                print(row(f"{rnd} | {op} | standby", rs))
                sys.stdout.flush()
                for who, r in (("active", ra), ("standby", rs)):
                    results["runs"].append({"round": rnd, "op": op, "node": who,
                                            **{k: v for k, v in r.items() if k != "raw"}})
        print()
        for op, rs_ in ratios.items():
            print(f"{op}: standby/active per round {', '.join(f'{x:.3f}' for x in rs_)}; "
                  f"median {statistics.median(rs_):.3f}")
        results["ratios"] = ratios
        if args.profile and not args.writes:
            files = profile(c, standby, active, ops[0][1], ops[0][2], args)
            print("flame graphs: " + ", ".join(files))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        c.down()


if __name__ == "__main__":
    main()
