"""Performance standby benchmark: encrypt req/s on a standby vs on the active, and how long a
rotation takes to reach a standby.

    .venv/bin/python bench/perf_standby.py [--nodes 2] [--replicas 1] [--duration 10s]
                                           [--conns 32] [--rotations 200] [--repeat 1]

Starts a LocalCluster with performance standbys on free loopback ports (Redis primary +
replicas, `--nodes` transit nodes), creates an aes256-gcm96 key through the active node, then:

1. drives the STANDBY, then the ACTIVE (one at a time, same parameters) with wrk
   (bench/encrypt.lua: single-item encrypt of a 30-byte plaintext; `-t2 -c<conns>`, a 5 s
   warm-up, then `--duration` measured; `--repeat` alternating rounds), and reports req/s, p50,
   p99, non-2xx answers and the machine's load average around each run. During
   the standby runs it also reads what the active's cluster port received (`ss -ti`: bytes on
   established connections, plus connections opened or closed): a standby that serves
   locally forwards nothing (echo heartbeats only: a new TLS connection, ~1.7 kB, every 5 s);
2. rotates the key `--rotations` times on the active; after each rotate response it polls
   encrypt on the standby through 4 keep-alive connections (spread over the node's worker
   processes) until each returned the new version, and reports the delay until the first and
   until all 4 saw it (p50/p99/max).

Prints a Markdown summary. Needs wrk (Debian package `wrk`) and redis-server.
"""

from __future__ import annotations

import argparse
import base64
import math
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transit.dev.localcluster import LocalCluster  # noqa: E402
from transit.dev.processes import port_free  # noqa: E402

PT = base64.b64encode(b"hello world hello world 1234").decode()


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


def _ss(*args: str) -> list[str]:
    return subprocess.run(["ss", "-tinH", *args], capture_output=True, text=True, timeout=10,
                          check=True).stdout.splitlines()


def cluster_port_state(port: int) -> tuple[dict[str, int], set[str]]:
    """Established connections of a listening port (peer -> bytes received) and its
    TIME-WAIT connections (connections closed meanwhile)."""
    est: dict[str, int] = {}
    peer = ""
    for line in _ss("state", "established", f"( sport = :{port} )"):
        if not line[:1].isspace():
            peer = line.split()[-1]
        elif (m := re.search(r"bytes_received:(\d+)", line)) and peer:
            est[peer] = int(m.group(1))
    closed = {" ".join(line.split()[-2:]) for line in
              _ss("state", "time-wait", f"( sport = :{port} or dport = :{port} )")
              if not line[:1].isspace()}
    return est, closed


def wrk(addr: str, token: str, duration: str, conns: int) -> dict[str, str]:
    script = str(ROOT / "bench" / "encrypt.lua")
    base = ["wrk", "-t2", f"-c{conns}", "-s", script]
    subprocess.run([*base, "-d5s", addr, "--", token, "bench"], check=True,
                   capture_output=True, text=True)  # warm-up
    out = subprocess.run([*base, f"-d{duration}", "--latency", addr, "--", token, "bench"],
                         check=True, capture_output=True, text=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps.group(1) if rps else "?", "p50": p50.group(1) if p50 else "?",
            "p99": p99.group(1) if p99 else "?", "non2xx": non2xx.group(1) if non2xx else "0",
            "errors": errors.group(0) if errors else ""}


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def rotation_delays(c: LocalCluster, active: int, standby: int, rotations: int,
                    sessions: int = 4) -> tuple[list[float], list[float], int]:
    h = {"X-Vault-Token": c.root_token}
    act = requests.Session()
    polls = [requests.Session() for _ in range(sessions)]
    url = f"{c.nodes[standby].addr}/v1/transit/encrypt/bench"
    first: list[float] = []
    every: list[float] = []
    stale = 0
    for _ in range(rotations):
        r = act.post(f"{c.nodes[active].addr}/v1/transit/keys/bench/rotate", headers=h,
                     timeout=30)
        r.raise_for_status()
        want = r.json()["data"]["latest_version"]
        t0 = time.monotonic()
        pending = set(range(sessions))
        seen_first = None
        while pending:
            if time.monotonic() - t0 > 10:
                raise SystemExit(f"v{want} not seen on the standby after 10 s")
            for i in sorted(pending):
                resp = polls[i].post(url, headers=h, json={"plaintext": PT}, timeout=30)
                resp.raise_for_status()
                v = int(resp.json()["data"]["ciphertext"].split(":")[1][1:])
                if v == want:
                    pending.discard(i)
                    seen_first = seen_first or time.monotonic() - t0
                else:
                    stale += 1
        first.append(seen_first or 0.0)
        every.append(time.monotonic() - t0)
    return first, every, stale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--rotations", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=1,
                    help="standby/active rounds, alternating (the median is reported too)")
    ap.add_argument("--workdir", default="")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="perf-standby-"))
    base, redis_port = free_layout(args.nodes, args.replicas)
    c = LocalCluster(work, nodes=args.nodes, replicas=args.replicas, base_port=base,
                     redis_port=redis_port, lock_ttl=10.0, perf_standby=True)
    c.up()
    try:
        active = c.wait_ready()
        standby = next(n.index for n in c.nodes if n.index != active)
        h = {"X-Vault-Token": c.root_token}
        s = requests.Session()
        s.post(f"{c.nodes[active].addr}/v1/sys/mounts/transit", headers=h,
               json={"type": "transit"}, timeout=30).raise_for_status()
        r = s.post(f"{c.nodes[active].addr}/v1/transit/keys/bench", headers=h, timeout=30)
        r.raise_for_status()
        index = {"X-Vault-Index": r.headers.get("X-Vault-Index", "")}
        r = s.post(f"{c.nodes[standby].addr}/v1/transit/encrypt/bench",
                   headers={**h, **index}, json={"plaintext": PT}, timeout=30)
        r.raise_for_status()
        workers = re.search(r"(\d+) worker processes", c.nodes[standby].log(100_000))

        cport = c.nodes[active].cluster_port
        runs: list[tuple[str, dict[str, str], str]] = []
        forwarded, conns, standby_secs = 0, 0, 0.0
        for _ in range(args.repeat):
            load = loadavg()
            est0, closed0 = cluster_port_state(cport)
            t0 = time.monotonic()
            runs.append(("performance standby",
                         wrk(c.nodes[standby].addr, c.root_token, args.duration, args.conns),
                         f"{load} -> {loadavg()}"))
            est1, closed1 = cluster_port_state(cport)
            forwarded += sum(b - est0.get(p, 0) for p, b in est1.items())
            conns += len(est1.keys() - est0.keys()) + len(closed1 - closed0)
            standby_secs += time.monotonic() - t0
            load = loadavg()
            runs.append(("active", wrk(c.nodes[active].addr, c.root_token, args.duration,
                                       args.conns), f"{load} -> {loadavg()}"))

        first, every, stale = rotation_delays(c, active, standby, args.rotations)
        ms = [x * 1000 for x in first]
        ms_all = [x * 1000 for x in every]

        print(f"cluster: {args.nodes} nodes ({workers.group(1) if workers else 1} worker "
              f"process(es) each), {args.replicas} replica(s), performance standbys; "
              f"wrk -t2 -c{args.conns} -d{args.duration} (5 s warm-up) bench/encrypt.lua\n")
        print("| run | node | encrypt req/s | p50 | p99 | non-2xx | 1-min load avg before -> after |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for i, (name, res, load) in enumerate(runs):
            print(f"| {i // 2 + 1} | {name} | {res['rps']} | {res['p50']} | {res['p99']} | "
                  f"{res['non2xx']} | {load} |")
        if args.repeat > 1:
            for name in ("performance standby", "active"):
                rps = [float(r["rps"]) for n, r, _ in runs if n == name and r["rps"] != "?"]
                print(f"\nmedian {name}: {statistics.median(rps):.0f} req/s")
        for name, res, _ in runs:
            if res["errors"]:
                print(f"\nwrk on the {name}: {res['errors']}")
        print(f"\nthe active's cluster port during the standby runs ({standby_secs:.0f} s incl. "
              f"warm-ups): {forwarded} bytes received, {conns} connections opened or closed "
              f"(echo heartbeats: one new TLS connection per standby every 5 s)")
        print(f"\ninvalidation delay, rotate response -> standby encrypt returns the new version "
              f"({args.rotations} rotations):\n")
        print("| | p50 | p99 | max |")
        print("| --- | --- | --- | --- |")
        print(f"| first of 4 connections | {statistics.median(ms):.1f} ms | {pct(ms, 0.99):.1f} ms "
              f"| {max(ms):.1f} ms |")
        print(f"| all 4 connections | {statistics.median(ms_all):.1f} ms | "
              f"{pct(ms_all, 0.99):.1f} ms | {max(ms_all):.1f} ms |")
        print(f"\nencrypts that returned the previous version after the rotate response: {stale}")
    finally:
        c.down()


if __name__ == "__main__":
    main()
