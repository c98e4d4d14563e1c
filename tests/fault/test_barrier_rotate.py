"""Scenario c: concurrent `sys/rotate` (barrier keyring terms) while keys and tokens are
created, then a restart: every acknowledged key and token is still readable, and the keyring
has exactly one new term per acknowledged rotation.

One node, 2 worker processes. 4 clients rotate the barrier key, 4 create exportable transit
keys (and encrypt under each), 4 create tokens; every client on its own connection, each loop
bounded in count and time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.fault.harness import (
    Client,
    FaultCluster,
    History,
    bounded,
    check_tokens,
    restart_all_or_report,
    run_parallel,
    verify,
)

SECONDS = 6.0
PER_CLIENT = 12


def test_barrier_rotate_while_writing(make_cluster: Callable[..., FaultCluster]) -> None:
    started = time.monotonic()
    cluster = make_cluster(nodes=1, workers=2)
    cluster.setup()
    history = History()
    term0 = cluster.request(0, "GET", "sys/key-status").json()["data"]["term"]

    def rotator(c: Client) -> None:
        for _ in bounded(PER_CLIENT, SECONDS):
            c.call("sys_rotate", "keyring", "POST", "sys/rotate")

    def keys(c: Client) -> None:
        for i in bounded(PER_CLIENT, SECONDS):
            name = f"bk-{c.id}-{i}"
            if c.create(name, exportable=True).ok:
                c.encrypt(name)

    def tokens(c: Client) -> None:
        for _ in bounded(PER_CLIENT, SECONDS):
            c.token_create(policies=["default"], ttl="1h")

    clients = [Client(cluster, history, 0) for _ in range(12)]
    roles = [rotator] * 4 + [keys] * 4 + [tokens] * 4
    run_parallel([lambda c=c, f=f: f(c) for c, f in zip(clients, roles, strict=True)],
                 timeout=SECONDS + 60)

    restart = restart_all_or_report(cluster)
    rotations = history.select("sys_rotate")
    acked = sum(o.ok for o in rotations)
    unknown = sum(o.unknown for o in rotations)
    term_msgs: list[str] = []
    r = cluster.request(0, "GET", "sys/key-status")
    term = r.json()["data"]["term"] if r.status_code == 200 else None
    if term is None or not (term0 + acked <= term <= term0 + acked + unknown):
        term_msgs.append(f"keyring term {term} after {acked} acknowledged (+{unknown} unknown) "
                         f"rotations from term {term0}: expected {term0 + acked}"
                         + (f"..{term0 + acked + unknown}" if unknown else ""))
    created = [o.key for o in history.select("create") if o.ok]
    report = verify(cluster, history, "c: sys/rotate while creating keys and tokens",
                    keys=created, exportable=True, started=started,
                    extra={"restart": restart, "keyring_terms_lost": term_msgs,
                           "tokens_lost": check_tokens(cluster, history)},
                    metrics={"barrier_rotations_acked": acked, "final_term": term})
    report.emit()
    assert acked >= 4 and created, report.summary()
    assert report.clean, report.details()
