"""The handles of a local cluster's processes (`transit.dev.localcluster`): a Redis server and a
`transit server` node (ports, folders, pid, log), and the TTL text the CLI accepts."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from transit.deploy.render import redis_args
from transit.deploy.topology import REDIS_PERSISTENCE
from transit.dev.processes import HOST, _alive

__all__ = ["HOST", "NodeHandle", "RedisHandle", "parse_ttl"]


def parse_ttl(text: str | float) -> float:
    """'10s', '1500ms', '2m' or plain seconds → seconds."""
    if isinstance(text, int | float):
        return float(text)
    t = text.strip().lower()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if t.endswith(suffix):
            return float(t[: -len(suffix)]) * scale
    return float(t)


@dataclass
class RedisHandle:
    port: int
    workdir: Path
    replica_of: int | None = None
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def dir(self) -> Path:
        return self.workdir / f"redis-{self.port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    @property
    def role(self) -> str:
        return "primary" if self.replica_of is None else "replica"

    def args(self, redis_server: str) -> list[str]:
        """The `redis-server` command line: AOF on (`appendfsync everysec`: a Redis crash
        loses nothing acknowledged, an OS crash or power loss at most ~1 s), no RDB snapshots
        (the AOF is the durable copy), never evict keys, everything in this server's own
        folder."""
        args = [redis_server, "--port", str(self.port), "--bind", HOST,
                *redis_args("", REDIS_PERSISTENCE)[1:],  # docs/ha.md, as in docker/
                "--dir", str(self.dir), "--logfile", str(self.log_path),
                "--repl-diskless-sync-delay", "0", "--daemonize", "no"]
        if self.replica_of is not None:
            args += ["--replicaof", HOST, str(self.replica_of)]
        return args

    def clear_data(self) -> None:
        """Remove the data files (AOF, RDB) from this server's folder; keep its log."""
        for name in ("appendonlydir", "appendonly.aof", "dump.rdb"):
            path = self.dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


@dataclass
class NodeHandle:
    index: int
    api_port: int
    workdir: Path
    node_id: str
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_start: int = 0  # where the current process's lines begin in the (appended) log

    @property
    def cluster_port(self) -> int:
        return self.api_port + 1

    @property
    def addr(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def cluster_addr(self) -> str:
        return f"https://{HOST}:{self.cluster_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / f"node-{self.index}.hcl"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"node-{self.index}.log"

    @property
    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and _alive(self.pid)

    def log(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""
