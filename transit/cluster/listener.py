"""The cluster listener: the active node's mTLS port that standbys forward requests to.

It serves the same ASGI app as the API listener, marking every request with
`scope[FORWARDED_SCOPE] = True`. TLS requires a client certificate and trusts only the
advertised cluster certificate (the one this listener also presents), whose key is loaded
from memory (`advert._load_identity`), never written to a file system. It runs as an asyncio
task inside the server's loop: no signal handlers of its own, and a bind error is raised by
`start()` instead of uvicorn's `sys.exit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import uvicorn

from transit.cluster.advert import LeaderRecord, ssl_server_context

log = logging.getLogger("transit.cluster.listener")

Scope = MutableMapping[str, Any]
# The scope key that marks a request as received on the cluster port (forwarded by a standby).
FORWARDED_SCOPE = "transit.forwarded"
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
# The HTTP protocol the listener speaks (uvicorn's `http`). The node's is the API's
# (transit/api/protocol.py: Vault's LIST verb, Go's limits), a layer above this one: the
# composition root (transit/server.py) passes it in through `HaOptions.http`.
HttpProtocol = type[asyncio.Protocol] | str


class ForwardedApp:
    """Wrap an ASGI app so that every HTTP request it sees is marked as forwarded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[FORWARDED_SCOPE] = True
        await self.app(scope, receive, send)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn ≥ 0.29
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn
        return None


def split_host_port(address: str) -> tuple[str, int]:
    """'127.0.0.1:8201' / '[::1]:8201' / ':8201' / 'https://h:8201' → (host, port)."""
    if "://" in address:
        address = address.split("://", 1)[1].split("/", 1)[0]
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"cluster address {address!r} has no port")
    return host.strip("[]") or "0.0.0.0", int(port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ClusterListener:
    def __init__(
        self, app: ASGIApp, address: str, record: LeaderRecord, *, http: HttpProtocol,
        graceful_shutdown: float = 5.0, log_level: str = "warning",
    ) -> None:
        self.app = ForwardedApp(app)
        self.http = http
        self.address = address
        self.record = record
        self.graceful_shutdown = graceful_shutdown
        self.log_level = log_level
        self.port: int | None = None  # the bound port (useful with port 0)
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Bind and start serving; returns once the listener accepts connections."""
        if self.running:
            return
        host, port = split_host_port(self.address)
        self._sock = _bind(host, port)
        self.port = self._sock.getsockname()[1]
        try:
            record = self.record
            config = uvicorn.Config(
                self.app, loop="uvloop", http=self.http, lifespan="off",
                proxy_headers=False, access_log=False, log_level=self.log_level,
                server_header=False, date_header=True, timeout_keep_alive=65,
                timeout_graceful_shutdown=max(1, int(self.graceful_shutdown)),
                # mutual TLS with the record's own certificate, key kept in memory
                ssl_context_factory=lambda _config, _default: ssl_server_context(record),
            )
            config.load()
            self._server = _EmbeddedServer(config)
            self._task = asyncio.create_task(self._serve(self._server, self._sock),
                                             name=f"cluster-listener-{self.port}")
            while not self._server.started and not self._task.done():
                await asyncio.sleep(0.01)
            if self._task.done():
                self._task.result()  # re-raise the start-up failure
                raise RuntimeError("cluster listener stopped during start-up")
        except BaseException:
            await self.stop()
            raise
        log.info("cluster listener on %s:%s", host, self.port)

    async def _serve(self, server: _EmbeddedServer, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits on start-up failures
            raise RuntimeError(f"cluster listener failed to start (exit {exc.code})") from None

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to graceful_shutdown), clean up."""
        server, task, self._server, self._task = self._server, self._task, None, None
        try:
            if server is not None:
                server.should_exit = True
            if task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(task), self.graceful_shutdown + 2)
                except TimeoutError:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                except Exception:
                    log.exception("cluster listener failed")
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
