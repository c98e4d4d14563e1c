"""Rekey and root generation on an HA cluster (spec operations-api §1-2): two nodes on Redis,
Shamir seal, two worker processes per node, performance standbys.

The attempt lives on the active node's worker 0: steps sent to the standby are forwarded,
steps sent to the active node on fresh connections land on either worker and are relayed to
worker 0. After the rekey, every worker of both nodes shows the new configuration, and both
nodes — sealed one after the other — unseal with the new shares only."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.ha.conftest import running
from tests.ha.util import HACluster, poll
from tests.redis_fixtures import redis_available
from transit.dev.handles import NodeHandle
from transit.generate_root import decode_token

WORKERS = 2
FRESH = 16  # requests on fresh connections: both workers are hit (2^-15 chance they are not)


class ShamirWorkersCluster(HACluster):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, nodes=2, replicas=1, lock_ttl=3.0, perf_standby=True,
                         seal="shamir")

    def node_config(self, node: NodeHandle) -> str:
        return super().node_config(node) + f"workers = {WORKERS}\n"


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ShamirWorkersCluster]:
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    yield from running(ShamirWorkersCluster(tmp_path / "cluster"), request)


def fresh(c: HACluster, i: int, method: str, path: str, json: Any = None,
          token: str | None = None) -> requests.Response:
    """One request on a new connection (so any worker of node i may answer it)."""
    headers = {"Connection": "close"}
    if token:
        headers["X-Vault-Token"] = token
    return requests.request(method, f"{c.nodes[i].addr}/v1/{path}", json=json,
                            headers=headers, timeout=30)


def every_worker(c: HACluster, i: int, path: str) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(FRESH) as pool:
        return list(pool.map(lambda _: fresh(c, i, "GET", path).json(), range(FRESH)))


def test_rekey_through_the_standby_then_both_nodes_unseal_with_the_new_shares(
        cluster: ShamirWorkersCluster) -> None:
    c = cluster
    active = c.wait_ready()
    standby = 1 - active
    old = c.unseal_key
    c.client(active).sys.enable_secrets_engine("transit", path="transit")
    c.client(active).secrets.transit.create_key("k")
    ct = c.client(active).secrets.transit.encrypt_data(
        "k", base64.b64encode(b"kept").decode())["data"]["ciphertext"]

    # start through the standby (forwarded); every worker of both nodes sees the attempt
    started = c.client(standby).sys.start_rekey(secret_shares=3, secret_threshold=2)
    nonce = started["nonce"]
    for i in (active, standby):
        seen = every_worker(c, i, "sys/rekey/init")
        assert {s["nonce"] for s in seen} == {nonce}, (i, seen)
    # the share through the standby too: threshold 1, so this completes it
    done = c.client(standby).sys.rekey(old, nonce=nonce)
    assert done["complete"] is True and len(done["keys"]) == 3
    new = done["keys"]
    for i in (active, standby):  # every worker of both nodes follows (the standby within 1 s)
        poll(lambda i=i: all((s["t"], s["n"]) == (2, 3)
                             for s in every_worker(c, i, "sys/seal-status")) or None,
             10, f"the new seal configuration on every worker of node {i}")
        assert all(s["started"] is False and s["required"] == 2
                   for s in every_worker(c, i, "sys/rekey/init"))

    # root generation with the new shares: started on the active node (any worker), shares
    # sent on fresh connections to the active and through the standby
    r = fresh(c, active, "PUT", "sys/generate-root/attempt", json={})
    otp, gnonce = r.json()["otp"], r.json()["nonce"]
    assert fresh(c, active, "PUT", "sys/generate-root/update",
                 json={"key": new[0], "nonce": gnonce}).json()["progress"] == 1
    r = fresh(c, standby, "PUT", "sys/generate-root/update", json={"key": new[2], "nonce": gnonce})
    token = decode_token(r.json()["encoded_token"], otp)
    me = fresh(c, standby, "GET", "auth/token/lookup-self", token=token).json()["data"]
    assert me["policies"] == ["root"]

    # seal both nodes: the active first (the standby takes over), then that one
    assert fresh(c, active, "PUT", "sys/seal", token=token).status_code == 204
    assert c.wait_active(exclude=(active,)) == standby
    # a node's other workers take the active role within one poll of its first one
    poll(lambda: all(not s["standby"] for s in every_worker(c, standby, "sys/health")) or None,
         10, f"every worker of node {standby} active")
    assert fresh(c, standby, "PUT", "sys/seal", token=token).status_code == 204
    for i in (active, standby):
        poll(lambda i=i: all(s["sealed"] for s in every_worker(c, i, "sys/seal-status")) or None,
             10, f"node {i} sealed on every worker")

    # the old share no longer opens anything; the new ones open both nodes
    fresh(c, active, "PUT", "sys/unseal", json={"key": old})
    r = fresh(c, active, "PUT", "sys/unseal", json={"key": new[1]})
    assert r.status_code == 400 and r.json()["errors"] == ["Unseal failed, invalid key"]
    for i in (active, standby):
        assert fresh(c, i, "PUT", "sys/unseal", json={"key": new[1]}).json()["progress"] == 1
        assert fresh(c, i, "PUT", "sys/unseal", json={"key": new[2]}).json()["sealed"] is False
    leader = c.wait_ready()
    for i in (active, standby):
        assert all(not s["sealed"] and s["t"] == 2 for s in every_worker(c, i, "sys/seal-status"))
    plain = c.client(leader).secrets.transit.decrypt_data("k", ct)["data"]["plaintext"]
    assert base64.b64decode(plain) == b"kept"
    assert c.client(1 - leader).sys.read_rekey_progress()["required"] == 2
    # every attempt ran on worker 0 of the active node, whichever worker the client reached
    log = c.nodes[active].log(200_000)
    assert f"{WORKERS} worker processes" in log
    lines = [ln for ln in log.splitlines()
             if "rekey initialized" in ln or "root generation initialized" in ln]
    assert len(lines) == 2 and all(re.search(r"\[w0\]|worker=0\b", ln) for ln in lines), lines
    assert not any("Traceback" in n.log(200_000) for n in c.nodes)
