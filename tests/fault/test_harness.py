"""The harness itself, without servers: the proxy's faults against a local echo server, and
each checker against small made-up histories (a checker that cannot fail proves nothing)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fault.harness import (
    DecryptOutcome,
    History,
    Op,
    check_decrypt,
    check_fingerprints,
    check_latest,
    check_monotonic_versions,
    check_unique_rotations,
)
from tests.fault.proxy import FaultProxy


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """A TCP echo server on a free loopback port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def handle(c: socket.socket) -> None:
        with c, contextlib.suppress(OSError):  # the proxy resets some connections
            while data := c.recv(1024):
                c.sendall(data)

    def accept() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()
    srv.close()


def connect(proxy: FaultProxy) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    s.sendall(b"hello")
    assert s.recv(16) == b"hello"
    return s


def test_proxy_reset_after_request(echo: tuple[str, int]) -> None:
    with FaultProxy(echo, idle=0.02) as proxy:
        s = connect(proxy)
        time.sleep(0.05)  # idle: the connection is a pooled one now
        proxy.reset_after_request(1)
        s.sendall(b"write")
        with pytest.raises(ConnectionResetError):
            s.recv(16)
        assert proxy.stats.resets_after_request == 1
        assert connect(proxy).recv(0) == b""  # a new connection works


def test_proxy_delays_matching_replies_only(echo: tuple[str, int]) -> None:
    with FaultProxy(echo) as proxy:
        proxy.delay_replies(1.0, match=b"slow")
        slow = connect(proxy)
        t = time.monotonic()
        slow.sendall(b"slow")
        other = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        other.sendall(b"quick")
        # Ordering, not a stopwatch: the quick reply, sent after the slow one, overtakes it.
        assert other.recv(16) == b"quick"
        assert select.select([slow], [], [], 0)[0] == [], "the slow reply was not held back"
        assert slow.recv(16) == b"slow"
        # causal lower bound (cannot fail on a slow machine): the delay was applied
        assert time.monotonic() - t >= 1.0


def test_proxy_drop_and_move(echo: tuple[str, int]) -> None:
    with FaultProxy(echo) as proxy:
        s = connect(proxy)
        proxy.drop()
        s.sendall(b"lost")
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(16)
        proxy.heal()
        proxy.set_upstream(echo)  # resets open connections, new ones go to the target
        connect(proxy)


def _op(history: History, kind: str, key: str, status: int, t0: float, t1: float,
        **result: object) -> Op:
    op = history.begin(0, 0, kind, key, {})
    op.invoke, op.complete, op.status, op.result = t0, t1, status, dict(result)
    return op


def test_checkers_find_violations() -> None:
    h = History()
    _op(h, "rotate", "k", 200, 0, 1, latest_version=2)
    _op(h, "rotate", "k", 200, 0, 1, latest_version=2)  # the same version twice
    _op(h, "rotate", "k", 503, 0, 1)
    _op(h, "read", "k", 200, 2, 3, latest_version=1)  # went back after v2 was acknowledged
    assert len(check_unique_rotations(h)) == 1
    assert len(check_monotonic_versions(h)) == 1
    assert check_latest(h, {"k": {0: 2, 1: 2}}) == []
    assert len(check_latest(h, {"k": {0: 1}})) == 1
    assert len(check_latest(h, {"k": {0: 2, 1: 3}})) == 1  # nodes disagree
    assert len(check_latest(h, {"k": {0: None}})) == 1
    assert check_latest(h, {"k": {0: None}}, may_refuse_key=lambda k: True) == []

    enc = _op(h, "encrypt", "k", 200, 0, 1, ciphertext="vault:v2:x", plaintext="cA==",
              version=2)
    assert check_decrypt(h, [DecryptOutcome(enc, 0, 200, "cA==", "")]) == []
    assert len(check_decrypt(h, [DecryptOutcome(enc, 0, 400, "", "bad")])) == 1
    assert check_decrypt(h, [DecryptOutcome(enc, 0, 400, "", "bad")],
                         may_refuse=lambda o: True) == []
    trim = _op(h, "trim", "k", 200, 0, 1)
    trim.args = {"body": {"min_available_version": 3}}
    assert check_decrypt(h, [DecryptOutcome(enc, 0, 400, "", "trimmed")]) == []

    h.fingerprint("k", 2, "material", "aaa", "export", 0)
    h.fingerprint("k", 2, "material", "aaa", "backup", 0)
    h.fingerprint("k", 2, "hmac", "h1", "hmac", 0)
    assert check_fingerprints(h) == []
    h.fingerprint("k", 2, "material", "bbb", "export", 0)
    assert len(check_fingerprints(h)) == 1
