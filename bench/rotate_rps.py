"""Rotate requests per second on one node: the cost of the key-material write path.

    .venv/bin/python bench/rotate_rps.py [--clients 8] [--keys 8] [--duration 10]
                                         [--warmup 2] [--workers 2] [--replicas 0]
                                         [--min-replica-acks 0]

Starts one `transit server` node with `--workers` worker processes on a local Redis (AOF on,
`appendfsync everysec`, as tests/fault/harness.FaultCluster runs it; `--replicas` replicas,
and the storage option `min_replica_acks` when set), creates `--keys` aes256-gcm96 keys, then
`--clients` threads, each with its own requests.Session (its own keep-alive connection, so the
kernel spreads them over the workers), POST `transit/keys/<key>/rotate` in a closed loop,
client i starting at key i and moving to the next key after every request. A `--warmup`
period is not measured; then `--duration` seconds are. Prints one Markdown table row: req/s
(acknowledged rotations per second), p50 and p99 latency, non-2xx answers, the highest key
version reached (policies grow with every version, so runs are comparable only with the
same parameters), and how many acknowledged rotations (warm-up included) left no version
behind: acknowledged minus versions created, 0 when every rotation got its own version.

Load generator and server share the machine: on 2 cores the Python client threads take a
good part of one core, so read the figure as a before/after comparison on the same machine,
not as a capacity.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fault.harness import FaultCluster  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run(args: argparse.Namespace) -> dict[str, object]:
    opts = {"min_replica_acks": str(args.min_replica_acks)} if args.min_replica_acks else {}
    with tempfile.TemporaryDirectory(prefix="rotate-rps-") as tmp:
        cluster = FaultCluster(Path(tmp) / "cluster", nodes=1, replicas=args.replicas,
                               workers=args.workers, storage_options=opts)
        cluster.up()
        try:
            cluster.setup()
            keys = [f"bench-{k}" for k in range(args.keys)]
            for key in keys:
                r = cluster.request(0, "POST", f"transit/keys/{key}")
                r.raise_for_status()
            url = f"{cluster.nodes[0].addr}/v1/transit/keys/"
            headers = {"X-Vault-Token": cluster.root_token}
            start = time.monotonic()
            measure_from = start + args.warmup
            stop_at = measure_from + args.duration
            latencies: list[float] = []
            statuses: Counter[int] = Counter()
            total = [0]  # acknowledged rotations, warm-up included
            lock = threading.Lock()

            def client(i: int) -> None:
                session = requests.Session()
                n = i
                mine: list[float] = []
                codes: Counter[int] = Counter()
                acked = 0
                while True:
                    t0 = time.monotonic()
                    if t0 >= stop_at:
                        break
                    try:
                        status = session.post(url + keys[n % len(keys)] + "/rotate",
                                              headers=headers, timeout=30).status_code
                    except requests.RequestException:
                        status = 0
                    t1 = time.monotonic()
                    n += 1
                    acked += 200 <= status < 300
                    if t0 >= measure_from and t1 <= stop_at:
                        codes[status] += 1
                        if 200 <= status < 300:
                            mine.append(t1 - t0)
                session.close()
                with lock:
                    latencies.extend(mine)
                    statuses.update(codes)
                    total[0] += acked

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(args.warmup + args.duration + 60)
            latest = [cluster.request(0, "GET", f"transit/keys/{k}").json()["data"]
                      ["latest_version"] for k in keys]
        finally:
            cluster.down(timeout=10)
    ok = len(latencies)
    return {
        "rps": ok / args.duration,
        "p50_ms": pct(latencies, 0.50) * 1000 if latencies else float("nan"),
        "p99_ms": pct(latencies, 0.99) * 1000 if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "non_2xx": sum(v for k, v in statuses.items() if not 200 <= k < 300),
        "statuses": dict(statuses),
        "max_version": max(latest),
        # acknowledged rotations that left no version behind (two answered with one number)
        "lost": total[0] - sum(v - 1 for v in latest),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--keys", type=int, default=8)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--replicas", type=int, default=0)
    p.add_argument("--min-replica-acks", type=int, default=0)
    args = p.parse_args()
    res = run(args)
    print("| clients | keys | workers | replicas | min_replica_acks | rotate req/s | p50 | p99 "
          "| non-2xx | max version | acked, no version left |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {args.clients} | {args.keys} | {args.workers} | {args.replicas} "
          f"| {args.min_replica_acks} | {res['rps']:.0f} | {res['p50_ms']:.1f} ms "
          f"| {res['p99_ms']:.1f} ms | {res['non_2xx']} | {res['max_version']} "
          f"| {res['lost']} |")
    print(f"statuses: {res['statuses']}", file=sys.stderr)


if __name__ == "__main__":
    main()
