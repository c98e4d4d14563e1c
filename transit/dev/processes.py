"""Local process control for `transit cluster`: finding binaries, free ports, signalling and
stopping process groups we started (never anybody else's)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

HOST = "127.0.0.1"


def find_redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        # As the servers do: a port whose old connections linger in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is not alive.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def _signal(pid: int, sig: int) -> None:
    """Signal the process group `pid` leads (every process here is started in its own
    session, so a node's worker processes share its group), or just `pid` if it leads none."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _terminate(procs: Sequence[tuple[int | None, subprocess.Popen[bytes] | None]],
               timeout: float) -> dict[str, int]:
    """SIGCONT + SIGTERM each, wait up to `timeout` for all, SIGKILL the rest."""
    report = {"terminated": 0, "killed": 0}
    live: list[tuple[int, subprocess.Popen[bytes] | None]] = []
    for pid, proc in procs:
        if pid is None or (proc.poll() is not None if proc is not None else not _alive(pid)):
            continue
        with contextlib.suppress(ProcessLookupError):
            _signal(pid, signal.SIGCONT)  # a stopped node's workers too
            os.kill(pid, signal.SIGTERM)  # the node's supervisor forwards it to its workers
            live.append((pid, proc))
    deadline = time.monotonic() + timeout

    def gone(pid: int, proc: subprocess.Popen[bytes] | None) -> bool:
        return proc.poll() is not None if proc is not None else not _alive(pid)

    while live and time.monotonic() < deadline:
        still = [(p, pr) for p, pr in live if not gone(p, pr)]
        report["terminated"] += len(live) - len(still)
        live = still
        if live:
            time.sleep(0.05)
    for pid, proc in live:
        with contextlib.suppress(ProcessLookupError):
            _signal(pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        report["killed"] += 1
    return report


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"
