"""Real `redis-server` processes on free loopback ports, and pytest fixtures for them.

    srv = RedisServer(tmp_path).start()           # a primary
    rep = RedisServer(tmp_path, replica_of=srv).start()   # waits for the link to be up
    srv.address  -> "127.0.0.1:<port>"; srv.client() -> sync redis.Redis; srv.stop()

Persistence as in production (docs/ha.md): AOF with `appendfsync everysec`, no RDB snapshots,
`maxmemory-policy noeviction`, data in the server's own folder `<tmp>/redis-<port>/`, so a
server stopped (or killed) and started again keeps its data. `RedisServer(tmp, aof=False)`
runs without AOF; `extra_args` come last and override the defaults
(e.g. `["--appendfsync", "always"]`).

TLS: `RedisServer(tmp_path, tls=make_tls_files(tmp_path))` listens with TLS only (client
certificates required); `make_tls_files` writes a CA, a server cert for 127.0.0.1 and a client
cert. Fixtures (registered from tests/conftest.py): `redis_server` (one primary, per test) and
`redis_primary_with_replica` (a `(primary, replica)` pair, per test). Tests fail (never skip)
when no `redis-server` binary is found (`make deps` installs it).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.helpers import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_available() -> bool:
    return Path(REDIS_SERVER).is_file()


@dataclass(frozen=True)
class TLSFiles:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls_files(directory: Path) -> TLSFiles:
    """A throwaway CA plus server (SAN 127.0.0.1/localhost) and client certificates (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def issue(cn: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
              san: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:  # fmt: skip
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        issuer_name, issuer_key = issuer or (name, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
        )
        if san:
            alt = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), False)
        return builder.sign(issuer_key, hashes.SHA256()), key

    directory.mkdir(parents=True, exist_ok=True)

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca, ca_key = issue("transit-test-ca", None)
    write("ca", ca, ca_key)
    write("server", *issue("127.0.0.1", (ca.subject, ca_key), san=True))
    write("client", *issue("transit-client", (ca.subject, ca_key)))
    d = directory
    return TLSFiles(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt",
                    d / "client.key")  # fmt: skip


class RedisServer:
    """One redis-server child process (AOF on unless `aof=False`), optionally a replica of
    another."""

    def __init__(
        self,
        tmp: Path,
        replica_of: RedisServer | None = None,
        extra_args: list[str] | None = None,
        tls: TLSFiles | None = None,
        aof: bool = True,
    ) -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self.address = f"{self.host}:{self.port}"
        self.url = f"redis://{self.address}"
        self.replica_of = replica_of
        self.dir = tmp / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "redis.log"
        self.extra_args = extra_args or []
        self.tls = tls
        self.aof = aof
        if tls is not None:
            self.url = f"rediss://{self.address}"
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--dir", str(self.dir),
            "--logfile", str(self.log_path),
            "--repl-diskless-sync-delay", "0",  # replicas link up at once, not after 5 s
        ]  # fmt: skip
        if self.tls is not None:
            t = self.tls
            args[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            args += ["--tls-cert-file", str(t.server_cert), "--tls-key-file", str(t.server_key),
                     "--tls-ca-cert-file", str(t.ca_file), "--tls-auth-clients", "yes"]  # fmt: skip
        if self.replica_of is not None:
            args += ["--replicaof", self.replica_of.host, str(self.replica_of.port)]
        return args + self.extra_args

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.proc = subprocess.Popen(
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.dir
        )
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.proc.returncode}: {self.log()}"
                    )
                try:
                    if c.ping() and (self.replica_of is None or (
                            self.link_up(c) and self.aof_settled(c))):
                        return self
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server not ready in {timeout}s: {self.log()}")
                time.sleep(0.02)

    @staticmethod
    def link_up(c: redis.Redis) -> bool:
        return c.info("replication").get("master_link_status") == "up"

    @staticmethod
    def aof_settled(c: redis.Redis) -> bool:
        """A replica that just synced writes its first AOF and refuses SIGTERM meanwhile
        ("Writing initial AOF, can't exit"): ready once that is done."""
        return int(c.info("persistence").get("aof_rewrite_in_progress", 0)) == 0

    def client(self, **kwargs: object) -> redis.Redis:
        """A synchronous client (bytes responses), for test set-up and inspection."""
        if self.tls is not None:
            t = self.tls
            kwargs = dict(ssl=True, ssl_ca_certs=str(t.ca_file), ssl_certfile=str(t.client_cert),
                          ssl_keyfile=str(t.client_key), **kwargs)  # fmt: skip
        kwargs.setdefault("socket_timeout", 5)
        return redis.Redis(host=self.host, port=self.port, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after 5 s). Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown work."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> RedisServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _need_redis() -> None:
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty redis-server primary for one test."""
    _need_redis()
    with RedisServer(tmp_path) as srv:
        yield srv


@pytest.fixture
def redis_primary_with_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one replica already linked to it."""
    _need_redis()
    with RedisServer(tmp_path) as primary, RedisServer(tmp_path, replica_of=primary) as replica:
        yield primary, replica
