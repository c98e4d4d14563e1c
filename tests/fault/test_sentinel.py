"""Sentinel-only storage configurations (issue 15): a performance standby without
`read_address` keeps a feed (on the primary Sentinel names), and nodes started while storage
is unreachable — in the middle of a Sentinel failover, or before their Redis — wait, answer
health meanwhile, and serve once storage is back. Real redis-server, Sentinel and transit
processes."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
import requests

from tests.fault.harness import HOST, FaultCluster
from tests.fault.test_staleness import (
    BOUND,
    SLACK,
    _acknowledge_writes,
    _encrypt,
    _lookup,
    _observe,
    _prepare,
)


@pytest.mark.timeout(120)
def test_sentinel_only_standby_has_a_feed(make_cluster: Callable[..., FaultCluster]) -> None:
    """No `read_address`: the standby's caches are kept current by a feed on the primary
    Sentinel names (there was none: revoked tokens and deleted keys stayed usable)."""
    c = make_cluster(nodes=2, replicas=1, perf_standby=True, workers=2, sentinel=True,
                     extra_config=f'performance_standby_max_staleness = "{BOUND}s"\n')
    a, s, token = _prepare(c)
    _acknowledge_writes(c, a, token)
    acked = time.monotonic()
    seen = _observe(c, s, token, acked)
    staleness = seen.last_stale()
    print(f"\n[sentinel-only] stale answers "
          f"{({k: len(v) for k, v in seen.stale.items()})}, last {staleness:.2f}s after the "
          f"last acknowledged write; health codes {sorted({h[1] for h in seen.health})}")
    assert staleness <= BOUND + SLACK, seen.stale
    assert not seen.errors, seen.errors[:5]
    # the feed is connected: it serves locally, as a performance standby, the new state
    assert seen.health[-1][1] == 473, seen.health[-3:]
    assert _encrypt(c, s, "k") == (200, 2)
    assert _lookup(c, s, token) == 403


def _answers_health(c: FaultCluster, i: int) -> int | None:
    try:
        return requests.get(f"{c.nodes[i].addr}/v1/sys/health", timeout=3,
                            headers={"Connection": "close"}).status_code
    except requests.RequestException:
        return None


@pytest.mark.timeout(150)
def test_a_node_restarted_during_a_sentinel_failover_comes_up(
        make_cluster: Callable[..., FaultCluster]) -> None:
    c = make_cluster(nodes=2, replicas=1, perf_standby=True, workers=2, sentinel=True)
    c.setup()
    a = c.wait_active()
    r = c.request(a, "POST", "transit/keys/k")
    assert r.status_code == 200, r.text
    old = c.primary
    # The primary dies; while Sentinel has not promoted the replica yet ("No master found"
    # or the dead address), both nodes restart.
    c.signal_redis(old, signal.SIGKILL)
    for node in c.nodes:
        c.stop_node(node.index)
    started = time.monotonic()
    for node in c.nodes:
        c._spawn(node)
    codes: dict[int, set[int | None]] = {n.index: set() for n in c.nodes}
    while True:
        for n in c.nodes:
            assert n.running, f"node {n.index} exited while storage was away:\n{n.log()}"
            codes[n.index].add(_answers_health(c, n.index))
        promoted = c.sentinel_primary()
        if promoted is not None and promoted[1] != old.port:
            break
        assert time.monotonic() - started < 30, "Sentinel never promoted the replica"
        time.sleep(0.1)
    print(f"\n[sentinel failover] promoted {promoted} {time.monotonic() - started:.1f}s after "
          f"the kill; health meanwhile {codes}")
    active = c.wait_active(timeout=60)
    assert c.wait_ready(60) == active
    r = c.request(active, "POST", "transit/encrypt/k", json={"plaintext": "aGk="})
    assert r.status_code == 200, r.text
    for n in c.nodes:  # every node serves (the standby forwards or serves locally)
        r = c.request(n.index, "POST", "transit/encrypt/k", json={"plaintext": "aGk="})
        assert r.status_code == 200, (n.index, r.text)
    assert promoted[0] == HOST


@pytest.mark.timeout(120)
def test_a_node_started_before_its_redis_waits_and_serves(
        make_cluster: Callable[..., FaultCluster]) -> None:
    """Redis down, the node starts: it answers sys/health (503: not unsealed yet) and keeps
    retrying — no worker crash loop, no giving up — then serves once Redis is up."""
    c = make_cluster(nodes=1, workers=2)
    c.setup()
    r = c.request(0, "POST", "transit/keys/k")
    assert r.status_code == 200, r.text
    c.stop_node(0)
    c.signal_redis(c.primary, signal.SIGTERM)
    assert c.primary.proc is not None
    c.primary.proc.wait(10)
    c._spawn(c.nodes[0])
    started = time.monotonic()
    seen: set[int | None] = set()
    while time.monotonic() - started < 12:  # longer than 6 crashes in 60 s would take
        assert c.nodes[0].running, f"node exited while Redis was down:\n{c.nodes[0].log()}"
        seen.add(_answers_health(c, 0))
        time.sleep(0.2)
    assert seen - {None} == {503}, seen
    h = requests.get(f"{c.nodes[0].addr}/v1/sys/health", timeout=3).json()
    assert h["sealed"] is True and "storage" in h.get("standby_problem", ""), h
    c.start_redis(c.primary)
    c.wait_ready(60)
    r = c.request(0, "POST", "transit/encrypt/k", json={"plaintext": "aGk="})
    assert r.status_code == 200, r.text
    log = c.nodes[0].log()
    assert "exited unexpectedly" not in log and "Traceback" not in log, log[-3000:]
