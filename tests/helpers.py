"""Test helpers: free ports and real `transit server` processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hvac
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A real `transit server` child process on a free loopback port."""

    def __init__(self, args: list[str], port: int, token: str = "root", log: Path | None = None):
        self.port = port
        self.addr = f"http://127.0.0.1:{port}"
        self.token = token
        self.args = args
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()

    @classmethod
    def dev(cls, tmp: Path, token: str = "root", extra: list[str] | None = None) -> ServerProcess:
        port = free_port()
        args = [
            "server", "-dev", f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}", *(extra or []),
        ]
        return cls(args, port, token, tmp / f"server-{port}.log")

    def start(self, timeout: float = 20.0) -> ServerProcess:
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "transit", *self.args],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early with {self.proc.returncode}: {self.log()}")
            try:
                requests.get(self.addr + "/v1/sys/health", timeout=0.5)
                return self
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.token if token is None else token)

    def request(
        self, method: str, path: str, json: Any = None, token: str | None = None,
        data: bytes | str | None = None, headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        """Raw HTTP: `path` is relative to /v1/ (e.g. "transit/keys/k")."""
        h = {"X-Vault-Token": self.token if token is None else token}
        h.update(headers or {})
        return self.session.request(
            method, f"{self.addr}/v1/{path.lstrip('/')}", json=json, data=data, headers=h,
            params=params, timeout=30,
        )


def init_and_unseal(srv: ServerProcess, shares: int = 1, threshold: int = 1) -> dict[str, Any]:
    """Initialise a fresh non-dev server through the API, unseal it, and point the
    process helper at its root token. Returns the init response."""
    client = hvac.Client(url=srv.addr, verify=srv.session.verify)
    init = client.sys.initialize(shares, threshold)
    client.sys.submit_unseal_keys(init["keys"][:threshold])
    srv.token = init["root_token"]
    return init
