"""Server CPU per single-encrypt request, for two or more source trees of transit, alternating.

Requests per second move with everything else on a shared 2-core machine; the CPU time the
server process spends per request moves much less, so this is the figure to compare two
commits with while other work runs. Each round starts `transit server -dev` from each tree in
turn (`PYTHONPATH=<tree>`, the same virtualenv), warms it up with wrk, then drives it for
`--seconds` with wrk (`-t1 -c32`, 30-byte plaintext, bench/encrypt.lua) and reads the
server's user+system CPU from /proc before and after.

    .venv/bin/python bench/encrypt_cpu.py /tmp/oldc /work/main --rounds 3
    .venv/bin/python bench/encrypt_cpu.py . --py-spy out/   # + a py-spy flame graph per tree

Prints one Markdown row per run: tree, req/s, server CPU µs per request (and its user and
system parts: the system part is mostly the socket calls, and on a VM it grows when the load
generator sleeps between answers and each answer has to wake it), the server's CPU use in
cores, wrk's p99.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS  # utime, stime


def _post(url: str, body: bytes = b"{}") -> None:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"X-Vault-Token": "root"})
    urllib.request.urlopen(req, timeout=10).read()


def _wrk(port: int, seconds: float) -> tuple[float, str]:
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{int(seconds)}s", "--latency", "-s", str(HERE / "encrypt.lua"),
         f"http://127.0.0.1:{port}", "--", "root", "bench"],
        capture_output=True, text=True, check=True).stdout
    requests = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    return requests, p99


def run_one(tree: Path, seconds: float, py_spy: Path | None, tag: str) -> str:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    server = subprocess.Popen(
        [sys.executable, "-m", "transit", "server", "-dev", "-dev-root-token-id=root",
         f"-dev-listen-address=127.0.0.1:{port}"],
        # `python -m` puts the working directory first on sys.path, before PYTHONPATH: run
        # in the tree, or every tree would run the code of the directory this was started in
        cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/sys/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        _post(f"{base}/transit/keys/bench")
        _wrk(port, 3)  # warm-up
        spy = None
        if py_spy is not None:
            py_spy.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                 str(server.pid), "--duration", str(int(seconds)), "--rate", "250",
                 "--format", "speedscope", "-o", str(py_spy / f"{tag}.speedscope.json")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = _cpu_seconds(server.pid)
        requests, p99 = _wrk(port, seconds)
        after = _cpu_seconds(server.pid)
        user, system = after[0] - before[0], after[1] - before[1]
        cpu = user + system
        if spy is not None:
            spy.wait(timeout=60)
        return (f"| {tree} | {requests / seconds:,.0f} | {cpu / requests * 1e6:.1f} "
                f"| {user / requests * 1e6:.1f} | {system / requests * 1e6:.1f} "
                f"| {cpu / seconds:.2f} | {p99} |")
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--py-spy", type=Path, metavar="DIR")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("| tree | req/s | server CPU µs/request | of which user | of which system "
          "| server cores busy | p99 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in range(args.rounds):
        trees = args.trees if r % 2 == 0 else list(reversed(args.trees))
        for i, tree in enumerate(trees):
            tag = f"{tree.resolve().name}-r{r}-{i}"
            print(run_one(tree.resolve(), args.seconds, args.py_spy, tag), flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
