#!/usr/bin/env python3
"""sys/health latency on the active, and leader stability, during a big RSA batch decrypt.

    .venv/bin/python bench/rsa_batch_health.py [--items 10000] [--key-type rsa-4096]
        [--lock-ttl 10s] [--workers N] [--health-interval 0.01] [--dir /tmp/rsa-batch-bench]

Starts a local cluster (transit.dev.localcluster: 3 nodes, Redis primary + 1 replica, every node
started at once), creates the key on the active node and encrypts `--items` plaintexts with
it. Then, while one `decrypt` request carries all of them in `batch_input` to the active node:

* a thread per standby polls `sys/leader` every 100 ms (a change of `leader_address`, or an
  error, counts);
* a thread polls `sys/health` on the active node back to back (`--health-interval` apart,
  10 s timeout) and records each latency (a timeout or non-200 is a failure, counted in the
  percentiles with the time it took).

Prints a Markdown report: batch duration and status, health p50/p99/max and failures during
the batch (and for a quiet baseline before it), leader changes. Timing belongs here, never in
a test (DESIGN §6).
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transit.dev.localcluster import LocalCluster  # noqa: E402
from transit.dev.processes import port_free  # noqa: E402


def free_layout(nodes: int, replicas: int) -> tuple[int, int]:
    for base in range(24000, 30000, 100):
        redis_port = base + 90
        ports = [redis_port + j for j in range(replicas + 1)]
        ports += [base + 10 * i + d for i in range(nodes) for d in (0, 1)]
        if all(port_free(p) for p in ports):
            return base, redis_port
    raise SystemExit("no free ports")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class HealthProbe(threading.Thread):
    """Back-to-back GET sys/health on one node; (start, latency, ok) per probe."""

    def __init__(self, addr: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.addr, self.interval = addr, interval
        self.samples: list[tuple[float, float, bool]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10.0) as http:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    ok = http.get(f"{self.addr}/v1/sys/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.samples.append((t0, time.monotonic() - t0, ok))
                time.sleep(self.interval)

    def window(self, start: float, end: float) -> tuple[list[float], int]:
        """Latencies of the probes sent in [start, end] (a failed probe counts with the time
        it took to fail: its timeout, at worst) and how many failed."""
        lat = [dt for t0, dt, _ in self.samples if start <= t0 <= end]
        bad = sum(1 for t0, _, ok in self.samples if start <= t0 <= end and not ok)
        return lat, bad


class LeaderPoll(threading.Thread):
    """GET sys/leader on a standby every 100 ms; records the leader addresses seen."""

    def __init__(self, addr: str, token: str) -> None:
        super().__init__(daemon=True)
        self.addr, self.token = addr, token
        self.seen: list[str] = []
        self.errors = 0
        self.polls = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5.0, headers={"X-Vault-Token": self.token}) as http:
            while not self.stop.is_set():
                self.polls += 1
                try:
                    r = http.get(f"{self.addr}/v1/sys/leader")
                    leader = r.json().get("leader_address", "") if r.status_code == 200 else ""
                except (httpx.HTTPError, ValueError):
                    leader = ""
                if not leader:
                    self.errors += 1
                elif not self.seen or self.seen[-1] != leader:
                    self.seen.append(leader)
                time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--key-type", default="rsa-4096")
    ap.add_argument("--lock-ttl", default="10s")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--health-interval", type=float, default=0.01)
    ap.add_argument("--dir", default="/tmp/rsa-batch-bench")
    ap.add_argument("--label", default="", help="a name for this run in the report")
    args = ap.parse_args()

    workdir = Path(args.dir)
    shutil.rmtree(workdir, ignore_errors=True)
    base, redis_port = free_layout(3, 1)
    c = LocalCluster(workdir, nodes=3, replicas=1, base_port=base, redis_port=redis_port,
                     lock_ttl=args.lock_ttl, workers=args.workers)
    c.up()
    try:
        run(c, args)
    finally:
        c.down(timeout=10.0)


def run(c: LocalCluster, args: argparse.Namespace) -> None:
    active = c.wait_active()
    addr = c.nodes[active].addr
    standbys = [n for n in c.nodes if n.index != active]
    h = {"X-Vault-Token": c.root_token}
    http = httpx.Client(timeout=600.0, headers=h)
    http.post(f"{addr}/v1/sys/mounts/transit", json={"type": "transit"}).raise_for_status()
    http.post(f"{addr}/v1/transit/keys/rsa", json={"type": args.key_type}).raise_for_status()
    ciphertexts: list[str] = []
    for start in range(0, args.items, 1000):
        n = min(1000, args.items - start)
        items = [{"plaintext": base64.b64encode(f"item {start + i}".encode()).decode()}
                 for i in range(n)]
        r = http.post(f"{addr}/v1/transit/encrypt/rsa", json={"batch_input": items})
        r.raise_for_status()
        ciphertexts += [x["ciphertext"] for x in r.json()["data"]["batch_results"]]
    # Let standbys settle on the leader before measuring.
    time.sleep(3)

    probe = HealthProbe(addr, args.health_interval)
    polls = [LeaderPoll(n.addr, c.root_token) for n in standbys]
    probe.start()
    for p in polls:
        p.start()
    time.sleep(3)  # quiet baseline
    base_end = time.monotonic()
    t0 = time.monotonic()
    r = http.post(f"{addr}/v1/transit/decrypt/rsa",
                  json={"batch_input": [{"ciphertext": ct} for ct in ciphertexts]})
    t1 = time.monotonic()
    status = r.status_code
    decrypted = 0
    if status == 200:
        results = r.json()["data"]["batch_results"]
        decrypted = sum(1 for x in results if x.get("plaintext") and not x.get("error"))
    time.sleep(2)  # the leader polls keep watching a little after the batch
    probe.stop.set()
    for p in polls:
        p.stop.set()
    probe.join()
    for p in polls:
        p.join()
    still_active = c.active_index()

    quiet, quiet_bad = probe.window(base_end - 3, base_end)
    during, during_bad = probe.window(t0, t1)
    leaders = {a for p in polls for a in p.seen}
    changes = sum(max(0, len(p.seen) - 1) for p in polls)
    ms = 1000.0
    print(f"### {args.label or 'run'}: {args.items}-item {args.key_type} batch decrypt\n")
    print(f"- machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.python_version()}; "
          f"nodes 3 x workers {args.workers or 'default'}; lock_ttl {args.lock_ttl}")
    print(f"- batch: HTTP {status}, {decrypted}/{args.items} decrypted, {t1 - t0:.2f} s")
    print("\n| sys/health on the active | probes | p50 ms | p99 ms | max ms | failed |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, lat, bad in (("quiet (3 s before)", quiet, quiet_bad),
                           ("during the batch", during, during_bad)):
        med = statistics.median(lat) * ms if lat else float("nan")
        mx = max(lat) * ms if lat else float("nan")
        print(f"| {name} | {len(lat)} | {med:.1f} | {pct(lat, 99) * ms:.1f} | "
              f"{mx:.1f} | {bad} |")
    print(f"\n- sys/leader on the standbys: {sum(p.polls for p in polls)} polls, "
          f"{sum(p.errors for p in polls)} without a leader, leader addresses seen "
          f"{sorted(leaders)}, changes {changes}; active before: node {active}, after: node "
          f"{still_active}")


if __name__ == "__main__":
    main()
