"""Scenarios e and f: Redis loses writes under the node.

e. Failover lost-write trap. The replica is paused (SIGSTOP) and its replication link cut
   (a proxy on the link drops every byte, so the writes are not even waiting in the paused
   replica's socket buffer), the node keeps writing to the primary, the primary is killed,
   the replica resumes and is promoted (`REPLICAOF NO ONE`;
   the storage proxy, standing in for the virtual IP or Sentinel, moves to it), the old primary
   comes back as its replica, and the node writes on. The storage option
   `min_replica_acks = 1` says key material is acknowledged only once a replica has it. So
   nothing acknowledged may be lost: a write made while the replica was paused must have been
   refused (503) or must survive. No write may answer an unexplained 500.
f. The primary killed and restarted at once, well inside any Sentinel down-after window, so
   no failover happens: once with its AOF (a crash: everything acknowledged must survive and
   the node must carry on), once without its data (a lost disk: AOF removed; its replica then
   full-syncs the empty data set). Without data, every key must stay intact or be refused
   clearly: a 2xx must never hand out key material that is not in storage, an acknowledged
   write made after the restart must survive, and a refusal is a 4xx or 503, never a 500.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.fault.harness import (
    Client,
    FaultCluster,
    History,
    Op,
    bounded,
    check_no_500,
    restart_all_or_report,
    run_parallel,
    verify,
)


def test_failover_after_writes_to_a_lonely_primary(
        make_cluster: Callable[..., FaultCluster]) -> None:
    started = time.monotonic()
    cluster = make_cluster(nodes=1, replicas=1, workers=2, storage_proxy=True,
                           replication_proxies=True, storage_options={"min_replica_acks": "1"})
    cluster.setup()
    history = History()
    admin = Client(cluster, history, 0)
    assert admin.create("fo", exportable=True).ok
    for _ in range(4):
        assert admin.encrypt("fo").ok
    admin.export("fo")
    replica = cluster.replicas[0]

    cluster.signal_redis(replica, signal.SIGSTOP)
    cluster.replication_proxies[replica.port].drop()
    history.mark("paused")

    def rotations(c: Client) -> None:
        for _ in bounded(5, 8.0):
            c.rotate("fo")
            c.encrypt("fo")
            c.export("fo")  # what the node serves, whatever the rotation answered

    def creates(c: Client) -> None:
        for i in bounded(3, 8.0):
            name = f"fo-paused-{i}"
            if c.create(name, exportable=True).ok:
                c.encrypt(name)

    def encrypts(c: Client) -> None:
        for _ in bounded(10, 8.0):
            c.encrypt("fo")

    clients = [Client(cluster, history, 0, timeout=30) for _ in range(3)]
    try:
        run_parallel([lambda: rotations(clients[0]), lambda: creates(clients[1]),
                      lambda: encrypts(clients[2])], timeout=120)
    finally:
        old_primary = cluster.primary
        cluster.signal_redis(old_primary, signal.SIGKILL)
        cluster.signal_redis(replica, signal.SIGCONT)
    cluster.promote(replica)
    history.mark("failover")
    cluster.start_redis(old_primary, wipe=True)  # back as a replica of the new primary

    c = Client(cluster, history, 0, timeout=30)
    cluster.wait_active(timeout=30)
    acked = 0
    for _ in bounded(60, 20.0):  # versions lost in the failover would be issued again now
        if c.rotate("fo").ok:
            c.encrypt("fo")
            acked += 1
            if acked == 3:
                break
        else:
            time.sleep(0.2)  # pacing while the node settles on the new primary
    c.export("fo")
    for i in range(2):
        if c.create(f"fo-after-{i}", exportable=True).ok:
            c.encrypt(f"fo-after-{i}")

    restart = restart_all_or_report(cluster)
    paused = [o for o in history.select() if history.marks["paused"] <= o.invoke
              < history.marks["failover"]]
    report = verify(cluster, history, "e: failover after writes to a lonely primary",
                    exportable=True, started=started,
                    extra={"restart": restart, "writes_answered_500": check_no_500(history)},
                    metrics={"acked_while_paused": sum(o.ok and o.kind != "export"
                                                       for o in paused),
                             "refused_while_paused": sum(o.unknown for o in paused)})
    report.emit()
    assert report.clean, report.details()


@pytest.mark.parametrize("wipe", [False, True], ids=["with-aof", "without-data"])
def test_primary_restarted(make_cluster: Callable[..., FaultCluster], wipe: bool) -> None:
    started = time.monotonic()
    cluster = make_cluster(nodes=1, replicas=1, workers=2,
                           storage_options={"min_replica_acks": "1"})
    cluster.setup()
    history = History()
    admin = Client(cluster, history, 0)
    keys = [f"wipe-{i}" for i in range(4)]
    for key in keys:
        assert admin.create(key, exportable=True).ok
        assert admin.rotate(key).ok
        for _ in range(2):
            assert admin.encrypt(key).ok
        admin.export(key)
        admin.hmac(key, 2)

    restarted = history.mark("restart")
    cluster.signal_redis(cluster.primary, signal.SIGKILL)
    cluster.start_redis(cluster.primary, wipe=wipe)
    cluster.wait_redis(cluster.replicas[0], timeout=20)  # linked again (full sync if wiped)

    def worker(c: Client, n: int) -> None:
        for i in bounded(40, 5.0):
            key = keys[(i + n) % len(keys)]
            step = (i + n) % 4
            if step == 0:
                c.rotate(key)
            elif step == 1:
                name = f"wipe-new-{n}-{i}"
                if c.create(name, exportable=True).ok:
                    c.encrypt(name)
            else:
                op = c.encrypt(key)
                if op.ok:
                    c.hmac(key, op.result["version"])
            time.sleep(0.05)

    clients = [Client(cluster, history, 0, timeout=20) for _ in range(3)]
    run_parallel([lambda c=c, n=n: worker(c, n) for n, c in enumerate(clients)], timeout=120)
    restart = restart_all_or_report(cluster, timeout=10.0)
    health = cluster.health(0)

    def wrote_after(key: str) -> bool:
        return any(o.ok and o.invoke >= restarted and o.kind in ("rotate", "create")
                   for o in history.select(key=key))

    def may_refuse(op: Op) -> bool:
        """Without its data: what was made before, and encryptions under keys made before."""
        return op.complete < restarted or op.key in keys

    name = "f: primary restarted " + ("without its data" if wipe else "with its AOF")
    report = verify(cluster, history, name,
                    keys={*keys, *(o.key for o in history.select("create"))}, exportable=True,
                    may_refuse=may_refuse if wipe else None,
                    may_refuse_key=(lambda k: not wrote_after(k)) if wipe else None,
                    started=started,
                    extra={"writes_answered_500": check_no_500(history, restarted),
                           **({} if wipe else {"restart": restart})},
                    metrics={"node_restart": "ok" if not restart else "refused",
                             "health_after": health[0] if health else None,
                             "acked_after": sum(o.ok for o in history.select()
                                                if o.invoke >= restarted
                                                and o.kind in ("rotate", "create", "encrypt"))})
    report.emit()
    assert report.clean, report.details()
