"""Scenario b: 32 clients encrypt under a new key name at the same instant (upsert), for 20
names in turn; once with aes256-gcm96 keys and once with `type=rsa-2048` (encrypt's upsert
takes `type`, spec §4.8).

One node, 2 worker processes. Every client has its own keep-alive connection; a
`threading.Barrier` releases the 32 requests of a round together. Right after its encrypt,
each client samples v1 of the key on the same connection (so from the worker that answered):
an HMAC of a fixed input under version 1, and for RSA the public key. After a restart: each
key must have exactly one v1 (one fingerprint, latest_version 1) and every acknowledged
ciphertext must decrypt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.fault.harness import Client, FaultCluster, History, run_parallel, verify

CLIENTS = 32
NAMES = 20


def first_use(cluster: FaultCluster, history: History, prefix: str, key_type: str) -> list[str]:
    """Run the rounds; the key names used."""
    names = [f"{prefix}-{i:02d}" for i in range(NAMES)]
    barrier = threading.Barrier(CLIENTS)
    params = {} if key_type == "aes256-gcm96" else {"type": key_type}

    def client(c: Client) -> None:
        for name in names:
            barrier.wait(timeout=60)
            op = c.encrypt(name, **params)
            if op.ok:
                c.hmac(name, 1)
                if key_type.startswith("rsa"):
                    c.read(name)
        c.close()

    clients = [Client(cluster, history, 0, timeout=60) for _ in range(CLIENTS)]
    run_parallel([lambda c=c: client(c) for c in clients], timeout=240)
    return names


def single_v1(cluster: FaultCluster, names: list[str]) -> list[str]:
    """Each key has exactly one version after the restart."""
    out = []
    for name in names:
        r = cluster.request(0, "GET", f"transit/keys/{name}")
        latest = r.json()["data"]["latest_version"] if r.status_code == 200 else None
        if latest != 1:
            out.append(f"{name}: latest_version {latest} after first use (expected 1; "
                       f"HTTP {r.status_code} {r.text[:200]})")
    return out


@pytest.mark.parametrize("key_type", ["aes256-gcm96", "rsa-2048"])
def test_first_use_creates_one_v1(make_cluster: Callable[..., FaultCluster],
                                  key_type: str) -> None:
    started = time.monotonic()
    cluster = make_cluster(nodes=1, workers=2)
    cluster.setup()
    history = History()
    names = first_use(cluster, history, key_type.split("-")[0], key_type)
    cluster.restart_all()
    report = verify(cluster, history, f"b: {CLIENTS} clients x {NAMES} new names ({key_type})",
                    keys=names, started=started,
                    extra={"extra_versions": single_v1(cluster, names)})
    report.emit()
    assert report.acknowledged >= NAMES, report.summary()
    assert report.clean, report.details()
