"""Our plain standby (every request forwarded) against OpenBao's standby, alternating:
`bench/forward_rps.py` for transit, then for OpenBao, `--pairs` times, each a fresh 3-node
cluster and one round (active, then standby). Prints every run and, per pair, our standby's
req/s over OpenBao's standby's.

    .venv/bin/python bench/forward_compare.py [--pairs 2] [--duration 10]
        [--bao .venv/openbao/bin/bao] [--bao-forward]

OpenBao's standbys serve encrypt themselves by default (its "standby reads"), so the default
comparison is our forwarding standby against a standby that forwards nothing; `--bao-forward`
makes OpenBao's standbys forward too (`disable_standby_reads = true`). The machine's speed
drifts by tens of percent within an hour here: only the ratios of one pair compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(server: str, args: argparse.Namespace, out: Path) -> dict[str, dict[str, float]]:
    cmd = [sys.executable, str(ROOT / "bench" / "forward_rps.py"), "--nodes", "3",
           "--repeat", "1", "--duration", str(args.duration), "--json", str(out)]
    if server == "openbao":
        cmd += ["--server", "openbao", "--bao", args.bao]
        if args.bao_forward:
            cmd.append("--bao-forward")
    else:
        cmd += ["--replicas", "2"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=900)
    runs = json.loads(out.read_text())["runs"]
    return {r["node"]: r for r in runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--bao", default=str(ROOT / ".venv" / "openbao" / "bin" / "bao"))
    ap.add_argument("--bao-forward", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="forward-compare-"))
    print("| pair | server | active req/s | standby req/s | standby/active "
          "| standby CPU ms/req | active CPU ms/req (standby run) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ours_vs_bao: list[float] = []
    for pair in range(1, args.pairs + 1):
        got = {}
        for server in ("transit", "openbao"):
            res = run(server, args, work / f"{server}-{pair}.json")
            got[server] = res
            a, s = res["active"], res["standby"]
            print(f"| {pair} | {server} | {a['rps']:,.0f} | {s['rps']:,.0f} | "
                  f"{s['rps'] / a['rps']:.3f} | {s['cpu_ms_target']:.3f} | "
                  f"{s['cpu_ms_other']:.3f} |")
            sys.stdout.flush()
        ours_vs_bao.append(got["transit"]["standby"]["rps"] / got["openbao"]["standby"]["rps"])
    print(f"\nour standby / OpenBao's standby, per pair: "
          f"{', '.join(f'{x:.3f}' for x in ours_vs_bao)}; "
          f"median {statistics.median(ours_vs_bao):.3f}")


if __name__ == "__main__":
    main()
