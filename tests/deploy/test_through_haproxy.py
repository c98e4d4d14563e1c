"""The deployment topology as a client sees it, through HAProxy only: Redis primary + two
replicas with AOF, three Sentinels, three nodes (performance standbys) and HAProxy with
docker/'s checks (every 1 s; 250 ms while a server changes state or is down; rise 1, fall 1).
One cluster for the module; the tests run in order (the last two inject faults).

Bounds: writes reach the new active node "within a few seconds" (asserted: 5 s); encrypt
never stops for more than one health-check interval (1 s) plus a margin of 1.5 s for a
2-core machine shared with other test runs. Measured numbers: bench/deploy_failover.py and
bench/results/2026-12-07-deploy-failover.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests

from tests.deploy.cluster import CHECKS, DeployCluster, wait_for
from tests.deploy.scenarios import (
    ENC_KEY,
    WRITE_KEY,
    kill_active,
    prepare,
    redis_primary_failover,
)
from tests.fault.harness import check_no_500, verify
from tests.redis_fixtures import redis_available
from transit.deploy.local import find_haproxy
from transit.deploy.topology import REDIS_PERSISTENCE, SENTINEL_MASTER, SentinelTimings

WRITE_BOUND = 5.0  # "within a few seconds"
ENCRYPT_MARGIN = 1.5
ENCRYPT_BOUND = CHECKS.inter_ms / 1000 + ENCRYPT_MARGIN


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployCluster]:
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    if find_haproxy() is None:
        pytest.fail("haproxy is not installed (run `make deps`)")
    c = DeployCluster(tmp_path_factory.mktemp("deploy") / "c")
    c.up()
    try:
        prepare(c)
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.down(timeout=5.0)


def metric(c: DeployCluster, i: int, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample on node i (sys/metrics needs no token: the telemetry
    stanza docker/ and the local topology both render)."""
    text = requests.get(f"{c.nodes[i].addr}/v1/sys/metrics", params={"format": "prometheus"},
                        timeout=5).text
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def handled(c: DeployCluster, i: int) -> float:
    return metric(c, i, "vault_core_handle_request_count", mount="transit/", status="200")


def forwarded(c: DeployCluster, i: int) -> float:
    return metric(c, i, "vault_ha_rpc_client_forward_count")


def _sentinel_master(port: int) -> dict[str, Any]:
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as sc:
        return dict(sc.sentinel_master(SENTINEL_MASTER))


def _knows_everyone(m: dict[str, Any]) -> bool:
    return bool(m["num-other-sentinels"] == 2 and m["num-slaves"] == 2)


def test_running_settings_are_the_deployments(cluster: DeployCluster) -> None:
    """What runs is what docker/ configures: persistence on every Redis, Sentinel's quorum
    and timings, HAProxy's checks (test_agree compares the rendered files)."""
    for r in cluster.redis:
        with redis.Redis(host="127.0.0.1", port=r.port, socket_timeout=5) as rc:
            got = {k: rc.config_get(k)[k] for k, _ in REDIS_PERSISTENCE}
        assert got == dict(REDIS_PERSISTENCE), r.port
    want = SentinelTimings()
    for s in cluster.sentinels:
        m = _sentinel_master(s.port)
        assert (m["quorum"], m["down-after-milliseconds"], m["failover-timeout"]) == (
            want.quorum, want.down_after_ms, want.failover_timeout_ms)
        # Sentinels find each other and the replicas through the primary (hello messages
        # every 2 s, INFO every 10 s): right after start-up a Sentinel may not know them yet.
        wait_for(lambda port=s.port: _knows_everyone(_sentinel_master(port)), 30,
                 f"sentinel {s.port} to know the other sentinels and both replicas")
    checks = cluster.haproxy.config_path.read_text()  # type: ignore[union-attr]
    assert f"inter {CHECKS.inter_ms}ms" in checks


def test_writes_reach_the_active_and_standbys_serve_encrypt(cluster: DeployCluster) -> None:
    active = cluster.wait_active()
    standbys = [n.index for n in cluster.nodes if n.index != active]
    names = [n.node_id for n in cluster.nodes]
    before_served, before_writes = cluster.served("serving"), cluster.served("active")
    before_handled = [handled(cluster, i) for i in range(3)]
    before_fwd = [forwarded(cluster, i) for i in standbys]

    index = ""
    for _ in range(10):
        r = cluster.via("write", "POST", f"transit/keys/{WRITE_KEY}/rotate")
        assert r.status_code == 200, r.text
        index = r.headers.get("X-Vault-Index", "")
    assert index, "HAProxy must pass X-Vault-Index through"
    for _ in range(60):
        r = cluster.via("read", "POST", f"transit/encrypt/{ENC_KEY}",
                        json={"plaintext": "aGk="}, headers={"X-Vault-Index": index})
        assert r.status_code == 200, r.text

    writes = {k: v - before_writes[k] for k, v in cluster.served("active").items()}
    assert writes == {name: 10 if name == names[active] else 0 for name in names}, writes
    reads = {k: v - before_served[k] for k, v in cluster.served("serving").items()}
    assert sum(reads.values()) == 60 and min(reads.values()) >= 10, reads
    # the standbys encrypted themselves (their own pipeline), nothing was forwarded
    after = [handled(cluster, i) for i in range(3)]
    for i in standbys:
        assert after[i] - before_handled[i] >= 10, (i, after, before_handled)
    assert [forwarded(cluster, i) for i in standbys] == before_fwd
    assert after[active] - before_handled[active] >= 10  # the writes, and its encrypt share


def test_kill_active_writes_move_and_encrypt_goes_on(cluster: DeployCluster) -> None:
    out = kill_active(cluster)
    print("\n" + out.summary())
    killed = out.info["killed_node"]
    resumed = out.writes_resumed_after
    assert resumed is not None and resumed <= WRITE_BOUND, out.summary()
    assert out.write_gap <= WRITE_BOUND, out.summary()
    assert out.encrypt_gap <= ENCRYPT_BOUND, out.summary()
    assert not check_no_500(out.history), check_no_500(out.history)
    new = cluster.wait_active(exclude=(killed,))
    leader = cluster.via("write", "GET", "sys/leader").json()
    assert leader["leader_address"] == cluster.nodes[new].addr
    # the killed node comes back as a standby and HAProxy takes it in again
    cluster.restart(killed)
    wait_for(lambda: cluster.served("serving") and all(
        row["status"] == "UP" for row in _rows(cluster, "serving")), 15, "node back in the pool")


def _rows(c: DeployCluster, backend: str) -> list[dict[str, str]]:
    from transit.deploy.local import haproxy_stats

    return [r for r in haproxy_stats(c.layout) if r["pxname"] == backend
            and r["svname"] not in ("FRONTEND", "BACKEND")]


def test_redis_primary_failover_under_encrypt_load(cluster: DeployCluster) -> None:
    out = redis_primary_failover(cluster)
    print("\n" + out.summary())
    assert "promoted_after" in out.info, f"Sentinel promoted no replica: {out.summary()}"
    resumed = out.writes_resumed_after
    assert resumed is not None, out.summary()
    assert out.encrypt_gap <= ENCRYPT_BOUND, out.summary()
    enc = out.history.select("encrypt")
    assert sum(o.ok for o in enc) >= 0.95 * len(enc), out.summary()  # encrypt keeps working
    # writes come back once a replica is promoted (and not long after)
    assert resumed <= out.info["promoted_after"] + WRITE_BOUND, out.summary()
    # nothing acknowledged is lost: the old primary returns as a replica, every node restarts,
    # and the fault harness's checkers read everything back from every node
    cluster.start_redis_as_replica(cluster.redis_handle(out.info["killed_redis"]),
                                   out.info["port"])
    cluster.restart_all()
    report = verify(cluster, out.history, "deploy: Redis primary failover",  # type: ignore[arg-type]
                    keys=[ENC_KEY, WRITE_KEY], extra={"500s": check_no_500(out.history)})
    report.emit()
    assert report.clean, report.details()
    assert report.acknowledged > 100
