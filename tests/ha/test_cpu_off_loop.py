"""A 10,000-item RSA-4096 batch decrypt on the active node (the allowed maximum: about 16 s of
CPU) does not stall its event loop: while it runs, sys/leader on the standbys keeps naming the
same active node (its lock is renewed) and sys/health on the active keeps answering. One
worker process per node, so the batch, the lock renewal and health share one event loop.
The health p99 during the batch is measured by bench/rsa_batch_health.py, not asserted here."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.ha.conftest import make_cluster, running
from tests.ha.util import HACluster

ITEMS = 10_000


@pytest.fixture
def one_worker_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[HACluster]:
    c = make_cluster(tmp_path)
    c.workers = 1  # one event loop per node: the strictest case
    yield from running(c, request)


def test_rsa4096_batch_decrypt_keeps_leader_and_health(one_worker_cluster: HACluster) -> None:
    cluster = one_worker_cluster
    active = cluster.active_index()
    assert active is not None
    active_addr = cluster.nodes[active].addr
    c = cluster.client(active)
    c.sys.enable_secrets_engine("transit", path="transit")
    r = cluster.request(active, "POST", "transit/keys/rsa", json={"type": "rsa-4096"})
    assert r.status_code in (200, 204), r.text

    plaintexts = [base64.b64encode(f"item {i}".encode()).decode() for i in range(ITEMS)]
    ciphertexts: list[str] = []
    for start in range(0, ITEMS, 1000):
        r = cluster.request(active, "POST", "transit/encrypt/rsa", timeout=120, json={
            "batch_input": [{"plaintext": p} for p in plaintexts[start:start + 1000]]})
        assert r.status_code == 200, r.text
        ciphertexts += [x["ciphertext"] for x in r.json()["data"]["batch_results"]]

    stop = threading.Event()
    leaders: list[tuple[int, int, str]] = []  # (node, status, leader_address)
    health: list[tuple[float, float, int]] = []  # (sent, answered, status)

    def poll_leader(i: int) -> None:
        s = requests.Session()
        while not stop.is_set():
            try:
                resp = s.get(f"{cluster.nodes[i].addr}/v1/sys/leader", timeout=10)
                leaders.append((i, resp.status_code, resp.json().get("leader_address", "")))
            except (requests.RequestException, ValueError) as exc:
                leaders.append((i, 0, repr(exc)))
            time.sleep(0.1)

    def poll_health() -> None:
        s = requests.Session()
        while not stop.is_set():
            sent = time.monotonic()
            try:
                code = s.get(f"{active_addr}/v1/sys/health", timeout=30).status_code
            except requests.RequestException:
                code = 0
            health.append((sent, time.monotonic(), code))
            time.sleep(0.05)

    threads = [threading.Thread(target=poll_leader, args=(i,), daemon=True)
               for i in cluster.standbys(active)]
    threads.append(threading.Thread(target=poll_health, daemon=True))
    for t in threads:
        t.start()
    try:
        t0 = time.monotonic()
        r = cluster.request(active, "POST", "transit/decrypt/rsa", timeout=300, json={
            "batch_input": [{"ciphertext": ct} for ct in ciphertexts]})
        t1 = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=40)

    assert r.status_code == 200, r.text
    results = r.json()["data"]["batch_results"]
    assert [x["plaintext"] for x in results] == plaintexts

    # No change of leader: every standby answer names the same active node, and it still is.
    assert leaders, "sys/leader was never polled"
    assert {(status, addr) for _, status, addr in leaders} == {(200, active_addr)}, leaders
    assert cluster.active_index() == active

    # sys/health on the active kept answering while the batch ran: every probe succeeded, and
    # probes were both sent and answered within the batch (not all queued behind it).
    assert all(code == 200 for _, _, code in health), health
    answered_during = [h for h in health if t0 < h[0] and h[1] < t1]
    assert len(answered_during) >= 2, (t1 - t0, health)
