"""AppRole logins per second on one dev node (and, with --bao, on OpenBao for reference).

    .venv/bin/python bench/approle_login.py [--duration 10] [--warmup 3] [--connections 16]
                                            [--threads 2] [--bao /tmp/baovenv/bin/bao]

Starts `transit server -dev` (in-memory storage, one process) on a free loopback port,
enables approle, creates a role (`token_ttl=10m`, one policy) and one unlimited secret ID,
then drives `POST /v1/auth/approle/login {"role_id","secret_id"}` in a closed loop with wrk
(`--threads` threads, `--connections` keep-alive connections; a Python thread pool when wrk
is missing). A `--warmup` run is not measured; then `--duration` seconds are. Every login
does the whole path: role_id index and role read, secret-ID HMAC and entry read, identity
entity reuse (alias metadata unchanged after the first), a new service token with its lease.
Prints one Markdown table row per server: logins/s, p50, p99, non-2xx answers.

Load generator and server share the machine: read the figures as a comparison on the same
machine, not as a capacity.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]

LUA = """
local body
function init(args)
  body = '{"role_id":"' .. args[1] .. '","secret_id":"' .. args[2] .. '"}'
end
function request()
  return wrk.format("POST", "/v1/auth/approle/login",
    {["Content-Type"] = "application/json"}, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(cmd: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/v1/sys/health", timeout=0.5)
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server on {port} did not start: {log.read_text()[-2000:]}")


def setup(addr: str) -> tuple[str, str]:
    h = {"X-Vault-Token": "root"}
    s = requests.Session()
    s.post(f"{addr}/v1/sys/auth/approle", json={"type": "approle"}, headers=h
           ).raise_for_status()
    s.put(f"{addr}/v1/sys/policies/acl/app", headers=h, json={
        "policy": 'path "transit/encrypt/app" { capabilities = ["update"] }'}).raise_for_status()
    s.post(f"{addr}/v1/auth/approle/role/bench", headers=h,
           json={"token_policies": "app", "token_ttl": "10m"}).raise_for_status()
    role_id = s.get(f"{addr}/v1/auth/approle/role/bench/role-id", headers=h
                    ).json()["data"]["role_id"]
    secret_id = s.post(f"{addr}/v1/auth/approle/role/bench/secret-id", headers=h, json={}
                       ).json()["data"]["secret_id"]
    r = s.post(f"{addr}/v1/auth/approle/login",
               json={"role_id": role_id, "secret_id": secret_id})
    r.raise_for_status()
    return role_id, secret_id


def wrk(addr: str, creds: tuple[str, str], args: argparse.Namespace, seconds: float
        ) -> dict[str, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA)
    out = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{int(seconds)}s", "--latency",
         "-s", f.name, addr, "--", *creds],
        capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    Path(f.name).unlink()
    row = {"rps": "", "p50": "", "p99": "", "non2xx": "0"}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            row["rps"] = parts[1]
        elif parts[:1] == ["50%"]:
            row["p50"] = parts[1]
        elif parts[:1] == ["99%"]:
            row["p99"] = parts[1]
        elif "Non-2xx" in line:
            row["non2xx"] = parts[-1]
    return row


def python_loop(addr: str, creds: tuple[str, str], args: argparse.Namespace, seconds: float
                ) -> dict[str, str]:
    body = json.dumps({"role_id": creds[0], "secret_id": creds[1]})
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    bad = [0]
    lock = threading.Lock()

    def loop() -> None:
        s = requests.Session()
        mine: list[float] = []
        errors = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            r = s.post(f"{addr}/v1/auth/approle/login", data=body,
                       headers={"Content-Type": "application/json"})
            mine.append(time.perf_counter() - t0)
            errors += r.status_code != 200
        with lock:
            latencies.extend(mine)
            bad[0] += errors

    threads = [threading.Thread(target=loop) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(latencies)
    return {"rps": f"{len(latencies) / seconds:.1f}",
            "p50": f"{statistics.median(ordered) * 1000:.2f}ms",
            "p99": f"{ordered[int(0.99 * (len(ordered) - 1))] * 1000:.2f}ms",
            "non2xx": str(bad[0])}


def measure(name: str, cmd: list[str], port: int, args: argparse.Namespace, tmp: Path) -> str:
    proc = start(cmd, port, tmp / f"{name.split()[0]}.log")
    try:
        addr = f"http://127.0.0.1:{port}"
        creds = setup(addr)
        drive = wrk if shutil.which("wrk") else python_loop
        drive(addr, creds, args, args.warmup)
        row = drive(addr, creds, args, args.duration)
        return f"| {name} | {row['rps']} | {row['p50']} | {row['p99']} | {row['non2xx']} |"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bao", default="", help="an OpenBao binary to measure the same way")
    args = p.parse_args()
    print(f"driver: {'wrk' if shutil.which('wrk') else 'python threads'}, "
          f"{args.threads} threads, {args.connections} connections, {args.duration:g} s")
    print("| server | logins/s | p50 | p99 | non-2xx |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="approle-bench-") as tmp:
        port = free_port()
        print(measure("transit (dev, 1 process)",
                      [sys.executable, "-m", "transit", "server", "-dev",
                       "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}"],
                      port, args, Path(tmp)), flush=True)
        if args.bao:
            port = free_port()
            print(measure("OpenBao (dev)",
                          [args.bao, "server", "-dev", "-dev-root-token-id=root",
                           f"-dev-listen-address=127.0.0.1:{port}"], port, args, Path(tmp)),
                  flush=True)


if __name__ == "__main__":
    main()
