"""Scenario d: a TCP proxy between the node and Redis holds some replies past the storage
timeout. The requests themselves reach Redis at once, so a timed-out write has been applied:
its outcome is unknown to the server.

One node, 2 worker processes, storage `timeout = "1s"` through a FaultProxy; the proxy holds
the replies of connections that sent a command about the test keys (with probability 0.5 per
such command) for 1.6 s. Two clients rotate one key each and encrypt after every rotation;
two clients read both keys. A MONITOR on the primary sees every command Redis ran.

Checks, besides the four checkers after heal + restart:
- no write applied twice, counted two ways: (1) the write index: a calibration rotation per
  key (no fault) gives the index increments of one rotation, k; under the fault the index may
  grow by at most k x (acknowledged + unknown rotations); (2) no two identical SETs (same key,
  same value bytes: values are encrypted under fresh nonces, so only a replay of one request
  produces that) ran inside write scripts on the test keys;
- a write that was not acknowledged answered 503 (outcome unknown), never 500 or 307;
- `latest_version` never goes back: a read or rotation that started after an acknowledged
  rotation completed does not return a lower version;
- applied rotations (final latest_version minus the one before the fault) lie between
  acknowledged and acknowledged + unknown.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from tests.fault.harness import (
    Client,
    FaultCluster,
    History,
    RedisMonitor,
    bounded,
    check_monotonic_versions,
    restart_all_or_report,
    run_parallel,
    verify,
)

KEYS = ("tmo-0", "tmo-1")
SECONDS = 8.0
TIMEOUT = 1.0
DELAY = 1.6


def test_storage_reply_delayed_past_timeout(make_cluster: Callable[..., FaultCluster]) -> None:
    started = time.monotonic()
    cluster = make_cluster(nodes=1, workers=2, storage_proxy=True,
                           storage_options={"timeout": f"{int(TIMEOUT * 1000)}ms"})
    proxy = cluster.storage_proxy
    assert proxy is not None
    cluster.setup()
    history = History()
    admin = Client(cluster, history, 0)
    for key in KEYS:
        assert admin.create(key, exportable=True).ok
    cluster.wait_own_writes()  # else a write of the node's own can land in the count below
    calibration = cluster.index()
    initial = {key: admin.rotate(key).result["latest_version"] for key in KEYS}
    per_rotation = (cluster.index() - calibration) / len(KEYS)

    index0 = cluster.index()
    monitor = RedisMonitor(cluster.primary.port)
    fault_from = history.mark("fault")

    def rotator(c: Client, key: str) -> None:
        for _ in bounded(60, SECONDS):
            if c.rotate(key).ok:
                c.encrypt(key)

    def reader(c: Client) -> None:
        for i in bounded(400, SECONDS):
            c.read(KEYS[i % 2])
            time.sleep(0.02)

    clients = [Client(cluster, history, 0, timeout=30) for _ in range(4)]
    proxy.delay_replies(DELAY, match=b"policy/tmo-", probability=0.5)
    run_parallel([lambda: rotator(clients[0], KEYS[0]), lambda: rotator(clients[1], KEYS[1]),
                  lambda: reader(clients[2]), lambda: reader(clients[3])],
                 timeout=SECONDS + 120)
    proxy.heal()
    time.sleep(DELAY)  # replies still held drain before the counts are taken
    monitor.stop()
    index_delta = cluster.index() - index0

    during = [o for o in history.select("rotate") if o.invoke >= fault_from]
    acked, unknown = sum(o.ok for o in during), sum(o.unknown for o in during)
    bound = per_rotation * (acked + unknown)
    index_msgs = [] if index_delta <= bound else [
        f"write index grew by {index_delta}: {per_rotation:g} per rotation x ({acked} "
        f"acknowledged + {unknown} unknown) allows {bound:g}; "
        f"{index_delta - bound:g} writes applied again"]
    writes = monitor.script_writes("/policy/tmo-")
    replays = [f"the same SET ran {n} times: {w[:90]}..." for w, n in Counter(writes).items()
               if n > 1]
    bad_status = [f"{o.kind} {o.key} op {o.id}: HTTP {o.status} {o.error[:80]}"
                  for o in history.select() if o.kind in ("rotate", "encrypt")
                  and not o.ok and o.status != 503]

    restart = restart_all_or_report(cluster)
    applied_msgs = []
    for key in KEYS:
        rot = [o for o in during if o.key == key]
        k_acked, k_unknown = sum(o.ok for o in rot), sum(o.unknown for o in rot)
        r = cluster.request(0, "GET", f"transit/keys/{key}")
        applied = (r.json()["data"]["latest_version"] - initial[key]
                   if r.status_code == 200 else -1)
        if not k_acked <= applied <= k_acked + k_unknown:
            applied_msgs.append(f"{key}: {applied} rotations applied, {k_acked} acknowledged "
                                f"+ {k_unknown} unknown")
    report = verify(cluster, history, "d: storage replies delayed past the timeout",
                    keys=KEYS, exportable=True, started=started,
                    extra={"restart": restart, "index_beyond_acked_plus_unknown": index_msgs,
                           "writes_applied_twice": replays, "unknown_not_503": bad_status,
                           "latest_version_decreased": check_monotonic_versions(history),
                           "applied_outside_bounds": applied_msgs},
                    metrics={"delayed_connections": proxy.stats.delayed_connections,
                             "index_delta": index_delta, "index_per_rotation": per_rotation,
                             "policy_sets_run": len(writes)})
    report.emit()
    assert proxy.stats.delayed_connections > 0, "the fault never fired"
    assert report.clean, report.details()
