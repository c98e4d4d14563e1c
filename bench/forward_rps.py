"""Forwarding benchmark: encrypt sent to a plain standby (every request forwarded to the active
over the mutual-TLS cluster port) against the same encrypt sent to the active, in one run.

    .venv/bin/python bench/forward_rps.py [--nodes 2] [--replicas 1] [--duration 10]
        [--conns 32] [--repeat 3] [--workers N] [--profile DIR --label before]
        [--writes] [--json OUT] [--server openbao --bao .venv/openbao/bin/bao --nodes 3]

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
vs the active: key rotation (of a fresh key per run) and KV v2 put, each with wrk (a fixed
POST per request).

`--server openbao`: the same measurement on OpenBao (`--bao`, 2.7.2 from `make bench-compare`):
the 3-node raft cluster of bench/matrix.py (`start_bao_cluster`); CPU is counted per `bao
server` process. OpenBao's standbys serve read requests themselves by default, transit
encrypt on an existing key included (the active node stays idle meanwhile): that is the
counterpart of our performance standby (`--perf-standby`). `--bao-forward` sets
`disable_standby_reads = true` (an extra `-config` file), so that its standbys forward
everything like our plain standbys.

Rounds alternate the order (active first in odd rounds, the standby first in even ones).

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

from transit.dev.localcluster import LocalCluster  # noqa: E402
from transit.dev.processes import port_free  # noqa: E402

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


def node_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system, and system alone) of a node: its supervisor and every
    worker."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0
    total = system = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
            system += t.system
        except psutil.Error:
            pass
    return total, system


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


class View:
    """The nodes under test: addresses, the pid whose process tree is one node, the token."""

    def __init__(self, addrs: list[str], pids: list[int], token: str) -> None:
        self.addrs, self.pids, self.token = addrs, pids, token


def measured(v: View, target: int, other: int, path: str, body_file: str,
             args: argparse.Namespace) -> dict[str, Any]:
    """One wrk run at node `target`, with the CPU both nodes used meanwhile."""
    load0 = loadavg()
    # warm-up outside the CPU accounting
    wrk(v.addrs[target], v.token, path, body_file, args.warmup, args.conns, 0)
    cpu0 = node_cpu(v.pids[target]), node_cpu(v.pids[other])
    r = wrk(v.addrs[target], v.token, path, body_file, args.duration, args.conns, 0)
    cpu1 = node_cpu(v.pids[target]), node_cpu(v.pids[other])
    n = max(1, r["requests"])
    r["cpu_ms_target"] = (cpu1[0][0] - cpu0[0][0]) * 1000 / n
    r["cpu_ms_other"] = (cpu1[1][0] - cpu0[1][0]) * 1000 / n
    # the system part (socket calls, TLS records leave as sends)
    r["sys_ms_target"] = (cpu1[0][1] - cpu0[0][1]) * 1000 / n
    r["sys_ms_other"] = (cpu1[1][1] - cpu0[1][1]) * 1000 / n
    r["load"] = f"{load0} -> {loadavg()}"
    return r


def profile(v: View, standby: int, active: int, path: str, body_file: str,
            args: argparse.Namespace) -> list[str]:
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    secs = int(args.duration)
    ext = "svg" if args.profile_format == "flamegraph" else "txt"
    files = [out / f"standby-{args.label}.{ext}", out / f"active-{args.label}.{ext}"]
    spies = [subprocess.Popen([spy, "record", "--pid", str(v.pids[i]), "--subprocesses",
                               "--rate", "200", "--duration", str(secs), "--format",
                               args.profile_format, "--output", str(f), "--nonblocking"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i, f in ((standby, files[0]), (active, files[1]))]
    time.sleep(0.5)
    wrk(v.addrs[standby], v.token, path, body_file, secs + 1, args.conns, 0)
    for p in spies:
        _, err = p.communicate(timeout=60)
        if p.returncode:
            print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
    return [str(f) for f in files]


def setup(v: View, active: int, kv: bool) -> None:
    """Mount transit (and KV v2), unless already mounted, and create the key `bench`."""
    h = {"X-Vault-Token": v.token}
    s = requests.Session()
    a = v.addrs[active]
    mounts = s.get(f"{a}/v1/sys/mounts", headers=h, timeout=30).json()
    mounts = mounts.get("data", mounts)
    if "transit/" not in mounts:
        s.post(f"{a}/v1/sys/mounts/transit", headers=h, json={"type": "transit"},
               timeout=30).raise_for_status()
    if kv and "secret/" not in mounts:
        s.post(f"{a}/v1/sys/mounts/secret", headers=h,
               json={"type": "kv", "options": {"version": "2"}}, timeout=30).raise_for_status()
    s.post(f"{a}/v1/transit/keys/bench", headers=h, timeout=30).raise_for_status()
    time.sleep(1)  # let the standbys catch up


def fresh_key(v: View, key_path: str) -> None:
    requests.post(f"{v.addrs[0]}{key_path}", headers={"X-Vault-Token": v.token},
                  timeout=30).raise_for_status()
    time.sleep(0.5)  # the standbys see it before the load starts


def row(name: str, r: dict[str, Any]) -> str:
    return (f"| {name} | {r['rps']:,.0f} | {r['p50']} | {r['p99']} | {r['non2xx']} | "
            f"{r['cpu_ms_target']:.3f} | {r['cpu_ms_other']:.3f} | {r['load']} |")


def start_transit(args: argparse.Namespace, work: Path) -> tuple[View, Any, str]:
    base, redis_port = free_layout(args.nodes, args.replicas)
    c = LocalCluster(work, nodes=args.nodes, replicas=args.replicas, base_port=base,
                     redis_port=redis_port, lock_ttl=10.0,
                     perf_standby=args.writes or args.perf_standby,
                     workers=args.workers)
    c.up()
    try:
        active = c.wait_ready()
        order = [active] + [n.index for n in c.nodes if n.index != active]
        pids = [c.nodes[i].pid for i in order]
        assert all(p is not None for p in pids)
        v = View([c.nodes[i].addr for i in order], [int(p or 0) for p in pids], c.root_token)
        setup(v, 0, args.writes)
        workers = re.search(r"(\d+) worker processes", c.nodes[order[1]].log(100_000))
    except BaseException:
        c.down()
        raise
    kind = "performance standbys" if args.writes or args.perf_standby else "plain standbys"
    return v, c.down, (f"transit: {args.nodes} nodes ({workers.group(1) if workers else 1} "
                       f"worker process(es) each), {args.replicas} Redis replica(s), {kind}")


def start_openbao(args: argparse.Namespace, work: Path) -> tuple[View, Any, str]:
    from bench.matrix import start_bao_cluster

    bao = args.bao
    if args.bao_forward:  # bao server ... -config=<extra>: standbys forward every request
        work.mkdir(parents=True, exist_ok=True)
        (work / "forward.hcl").write_text("disable_standby_reads = true\n")
        wrapper = work / "bao-forward.sh"
        wrapper.write_text(f'#!/bin/sh\nexec "{Path(bao).resolve()}" "$@" '
                           f'-config="{work / "forward.hcl"}"\n')
        wrapper.chmod(0o755)
        bao = str(wrapper)
    t = start_bao_cluster(work, "forwarding", bao)
    try:
        setup(View(t.addrs, [], t.admin_token), 0, args.writes)
        pids = []
        for i in range(len(t.addrs)):
            conf = f"n{i}.hcl"
            pids.append(next(p.pid for p in psutil.process_iter(["cmdline"])
                             if any(a.endswith(conf) and "openbao-cluster" in a
                                    and str(work) in a for a in p.info["cmdline"] or [])))
    except BaseException:
        t.stop()
        raise
    reads = "disable_standby_reads = true" if args.bao_forward else "standby reads on (default)"
    return View(t.addrs, pids, t.admin_token), t.stop, f"{t.describe}; {reads}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=("transit", "openbao"), default="transit")
    ap.add_argument("--bao", default=str(ROOT / ".venv" / "openbao" / "bin" / "bao"))
    ap.add_argument("--bao-forward", action="store_true",
                    help="OpenBao with disable_standby_reads = true")
    ap.add_argument("--perf-standby", action="store_true",
                    help="transit: performance standbys (encrypt served by the standby)")
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", default="", help="folder for py-spy flame graphs")
    ap.add_argument("--profile-format", default="flamegraph", choices=("flamegraph", "raw"),
                    help="py-spy output: a flame graph (.svg) or collapsed stacks (.txt)")
    ap.add_argument("--label", default="run")
    ap.add_argument("--writes", action="store_true",
                    help="performance standbys; rotate and KV put instead of encrypt")
    ap.add_argument("--json", default="", help="write every run's figures here")
    ap.add_argument("--workdir", default="")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="forward-rps-"))
    start = start_openbao if args.server == "openbao" else start_transit
    v, stop, describe = start(args, work)
    results: dict[str, Any] = {"describe": describe, "args": vars(args), "runs": []}
    try:
        active, standby = 0, 1
        body_dir = Path(tempfile.mkdtemp(prefix="forward-body-"))
        if args.writes:
            (body_dir / "rotate.json").write_bytes(b"{}")
            (body_dir / "kv.json").write_bytes(b'{"data":{"value":"' + b"x" * 64 + b'"}}')
            ops = [("rotate", "/v1/transit/keys/bench/rotate", str(body_dir / "rotate.json")),
                   ("kv put", "/v1/secret/data/bench", str(body_dir / "kv.json"))]
        else:
            (body_dir / "encrypt.json").write_bytes(BODY)
            ops = [("encrypt 64 B", "/v1/transit/encrypt/bench", str(body_dir / "encrypt.json"))]
        print(f"{describe}; wrk -t1 -c{args.conns} -d{args.duration:g}s ({args.warmup:g} s "
              f"warm-up) bench/peak.lua; nproc {psutil.cpu_count()}\n")
        print("| round | op | node | req/s | p50 | p99 | non-2xx | CPU ms/req of that node "
              "| CPU ms/req of the other node | load avg |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        ratios: dict[str, list[float]] = {}
        for rnd in range(1, args.repeat + 1):
            for op, path, body_file in ops:
                order = [active, standby] if rnd % 2 else [standby, active]
                got = {}
                for target in order:
                    other = standby if target == active else active
                    run_path = path
                    if op == "rotate":  # a fresh key per run: a rotation costs more with
                        # every version the key has, so both nodes start from one version
                        run_path = path.replace("/bench/", f"/rot-{rnd}-{target}/")
                        fresh_key(v, run_path.rsplit("/", 1)[0])
                    got[target] = measured(v, target, other, run_path, body_file, args)
                ra, rs = got[active], got[standby]
                ratio = rs["rps"] / ra["rps"] if ra["rps"] else 0.0
                ratios.setdefault(op, []).append(ratio)
                for target in order:
                    who = "active" if target == active else "standby"
                    print(row(f"{rnd} | {op} | {who}", got[target]))
                    results["runs"].append({"round": rnd, "op": op, "node": who, **{
                        k: x for k, x in got[target].items() if k != "raw"}})
                sys.stdout.flush()
        print()
        for op, rs_ in ratios.items():
            print(f"{op}: standby/active per round {', '.join(f'{x:.3f}' for x in rs_)}; "
                  f"median {statistics.median(rs_):.3f}")
        results["ratios"] = ratios
        if args.profile and not args.writes:
            files = profile(v, standby, active, ops[0][1], ops[0][2], args)
            print("flame graphs: " + ", ".join(files))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        stop()


if __name__ == "__main__":
    main()
