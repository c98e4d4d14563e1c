"""CPU per single encrypt, layer by layer, in process: no sockets, no load generator, no
sampling profiler.

Why: on this kind of machine (a VM), a sampling profiler that stops the process (py-spy's
default) lands on system calls far more often than the time spent in them: a dev node's
flame graph gave 16 % of its samples to `os.urandom(12)` (0.23 µs, measured alone) and 16 % to
the answer's send(2); taking the nonces from a pool changed nothing measured (results:
2026-12-08-encrypt-cost.md). This measures each layer by difference instead, with
`time.process_time`, in one process:

- `protocol`: our HTTP protocol (VaultHttpToolsProtocol, transit/api/protocol.py) fed one
  request at a time through a fake transport, with a trivial ASGI app;
- `uvicorn protocol`: the same with uvicorn's own HttpToolsProtocol, for comparison;
- `full stack`: the protocol with the dev node's real listener app (web UI shell, quota gate,
  VaultApp, core), as `transit server -dev` builds it;
- `front app`: that app called directly with a prepared ASGI scope;
- `VaultApp`: without the UI shell and the quota gate;
- `core.handle`: the logical request alone (token, route, ACL, engine, crypto).

    .venv/bin/python bench/inproc_layers.py [--requests 30000] [--rounds 3]

Compare trees with PYTHONPATH=<tree>. A socket adds what these leave out: epoll, recv(2),
send(2) and, on a VM, waking the load generator (bench/encrypt_cpu.py prints the user and
system CPU of a real server).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from transit.api.limits import HttpLimits, LimitedConfig
from transit.api.protocol import VaultHttpToolsProtocol
from transit.config import StorageConfig
from transit.core import Core
from transit.logical import UPDATE, Request
from transit.ratelimit import Buckets
from transit.server import _front, _uvicorn_config, configure_core, dev_config
from transit.storage.factory import create_backend
from transit.ui.shell import with_ui

PLAINTEXT = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgMTIzNA=="  # 30 bytes, as bench/encrypt.lua
BODY = b'{"plaintext":"%s"}' % PLAINTEXT.encode()
PATH = "/v1/transit/encrypt/bench"
REQUEST = (b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:8200\r\n"
           b"X-Vault-Token: root\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
ANSWER = b'{"data":{"ciphertext":"vault:v1:abc","key_version":1}}'


class FakeTransport(asyncio.Transport):
    """Collects what the protocol writes."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.out.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000),
                "sockname": ("127.0.0.1", 8200)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


async def _trivial_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(ANSWER))]})
    await send({"type": "http.response.body", "body": ANSWER})


def _protocol_driver(config: Any, cls: type) -> Callable[[int], Awaitable[None]]:
    """Feed REQUEST n times, each after the previous answer is out."""
    config.load()
    loop = asyncio.get_running_loop()
    proto = cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = FakeTransport()
    proto.connection_made(transport)

    async def run(n: int) -> None:
        for _ in range(n):
            proto.data_received(REQUEST)
            for _ in range(1000):
                if transport.out:
                    break
                await asyncio.sleep(0)
            else:
                raise SystemExit("no answer")
            await asyncio.sleep(0)  # the corked flush
            if b" 200 OK" not in transport.out[0]:
                raise SystemExit(f"unexpected answer: {transport.out[0][:200]!r}")
            transport.out.clear()
    return run


async def _dev_front() -> tuple[Any, Any, Core]:
    config = dev_config("127.0.0.1:8200")
    core = Core(create_backend(StorageConfig(type="inmem")), storage_type="inmem")
    configure_core(core, config)
    front = _front(core, config.listeners[0], False, Buckets.create())
    await core.setup_dev("root")
    await core.handle(Request(UPDATE, "transit/keys/bench", {}, None, client_token="root"),
                      "transit/keys/bench")
    listener_app = with_ui(front, config.ui)
    return _uvicorn_config(listener_app, config.listeners[0], config, {}), listener_app, core


def _asgi_driver(app: Any) -> Callable[[int], Awaitable[None]]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    async def run(n: int) -> None:
        for _ in range(n):
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "server": ("127.0.0.1", 8200), "client": ("127.0.0.1", 50000),
                "scheme": "http", "method": "POST", "root_path": "", "path": PATH,
                "raw_path": PATH.encode(), "query_string": b"",
                "headers": [(b"host", b"127.0.0.1:8200"), (b"x-vault-token", b"root"),
                            (b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(BODY))]}
            await app(scope, receive, send)
            if status.pop() != 200:
                raise SystemExit("unexpected status")
    return run


def _core_driver(core: Core) -> Callable[[int], Awaitable[None]]:
    async def run(n: int) -> None:
        for _ in range(n):
            req = Request(UPDATE, "transit/encrypt/bench", {"plaintext": PLAINTEXT}, None,
                          client_token="root", headers={})
            await core.handle(req, "transit/encrypt/bench")
    return run


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=30000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    dev_uvicorn_config, listener_app, core = await _dev_front()
    api = getattr(listener_app, "api", listener_app)  # the web UI shell's inner app
    vault_app = getattr(api, "app", api)  # the quota gate's inner app
    drivers = {
        "protocol (trivial app)": _protocol_driver(
            LimitedConfig(_trivial_app, http_limits=HttpLimits(), loop="uvloop",
                          http=VaultHttpToolsProtocol, lifespan="off", access_log=False,
                          proxy_headers=False, server_header=False, date_header=True),
            VaultHttpToolsProtocol),
        "uvicorn protocol (trivial app)": _protocol_driver(
            LimitedConfig(_trivial_app, http_limits=HttpLimits(), loop="uvloop",
                          http=HttpToolsProtocol, lifespan="off", access_log=False,
                          proxy_headers=False, server_header=False, date_header=True),
            HttpToolsProtocol),
        "full stack (protocol + dev listener app)": _protocol_driver(
            dev_uvicorn_config, VaultHttpToolsProtocol),
        "front app (UI shell, quota gate, VaultApp)": _asgi_driver(listener_app),
        "VaultApp": _asgi_driver(vault_app),
        "core.handle": _core_driver(core),
    }
    results: dict[str, list[float]] = {name: [] for name in drivers}
    for _ in range(args.rounds):
        for name, run in drivers.items():
            await run(max(200, args.requests // 10))  # warm-up
            started = time.process_time()
            await run(args.requests)
            results[name].append((time.process_time() - started) / args.requests * 1e6)
    print("| layer | CPU µs per request (each round) |")
    print("| --- | --- |")
    for name, values in results.items():
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} |")


if __name__ == "__main__":
    uvloop.run(main())
