"""The floor: the cheapest HTTP server this stack allows (uvloop + httptools, one fixed JSON
answer per request, the body parsed with orjson), driven exactly as bench/encrypt_cpu.py
drives a dev node (wrk -t1 -c32, bench/encrypt.lua). What a request costs there is what no
application code can remove: epoll, recv(2), send(2) and the parser.

    .venv/bin/python bench/floor_server.py [--seconds 8]

Prints req/s and the server's user and system CPU µs per request. On 2026-12-08 (2-vCPU VM):
about 200,000 req/s at 1.3-1.6 µs user + 3.3-3.4 µs system, against a dev node's
13,000-13,500 req/s at about 60 + 15 before d5cbb86 and 16,600-17,300 at 52-54 + 4-6 after
it (results/2026-12-08-encrypt-cost.md): here wrk is the bottleneck, so it is always awake
and the server's send(2) rarely has to wake it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def serve(port: int) -> None:
    import httptools
    import orjson
    import uvloop

    body = orjson.dumps({"request_id": "00000000-0000-4000-8000-000000000000", "lease_id": "",
                         "renewable": False, "lease_duration": 0,
                         "data": {"ciphertext": "vault:v1:" + "A" * 60, "key_version": 1},
                         "wrap_info": None, "warnings": None, "auth": None,
                         "mount_type": "transit"})
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
              b"content-length: %d\r\n\r\n" % len(body)) + body

    class Floor(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.body: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_body(self, chunk: bytes) -> None:
            self.body.append(chunk)

        def on_message_complete(self) -> None:
            orjson.loads(b"".join(self.body))
            self.body = []
            self.transport.write(answer)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Floor, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


def _cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def _wrk(port: int, seconds: int) -> int:
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(HERE / "encrypt.lua"),
         f"http://127.0.0.1:{port}", "--", "root", "bench"],
        capture_output=True, text=True, check=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        _wrk(port, 3)  # warm-up
        before = _cpu(server.pid)
        n = _wrk(port, args.seconds)
        after = _cpu(server.pid)
        print(f"{n / args.seconds:,.0f} req/s; server CPU per request: "
              f"user {(after[0] - before[0]) / n * 1e6:.1f} µs, "
              f"system {(after[1] - before[1]) / n * 1e6:.1f} µs")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
