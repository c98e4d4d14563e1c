"""A TCP fault proxy for the fault tests: sits between a transit node and Redis (or in front of
a node's cluster port) and, on command, delays replies, drops traffic or resets connections.

    proxy = FaultProxy(("127.0.0.1", 6379)).start()     # listens on proxy.port
    proxy.delay_replies(1.5, match=b"/policy/k", probability=0.3)
    proxy.reset_after_request(1)      # the next request's answer is lost, the connection reset
    proxy.drop()                      # blackhole: bytes are read and thrown away, both ways
    proxy.set_upstream(("127.0.0.1", 6380))   # a "virtual IP" moved after a failover
    proxy.heal(); proxy.stop()

One accept thread and two pump threads per connection (client→upstream "request" direction,
upstream→client "reply" direction); the fault state is read on every chunk, so a fault
switched on applies to connections that are already open. Only 127.0.0.1.

Faults:
- `delay_replies(seconds, match, probability)`: a connection whose request bytes contain
  `match` (any request when None), with that probability per matching chunk, is *poisoned*:
  every later reply chunk on it is held until `seconds` after it arrived (order is kept).
  The request itself is forwarded at once, so the server applies it; only the answer is late,
  which is what a client-side timeout needs to see.
- `reset_after_request(count)`: the next `count` requests that arrive on an idle, already used
  connection (idle ≥ `idle` seconds, at least one reply seen: a pooled keep-alive connection,
  not a TLS handshake in progress) are forwarded; the first reply chunk after each is thrown
  away and both sides are reset (RST). The server ran the request; the client lost its answer.
- `drop()`: every chunk in both directions is read and discarded.
- `reset_all()`: RST every open connection now.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass
class ProxyStats:
    """What the proxy did (monotonic counters)."""

    connections: int = 0
    delayed_connections: int = 0
    delayed_chunks: int = 0
    resets_after_request: int = 0
    dropped_chunks: int = 0


@dataclass
class _Conn:
    client: socket.socket
    upstream: socket.socket
    opened: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    replies_seen: int = 0
    poisoned_delay: float = 0.0
    doomed: bool = False
    closed: bool = False


def _rst(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), not a FIN. shutdown(SHUT_RD) first wakes a pump
    thread blocked in recv() on it (a plain close() would not, and the socket, still in use,
    would send nothing until then)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """A threaded TCP proxy with switchable faults (see the module docstring)."""

    def __init__(self, upstream: tuple[str, int], port: int = 0, *, seed: int | None = None,
                 idle: float = 0.05) -> None:
        self.upstream = upstream
        self.idle = idle
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._conns: list[_Conn] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, port))
        self._listener.listen(256)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = False
        self._thread: threading.Thread | None = None
        # fault state
        self._delay = 0.0
        self._match: bytes | None = None
        self._probability = 1.0
        self._reset_armed = 0
        self._drop = False

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    # -- control ---------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def set_upstream(self, upstream: tuple[str, int]) -> None:
        """New connections go to `upstream`; open ones are reset (a moved virtual IP)."""
        with self._lock:
            self.upstream = upstream
        self.reset_all()

    def delay_replies(self, seconds: float, match: bytes | None = None,
                      probability: float = 1.0) -> None:
        with self._lock:
            self._delay, self._match, self._probability = seconds, match, probability

    def reset_after_request(self, count: int = 1) -> None:
        with self._lock:
            self._reset_armed = count

    def drop(self) -> None:
        with self._lock:
            self._drop = True

    def heal(self) -> None:
        """Clear every fault (poisoned connections keep their delay until they close)."""
        with self._lock:
            self._delay, self._match, self._probability = 0.0, None, 1.0
            self._reset_armed = 0
            self._drop = False

    @property
    def armed_resets(self) -> int:
        with self._lock:
            return self._reset_armed

    def reset_all(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            self._close(c, rst=True)

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.reset_all()
        if self._thread is not None:
            self._thread.join(2)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing --------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                upstream = self.upstream
            try:
                up = socket.create_connection(upstream, timeout=5)
            except OSError:
                _rst(client)
                continue
            up.settimeout(None)
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(client, up)
            with self._lock:
                self._conns.append(conn)
                self.stats.connections += 1
            threading.Thread(target=self._pump, args=(conn, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(conn, False), daemon=True).start()

    def _close(self, conn: _Conn, *, rst: bool) -> None:
        with self._lock:
            if conn.closed:
                return
            conn.closed = True
            with contextlib.suppress(ValueError):
                self._conns.remove(conn)
        for s in (conn.client, conn.upstream):
            if rst:
                _rst(s)
            else:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def _on_request(self, conn: _Conn, chunk: bytes, now: float) -> bool:
        """Fault decisions for a client→upstream chunk; False = drop it."""
        with self._lock:
            if self._drop:
                self.stats.dropped_chunks += 1
                return False
            if (self._delay > 0 and not conn.poisoned_delay
                    and (self._match is None or self._match in chunk)
                    and self._rng.random() < self._probability):
                conn.poisoned_delay = self._delay
                self.stats.delayed_connections += 1
            if (self._reset_armed > 0 and not conn.doomed and conn.replies_seen > 0
                    and now - conn.last_activity >= self.idle):
                self._reset_armed -= 1
                conn.doomed = True
        return True

    def _pump(self, conn: _Conn, request_direction: bool) -> None:
        src, dst = (conn.client, conn.upstream) if request_direction else (conn.upstream,
                                                                            conn.client)
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                now = time.monotonic()
                if request_direction:
                    forward = self._on_request(conn, chunk, now)
                    conn.last_activity = now
                    if forward:
                        dst.sendall(chunk)
                    continue
                with self._lock:
                    drop, doomed, delay = self._drop, conn.doomed, conn.poisoned_delay
                    if drop:
                        self.stats.dropped_chunks += 1
                    elif doomed:
                        self.stats.resets_after_request += 1
                    elif delay:
                        self.stats.delayed_chunks += 1
                if drop:
                    continue
                if doomed:  # the server answered; the client never gets it
                    self._close(conn, rst=True)
                    return
                if delay:
                    time.sleep(max(0.0, now + delay - time.monotonic()))
                conn.replies_seen += 1
                conn.last_activity = time.monotonic()
                dst.sendall(chunk)
        except OSError:
            pass
        self._close(conn, rst=False)
