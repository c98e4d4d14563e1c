"""Scenario g: a forwarded write whose answer is lost.

Two nodes (plain standbys, 2 workers each); a FaultProxy sits in front of every node's
cluster port (the advertised `cluster_addr` points at it). A client on the standby first
sends a forwarded read on its keep-alive connection, so the standby worker it reaches holds
an idle pooled connection to the active; then the proxy is armed to reset after the next
request, and the client sends a write: the active runs it, its answer is thrown away and the
standby sees a reset. Writes alternate between creating a new key (applied = the key exists
afterwards) and rotating one shared key (applied = latest_version - 1).

Checks after a restart, besides the four checkers: applied writes equal acknowledged plus
unknown (503) that were applied; no write that failed otherwise (307, 500, 4xx) was applied;
a write whose answer the proxy destroyed was answered 503 (outcome unknown), never 307
(which makes clients replay it) or 500.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.fault.harness import (
    Client,
    FaultCluster,
    History,
    bounded,
    restart_all_or_report,
    verify,
)

WRITES = 24
ROTATED = "fw-rot"


def test_forwarded_write_answer_lost(make_cluster: Callable[..., FaultCluster]) -> None:
    started = time.monotonic()
    cluster = make_cluster(nodes=2, workers=2, cluster_proxies=True)
    cluster.setup()
    active = cluster.wait_active()
    standby = cluster.standbys(active)[0]
    proxy = cluster.cluster_proxies[active]
    history = History()
    assert Client(cluster, history, active).create(ROTATED, exportable=True).ok
    c = Client(cluster, history, standby, timeout=30)
    fired_ops: list[int] = []
    for i in bounded(WRITES, 40.0):
        c.read(ROTATED)  # the standby worker now has an idle pooled connection
        time.sleep(proxy.idle * 2)  # pooled connection idle long enough to be armed
        before = proxy.stats.resets_after_request
        proxy.reset_after_request(1)
        op = c.create(f"fw-{i}", exportable=True) if i % 2 == 0 else c.rotate(ROTATED)
        proxy.heal()
        if proxy.stats.resets_after_request > before:
            fired_ops.append(op.id)
        if op.ok:
            c.encrypt(op.key)

    restart = restart_all_or_report(cluster)
    active = cluster.wait_active()
    creates = history.select("create")[1:]
    exists = {o.key: cluster.request(active, "GET", f"transit/keys/{o.key}").status_code == 200
              for o in creates}
    mismatch = [f"create {o.key} answered {o.status} {o.error[:60]} but applied={exists[o.key]}"
                for o in creates if (o.ok and not exists[o.key])
                or (o.failed and exists[o.key])]
    rot = history.select("rotate", ROTATED)
    r = cluster.request(active, "GET", f"transit/keys/{ROTATED}")
    applied_rot = r.json()["data"]["latest_version"] - 1 if r.status_code == 200 else -1
    acked_rot, unknown_rot = sum(o.ok for o in rot), sum(o.unknown for o in rot)
    if not acked_rot <= applied_rot <= acked_rot + unknown_rot:
        mismatch.append(f"{ROTATED}: {applied_rot} rotations applied, {acked_rot} "
                        f"acknowledged + {unknown_rot} unknown")
    by_id = {o.id: o for o in history.select()}
    not_503 = [f"{by_id[i].kind} {by_id[i].key}: answer lost, client got {by_id[i].status} "
               f"{by_id[i].error[:80]}" for i in fired_ops
               if not by_id[i].ok and by_id[i].status != 503]
    applied = sum(exists.values()) + max(applied_rot, 0)
    acked = sum(o.ok for o in creates) + acked_rot
    unknown_applied = sum(o.unknown and exists[o.key] for o in creates)
    report = verify(cluster, history, "g: forwarded write, answer lost", exportable=True,
                    started=started,
                    extra={"restart": restart, "applied_vs_answered": mismatch,
                           "lost_answer_not_503": not_503},
                    metrics={"answers_destroyed": len(fired_ops), "writes_applied": applied,
                             "writes_acked": acked, "unknown_applied_creates": unknown_applied})
    report.emit()
    assert len(fired_ops) >= WRITES // 3, f"the fault fired only {len(fired_ops)} times"
    assert report.clean, report.details()


def test_forwarded_put_answer_lost_is_not_replayed(
        make_cluster: Callable[..., FaultCluster]) -> None:
    """PUT is idempotent in HTTP terms, and an HTTP client may resend it on a new connection
    when the one it used dies (aiohttp does, once; ours never does). For Vault a PUT is a write like POST:
    rotate a key with PUT through a plain standby while the proxy destroys the answer after
    the active ran it, and every rotation must be applied exactly once, the ones whose answer
    was lost answered 503 (outcome unknown). The same with DELETE of a KV secret's metadata
    (a lost answer is a 503; the secret is gone afterwards, deleted once)."""
    cluster = make_cluster(nodes=2, workers=1, cluster_proxies=True)
    cluster.setup(kv="secret")
    active = cluster.wait_active()
    standby = cluster.standbys(active)[0]
    proxy = cluster.cluster_proxies[active]
    history = History()
    assert Client(cluster, history, active).create(ROTATED).ok
    c = Client(cluster, history, standby, timeout=30)
    fired: list[int] = []
    puts = 0
    for _ in bounded(8, 30.0):
        c.read(ROTATED)  # the standby holds an idle pooled connection to the active
        time.sleep(proxy.idle * 2)
        before = proxy.stats.resets_after_request
        proxy.reset_after_request(1)
        op = c.call("rotate", ROTATED, "PUT", f"{c.mount}/keys/{ROTATED}/rotate")
        proxy.heal()
        puts += 1
        if proxy.stats.resets_after_request > before:
            fired.append(op.status)
    r = cluster.request(active, "GET", f"transit/keys/{ROTATED}")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["latest_version"] == 1 + puts, (
        f"{puts} PUT rotations sent, {r.json()['data']['latest_version'] - 1} applied")
    assert len(fired) >= 3, f"the fault fired only {len(fired)} times"
    assert fired == [503] * len(fired), f"answers to PUTs whose answer was lost: {fired}"

    deleted: list[int] = []
    for i in bounded(4, 20.0):
        assert cluster.request(active, "POST", f"secret/data/d{i}",
                               json={"data": {"v": "1"}}).status_code == 200
        c.read(ROTATED)
        time.sleep(proxy.idle * 2)
        before = proxy.stats.resets_after_request
        proxy.reset_after_request(1)
        op = c.call("delete", f"d{i}", "DELETE", f"secret/metadata/d{i}")
        proxy.heal()
        if proxy.stats.resets_after_request > before:
            deleted.append(op.status)
        assert cluster.request(active, "GET", f"secret/metadata/d{i}").status_code == 404
    assert deleted and deleted == [503] * len(deleted), f"lost DELETE answers: {deleted}"
