"""Resident memory of a node holding many transit keys.

    .venv/bin/python bench/memory_keys.py --keys 10000 [--keys 100000]

Starts `transit server -dev` (one process: in-memory storage, so the stored keys count too),
creates N aes256-gcm96 keys over HTTP (16 connections), encrypts once with every key (so each
is loaded and cached as far as the caches allow), and prints the server's VmRSS and VmHWM
(from /proc) before, after the creates, and after the encrypts. A worker of a Redis-backed
node holds only the caches, so this is an upper bound for one worker.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=10_000)
    args = ap.parse_args()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "transit", "server", "-dev", "-dev-root-token-id=root",
         f"-dev-listen-address=127.0.0.1:{port}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1/"
    try:
        for _ in range(100):
            try:
                httpx.get(base + "sys/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        print(f"started: RSS {_rss(proc.pid)[0]} MiB")
        clients = [httpx.Client(base_url=base, headers={"X-Vault-Token": "root"}, timeout=30)
                   for _ in range(16)]

        def each(fn: str) -> None:
            def one(i: int) -> None:
                c = clients[i % len(clients)]
                if fn == "create":
                    r = c.post(f"transit/keys/k{i}")
                else:
                    r = c.post(f"transit/encrypt/k{i}", json={"plaintext": "aGk="})
                assert r.status_code in (200, 204), r.text
            started = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one, range(args.keys)))
            rss, hwm = _rss(proc.pid)
            print(f"{args.keys} keys, after {fn}s ({time.monotonic() - started:.0f} s): "
                  f"RSS {rss} MiB, peak {hwm} MiB")
        each("create")
        each("encrypt")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
