#!/usr/bin/env python3
"""HA takeover time and forwarding overhead on a local cluster (transit.dev.localcluster).

    .venv/bin/python bench/ha_takeover.py [--runs 5] [--lock-ttl 10s] [--nodes 3]
        [--scenarios kill9,sigstop,stepdown,forwarding] [--dir /tmp/ha-bench]

Takeover time = from the moment the signal is sent (SIGKILL, SIGSTOP) or the step-down
request is sent, to the first acknowledged write (a KV v2 put) on a new active node. One prober
thread per surviving node sends writes straight to that node (no redirects followed, 1 s
timeout, 5 ms apart); a standby forwards them to the active node, so the first 2xx from any
of them is the first write a new active acknowledged.

Between runs: a SIGKILLed node is restarted, a SIGSTOPped one resumed (SIGCONT) and waited for
until it reports standby; a step-down is only sent when another node is past its 10 s
cooldown. `forwarding` runs wrk (bench/encrypt.lua, 2 threads, 32 connections) directly
against the active node and then against a standby. Prints Markdown.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transit.dev.localcluster import LocalCluster  # noqa: E402
from transit.dev.processes import port_free  # noqa: E402

COOLDOWN = 10.0


def free_layout(nodes: int, replicas: int) -> tuple[int, int]:
    for base in range(24000, 30000, 100):
        redis_port = base + 90
        ports = [redis_port + j for j in range(replicas + 1)]
        ports += [base + 10 * i + d for i in range(nodes) for d in (0, 1)]
        if all(port_free(p) for p in ports):
            return base, redis_port
    raise SystemExit("no free ports")


class Bench:
    def __init__(self, cluster: LocalCluster) -> None:
        self.c = cluster
        self.http = httpx.Client(timeout=10)
        self.seq = 0

    def headers(self) -> dict[str, str]:
        return {"X-Vault-Token": self.c.root_token}

    def setup(self) -> None:
        a = self.c.active_index()
        assert a is not None
        base = self.c.nodes[a].addr
        for body in ({"type": "kv", "options": {"version": "2"}}, {"type": "transit"}):
            path = "secret" if body["type"] == "kv" else "transit"
            r = self.http.post(f"{base}/v1/sys/mounts/{path}", json=body,
                               headers=self.headers())
            assert r.status_code == 204, r.text
        r = self.http.post(f"{base}/v1/transit/keys/bench", headers=self.headers())
        assert r.status_code in (200, 204), r.text

    def first_write(self, candidates: list[int], t0: float, limit: float = 60.0) -> float:
        """Seconds from t0 to the first 2xx write through any candidate node."""
        done = threading.Event()
        result: list[float] = []
        lock = threading.Lock()

        def probe(i: int) -> None:
            client = httpx.Client(timeout=1.0)
            url = f"{self.c.nodes[i].addr}/v1/secret/data/probe-{i}"
            n = 0
            while not done.is_set() and time.monotonic() - t0 < limit:
                n += 1
                try:
                    r = client.post(url, json={"data": {"n": n}}, headers=self.headers())
                    if r.status_code in (200, 204):
                        with lock:
                            if not done.is_set():
                                result.append(time.monotonic() - t0)
                                done.set()
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.005)
            client.close()

        threads = [threading.Thread(target=probe, args=(i,), daemon=True) for i in candidates]
        for t in threads:
            t.start()
        for t in threads:
            t.join(limit + 5)
        if not result:
            raise RuntimeError("no write succeeded")
        return result[0]

    def wait_health(self, i: int, code: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.c.health(i, timeout=0.5)
            if h is not None and h[0] == code:
                return
            time.sleep(0.05)
        raise RuntimeError(f"node {i} did not report {code}")

    def kill9(self) -> float:
        old = self.c.active_index()
        assert old is not None
        others = [n.index for n in self.c.nodes if n.index != old]
        t0 = time.monotonic()
        self.c.kill(old, signal.SIGKILL)
        took = self.first_write(others, t0)
        self.c.restart(old)
        return took

    def sigstop(self) -> float:
        old = self.c.active_index()
        assert old is not None
        others = [n.index for n in self.c.nodes if n.index != old]
        t0 = time.monotonic()
        self.c.kill(old, signal.SIGSTOP)
        try:
            took = self.first_write(others, t0)
        finally:
            self.c.kill(old, signal.SIGCONT)
        self.wait_health(old, 429)
        return took

    def stepdown(self, stepped_at: dict[int, float]) -> float:
        old = self.c.active_index()
        assert old is not None
        others = [n.index for n in self.c.nodes if n.index != old]
        ready = min(stepped_at.get(i, float("-inf")) + COOLDOWN + 0.3 for i in others)
        if ready > time.monotonic():
            time.sleep(ready - time.monotonic())
        # Steady state: the standbys' echoes (every 5 s) are flowing, as in production.
        t0 = time.monotonic()
        r = self.http.put(f"{self.c.nodes[old].addr}/v1/sys/step-down", headers=self.headers())
        assert r.status_code == 204, r.text
        stepped_at[old] = t0
        return self.first_write(others, t0)

    def wrk(self, i: int, duration: str) -> tuple[str, str, str]:
        url = self.c.nodes[i].addr
        lua = str(ROOT / "bench" / "encrypt.lua")
        subprocess.run(["wrk", "-t2", "-c32", "-d5s", "-s", lua, url, "--",
                        self.c.root_token, "bench"], check=True, capture_output=True)
        out = subprocess.run(["wrk", "-t2", "-c32", f"-d{duration}", "--latency", "-s", lua,
                              url, "--", self.c.root_token, "bench"], check=True,
                             capture_output=True, text=True).stdout
        rps = p50 = p99 = "?"
        non2xx = "0"
        for line in out.splitlines():
            parts = line.split()
            if line.startswith("Requests/sec"):
                rps = parts[1]
            elif parts[:1] == ["50%"]:
                p50 = parts[1]
            elif parts[:1] == ["99%"]:
                p99 = parts[1]
            elif "Non-2xx" in line:
                non2xx = parts[-1]
        if non2xx != "0":
            raise RuntimeError(f"wrk saw {non2xx} non-2xx answers:\n{out}")
        return rps, p50, p99


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--lock-ttl", default="10s")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--scenarios", default="kill9,sigstop,stepdown,forwarding")
    ap.add_argument("--duration", default="10s", help="wrk duration per target")
    ap.add_argument("--dir", default="/tmp/transit-ha-bench")
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    base, redis_port = free_layout(args.nodes, 1)
    cluster = LocalCluster(args.dir, nodes=args.nodes, replicas=1, base_port=base,
                           redis_port=redis_port, lock_ttl=args.lock_ttl)
    cluster.up()
    try:
        b = Bench(cluster)
        b.setup()
        time.sleep(6)  # let the standbys' first echoes reach the active node
        print(f"lock_ttl {cluster.lock_ttl:g}s, {args.nodes} nodes, 1 Redis replica\n")
        print("| scenario | runs | median s | min s | max s | all (s) |")
        print("| --- | --- | --- | --- | --- | --- |")
        stepped: dict[int, float] = {}
        for name in args.scenarios.split(","):
            if name == "forwarding":
                continue
            fn = {"kill9": b.kill9, "sigstop": b.sigstop,
                  "stepdown": lambda: b.stepdown(stepped)}[name]
            times = [fn() for _ in range(args.runs)]
            print(f"| {name} | {len(times)} | {statistics.median(times):.2f} | "
                  f"{min(times):.2f} | {max(times):.2f} | "
                  f"{', '.join(f'{t:.2f}' for t in times)} |", flush=True)
        if "forwarding" in args.scenarios.split(","):
            a = cluster.wait_ready()
            s = next(n.index for n in cluster.nodes if n.index != a)
            print("\n| target | encrypt req/s | p50 | p99 |")
            print("| --- | --- | --- | --- |")
            rps, p50, p99 = b.wrk(a, args.duration)
            print(f"| active node directly | {rps} | {p50} | {p99} |", flush=True)
            rps, p50, p99 = b.wrk(s, args.duration)
            print(f"| standby (forwarded over mTLS) | {rps} | {p50} | {p99} |", flush=True)
    finally:
        cluster.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
