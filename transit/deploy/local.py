"""The Sentinel and HAProxy processes of a local cluster (`transit cluster up --sentinels N
--haproxy`), configured from the same renderers as `docker/`: each in its own session, its
configuration and log in the work folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from transit.deploy.render import haproxy_cfg, sentinel_conf
from transit.deploy.topology import SENTINEL_MASTER, Layout


class DeployError(Exception):
    """A Sentinel or HAProxy process could not be started; the message says why."""


def find_haproxy() -> str | None:
    """Debian installs haproxy in /usr/sbin, which a non-root PATH may lack."""
    found = shutil.which("haproxy")
    if found:
        return found
    for candidate in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


@dataclass
class ProcHandle:
    """One Sentinel or HAProxy process."""

    name: str  # "sentinel-1", "haproxy"
    kind: str  # "sentinel" | "haproxy"
    port: int  # Sentinel's port; HAProxy's writes frontend
    dir: Path
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.kind}.log"

    @property
    def config_path(self) -> Path:
        return self.dir / ("sentinel.conf" if self.kind == "sentinel" else "haproxy.cfg")

    def spawn(self, args: list[str]) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dir,
                                         start_new_session=True)
        self.pid = self.proc.pid

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None


def sentinel_handles(layout: Layout, workdir: Path) -> list[ProcHandle]:
    return [ProcHandle(s.name, "sentinel", s.port, workdir / s.name) for s in layout.sentinels]


def start_sentinels(layout: Layout, handles: list[ProcHandle], redis_server: str,
                    timeout: float) -> None:
    """Write each Sentinel's configuration (afresh: Sentinel rewrites it with what it learnt)
    and start them; return once each names the primary."""
    for j, h in enumerate(handles):
        h.dir.mkdir(parents=True, exist_ok=True)
        h.config_path.write_text(sentinel_conf(layout, j, directory=str(h.dir),
                                               logfile=str(h.log_path)))
        h.spawn([redis_server, str(h.config_path), "--sentinel"])
    deadline = time.monotonic() + timeout
    for h in handles:
        with redis.Redis(host=layout.sentinels[0].host, port=h.port, socket_timeout=2) as c:
            while True:
                with contextlib.suppress(redis.RedisError):
                    if c.sentinel_get_master_addr_by_name(SENTINEL_MASTER):
                        break
                if h.exited():
                    raise DeployError(f"{h.name} exited: {_tail(h.log_path)}")
                if time.monotonic() > deadline:
                    raise DeployError(f"{h.name} not ready in {timeout:.0f}s: "
                                      f"{_tail(h.log_path)}")
                time.sleep(0.05)


def haproxy_handle(layout: Layout, workdir: Path) -> ProcHandle:
    return ProcHandle("haproxy", "haproxy", layout.frontends.write, workdir / "haproxy")


def start_haproxy(layout: Layout, handle: ProcHandle, haproxy: str, timeout: float) -> None:
    """Write haproxy.cfg, check it (`haproxy -c`), start HAProxy in the foreground of its own
    session and wait until its stats page answers."""
    handle.dir.mkdir(parents=True, exist_ok=True)
    handle.config_path.write_text(haproxy_cfg(layout))
    check = subprocess.run([haproxy, "-c", "-q", "-f", str(handle.config_path)],
                           capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise DeployError(f"haproxy refuses {handle.config_path}: {check.stdout}{check.stderr}")
    handle.spawn([haproxy, "-db", "-f", str(handle.config_path)])
    f = layout.frontends
    url = f"http://{f.bind_host}:{f.stats}/stats;csv"
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        if handle.exited():
            raise DeployError(f"haproxy exited: {_tail(handle.log_path)}")
        if time.monotonic() > deadline:
            raise DeployError(f"haproxy not answering in {timeout:.0f}s: "
                              f"{_tail(handle.log_path)}")
        time.sleep(0.05)


def haproxy_stats(layout: Layout, timeout: float = 2.0) -> list[dict[str, str]]:
    """HAProxy's stats as rows (`pxname`, `svname`, `status`, `stot`, `hrsp_2xx`, ...)."""
    f = layout.frontends
    text = httpx.get(f"http://{f.bind_host}:{f.stats}/stats;csv", timeout=timeout).text
    lines = text.lstrip("# ").splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
