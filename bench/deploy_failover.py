"""Failover gaps as a client of the deployment sees them, through HAProxy only
(docs/deploy.md; results in bench/results/2026-12-07-deploy-failover.md).

    .venv/bin/python bench/deploy_failover.py --runs 3

Starts the local deployment topology (`transit cluster up --sentinels 3 --haproxy`: Redis
primary + 2 replicas, 3 Sentinels, 3 nodes with performance standbys, HAProxy with the
checks of docker/: inter 1 s, fastinter/downinter 250 ms, rise 1, fall 1; Sentinel down-after
2 s; lock_ttl 10 s) on free loopback ports,
runs 3 encrypt clients on HAProxy's reads frontend and one writer (key rotations) on its
writes frontend, and per run measures, from the fault on: the longest time without an
acknowledged write (write gap) and without an acknowledged encrypt (encrypt gap), for
`kill -9` of the active node and for `kill -9` of the Redis primary (Sentinel promotes a
replica). A fresh cluster per run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.deploy.cluster import DeployCluster  # noqa: E402
from tests.deploy.scenarios import (  # noqa: E402
    Outcome,
    kill_active,
    prepare,
    redis_primary_failover,
)


def one(kind: str, workers: int, lock_ttl: float) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        c = DeployCluster(Path(tmp) / "c", workers=workers, lock_ttl=lock_ttl)
        c.up()
        try:
            prepare(c)
            return kill_active(c) if kind == "kill" else redis_primary_failover(c)
        finally:
            c.down(timeout=5.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=1, help="worker processes per node")
    p.add_argument("--lock-ttl", type=float, default=10.0,
                   help="the nodes' lock_ttl (default 10 s, as in docker/)")
    args = p.parse_args()
    rows = []
    for kind in ("kill", "redis"):
        outs = []
        for _ in range(args.runs):
            out = one(kind, args.workers, args.lock_ttl)
            print(out.summary(), flush=True)
            outs.append(out)
        rows.append((outs[0].scenario, [o.write_gap for o in outs],
                     [o.encrypt_gap for o in outs]))
    print("\n| fault | write gap (s), median [runs] | encrypt gap (s), median [runs] |")
    print("| --- | --- | --- |")
    for name, w, e in rows:
        print(f"| {name} | {statistics.median(w):.2f} [{', '.join(f'{x:.2f}' for x in w)}] | "
              f"{statistics.median(e):.2f} [{', '.join(f'{x:.2f}' for x in e)}] |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
