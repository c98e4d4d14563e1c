"""bench/locustfile.py against a real dev node: every task runs for a few seconds (locust
headless, a subprocess, 2 users) and makes requests without a failure. No timing asserted."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, ServerProcess, free_port

LOCUSTFILE = ROOT / "bench" / "locustfile.py"


def _matrix():
    """bench/matrix.py (for its application policy); a script, not a package."""
    spec = importlib.util.spec_from_file_location("bench_matrix", ROOT / "bench" / "matrix.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess.dev(tmp_path_factory.mktemp("bench-dev")).start()
    yield srv
    srv.stop()


def run_locust(srv: ServerProcess, out: Path, *args: str, token: str = "root",
               seconds: int = 4, users: int = 2, env: dict[str, str] | None = None,
               ) -> tuple[dict[str, dict[str, str]], subprocess.CompletedProcess]:
    prefix = out / "run"
    port = str(free_port())
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
           "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary",
           "--csv", str(prefix), "--master-bind-port", port, "--master-port", port, *args]
    p = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=seconds + 60,
                       env={**os.environ, "VAULT_ADDR": srv.addr, "VAULT_TOKEN": token,
                            "VAULT_ADMIN_TOKEN": "root", **(env or {})})
    stats = out / "run_stats.csv"
    assert stats.exists(), p.stderr[-3000:]
    with stats.open(newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}, p


def assert_all_ran(rows: dict[str, dict[str, str]], names: list[str],
                   p: subprocess.CompletedProcess) -> None:
    for name in names:
        assert name in rows, f"{name!r} made no request; got {sorted(rows)}\n{p.stderr[-3000:]}"
        assert int(rows[name]["Request Count"]) > 0, name
    failed = {n: r["Failure Count"] for n, r in rows.items() if int(r["Failure Count"])}
    assert not failed, f"failures {failed}\n{p.stderr[-3000:]}"
    assert p.returncode == 0, p.stderr[-3000:]


def test_every_task_with_a_policy_limited_token(dev: ServerProcess, tmp_path: Path) -> None:
    """All tasks at once (no --tags), with the application policy bench/matrix.py gives the
    production-shape scenario, root as the admin token (setup, rotations)."""
    r = dev.request("PUT", "sys/policies/acl/bench-app", json={"policy": _matrix().APP_POLICY})
    assert r.status_code == 204, r.text
    r = dev.request("POST", "auth/token/create", json={"policies": ["bench-app"], "ttl": "1h"})
    token = r.json()["auth"]["client_token"]
    rows, p = run_locust(dev, tmp_path, "--batch-size", "10", token=token, seconds=5,
                         env={"BENCH_MIXED_ROTATE": "0.05"})
    assert_all_ran(rows, [
        "encrypt 64B", "decrypt 64B", "rewrap 64B", "datakey plaintext", "hmac 64B",
        "batch encrypt x10 64B", "batch decrypt x10 64B", "sign ed25519 64B",
        "verify ed25519 64B", "kv read", "kv write 64B", "mixed: encrypt 64B",
        "mixed: decrypt 64B", "mixed: kv read", "mixed: rotate (admin)",
    ], p)
    # the admin token rotated the mixed workload's key; the application token may not
    keys = dev.request("GET", "transit/keys/bench-mixed").json()["data"]
    assert keys["latest_version"] > 1
    assert dev.request("POST", "transit/keys/bench-mixed/rotate", token=token).status_code == 403


def test_tags_parameters_and_worker_processes(dev: ServerProcess, tmp_path: Path) -> None:
    """--tags picks operations; key type, payload size and batch size are parameters; with
    --processes the master hands its options to the forked workers."""
    rows, p = run_locust(
        dev, tmp_path, "--processes", "2", "--tags", "sign", "verify", "batch_encrypt",
        "batch_decrypt", "encrypt", "--sign-key-type", "ecdsa-p256", "--payload-size", "1024",
        "--batch-size", "250", seconds=4)
    assert_all_ran(rows, ["sign ecdsa-p256 1KiB", "verify ecdsa-p256 1KiB",
                          "batch encrypt x250 1KiB", "batch decrypt x250 1KiB",
                          "encrypt 1KiB"], p)
    assert not any(n.startswith(("kv ", "mixed", "hmac", "decrypt ")) for n in rows), rows
    key = dev.request("GET", "transit/keys/bench-ecdsa-p256").json()["data"]
    assert key["type"] == "ecdsa-p256"


def test_payload_16k(dev: ServerProcess, tmp_path: Path) -> None:
    rows, p = run_locust(dev, tmp_path, "--tags", "encrypt", "decrypt", "hmac",
                         "--payload-size", "16384", seconds=3, users=1)
    assert_all_ran(rows, ["encrypt 16KiB", "decrypt 16KiB", "hmac 16KiB"], p)
