"""Scenario h: one writer per entry beyond transit keys.

- duplicate node id: two `transit server` processes started with the same storage `node_id`
  on one Redis. At most one may ever act as the active node (sampled: never both answer
  `sys/health` 200 at once), and the history of a key rotated through both must be clean;
- 16 KV v2 writes with the same `cas` at once: at most one succeeds (20 rounds);
- 16 concurrent uses of a `num_uses=1` token: at most one succeeds (20 rounds);
- concurrent mount enables and tunes: every acknowledged enable and tune is there after a
  restart (3 rounds of 12 enables + 4 tunes of distinct mounts at once).

Every concurrent round is released by a `threading.Barrier`, each client on its own
connection (one node, 2 worker processes, so they race across processes).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.fault.harness import (
    Client,
    FaultCluster,
    History,
    bounded,
    make_report,
    restart_all_or_report,
    run_parallel,
    verify,
)
from tests.redis_fixtures import redis_available

CONCURRENT = 16
ROUNDS = 20


def at_once(n: int, fn: Callable[[int, requests.Session], int]) -> list[int]:
    """Run fn(i, session) in n threads released together; their statuses."""
    barrier = threading.Barrier(n)
    statuses = [0] * n
    sessions = [requests.Session() for _ in range(n)]

    def one(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            statuses[i] = fn(i, sessions[i])
        except requests.RequestException:
            statuses[i] = 0

    run_parallel([lambda i=i: one(i) for i in range(n)], timeout=90)
    for s in sessions:
        s.close()
    return statuses


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    """One node, 2 workers, transit and KV v2 mounted; shared by the cas and num_uses tests
    (neither restarts it)."""
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    c = FaultCluster(tmp_path_factory.mktemp("single") / "cluster", nodes=1, workers=2)
    c.up()
    try:
        c.check_aof()
        c.setup(kv="kv")
        yield c
    finally:
        c.down(timeout=5.0)


def test_duplicate_node_id(make_cluster: Callable[..., FaultCluster]) -> None:
    started = time.monotonic()
    cluster = make_cluster(nodes=1, workers=1)
    cluster.setup()
    history = History()
    assert Client(cluster, history, 0).create("dup", exportable=True).ok
    with cluster.rclient() as r:
        epoch0 = int(r.get("transit/core/epoch") or 0)
    twin = cluster.add_node(node_id=cluster.nodes[0].node_id)
    both_active: list[str] = []
    stop = threading.Event()

    def sampler() -> None:
        for _ in bounded(400, 30.0):
            if stop.is_set():
                return
            h = [cluster.health(i, timeout=0.5) for i in (0, twin)]
            if all(x is not None and x[0] == 200 for x in h):
                both_active.append(f"both processes answered sys/health 200 at "
                                   f"{time.monotonic() - started:.1f}s")
            time.sleep(0.05)

    def writer(c: Client) -> None:
        for _ in bounded(40, 6.0):
            if c.rotate("dup").ok:
                c.encrypt("dup")
            c.export("dup")

    sampling = threading.Thread(target=sampler, daemon=True)
    sampling.start()
    clients = [Client(cluster, history, twin if i % 2 else 0) for i in range(4)]
    run_parallel([lambda c=c: writer(c) for c in clients], timeout=90)
    stop.set()
    sampling.join(5)
    with cluster.rclient() as r:
        epoch1 = int(r.get("transit/core/epoch") or 0)
    per_process = {i: sum(o.ok for o in history.select("rotate") if o.node == i)
                   for i in (0, twin)}
    cluster.stop_node(twin)
    cluster.nodes.pop(twin)
    restart = restart_all_or_report(cluster)
    report = verify(cluster, history, "h: duplicate node id", keys=["dup"], exportable=True,
                    started=started,
                    extra={"restart": restart, "two_active": both_active},
                    metrics={"rotations_acked_per_process": per_process,
                             "epochs_taken": epoch1 - epoch0})
    report.emit()
    assert report.clean, report.details()


def test_kv_cas_at_most_one_success(node: FaultCluster) -> None:
    started = time.monotonic()
    history = History()
    admin = Client(node, history, 0)
    wins: list[str] = []
    for r in range(ROUNDS):
        path = f"kv/data/cas-{r}"
        first = admin.call("kv_put", path, "POST", path, {"data": {"v": "init"},
                                                          "options": {"cas": 0}})
        assert first.ok, first.error
        statuses = at_once(CONCURRENT, lambda i, s, path=path: s.post(
            f"{node.nodes[0].addr}/v1/{path}", headers={"X-Vault-Token": node.root_token},
            json={"data": {"v": i}, "options": {"cas": 1}}, timeout=30).status_code)
        for st in statuses:
            op = history.begin(-1, 0, "kv_cas", path, {})
            op.status, op.complete = st, op.invoke
        ok = sum(200 <= s < 300 for s in statuses)
        meta = node.request(0, "GET", f"kv/metadata/cas-{r}").json()["data"]
        if ok > 1 or meta["current_version"] != 1 + ok:
            wins.append(f"cas-{r}: {ok} of {CONCURRENT} writes with cas=1 succeeded; "
                        f"current_version {meta['current_version']}")
    report = make_report("h: 16 KV v2 writes with one cas value", history,
                         {"cas_winners_beyond_one": wins}, started=started)
    report.emit()
    assert report.clean, report.details()


def test_num_uses_token_used_once(node: FaultCluster) -> None:
    started = time.monotonic()
    history = History()
    admin = Client(node, history, 0)
    extra: list[str] = []
    for r in range(ROUNDS):
        op = admin.token_create(policies=["default"], num_uses=1, ttl="1h")
        token = op.result["token"]
        statuses = at_once(CONCURRENT, lambda i, s, token=token: s.get(
            f"{node.nodes[0].addr}/v1/auth/token/lookup-self",
            headers={"X-Vault-Token": token}, timeout=30).status_code)
        for st in statuses:
            use = history.begin(-1, 0, "token_use", f"round-{r}", {})
            use.status, use.complete = st, use.invoke
        ok = sum(s == 200 for s in statuses)
        if ok > 1:
            extra.append(f"round {r}: a num_uses=1 token was accepted {ok} times")
    report = make_report("h: 16 uses of a num_uses=1 token", history,
                         {"token_uses_beyond_one": extra}, started=started)
    report.emit()
    assert report.clean, report.details()


def test_concurrent_mount_enables_and_tunes(make_cluster: Callable[..., FaultCluster]) -> None:
    started = time.monotonic()
    node = make_cluster(nodes=1, workers=2)
    node.setup(kv="kv")
    history = History()
    admin = Client(node, history, 0)
    tuned = [f"tuned-{j}" for j in range(4)]
    for path in tuned:
        assert admin.call("mount", path, "POST", f"sys/mounts/{path}",
                          {"type": "transit"}).ok
    expected_ttl: dict[str, int] = {}
    for r in range(3):
        def one(i: int, s: requests.Session, r: int = r) -> int:
            c = Client(node, history, 0)
            c.session = s
            if i < 12:
                return c.call("mount", f"m-{r}-{i}", "POST", f"sys/mounts/m-{r}-{i}",
                              {"type": "transit"}).status
            ttl = 3600 * (r * 10 + i)
            op = c.call("tune", tuned[i - 12], "POST", f"sys/mounts/{tuned[i - 12]}/tune",
                        {"default_lease_ttl": f"{ttl}s"})
            if op.ok:
                expected_ttl[tuned[i - 12]] = ttl  # one tune per mount per round: the last
            return op.status

        at_once(CONCURRENT, one)
    restart = restart_all_or_report(node)
    missing: dict[str, list[int]] = defaultdict(list)  # what is missing -> on which connections
    connections = 4
    for k in range(connections):  # fresh connections: every worker answers
        r = requests.get(f"{node.nodes[0].addr}/v1/sys/mounts",
                         headers={"X-Vault-Token": node.root_token}, timeout=30)
        mounts = r.json()["data"]
        for gone in ("transit/", "kv/"):
            if gone not in mounts:
                missing[f"the {gone} mount (enabled at set-up) is missing"].append(k)
        for op in history.select("mount"):
            if op.ok and f"{op.key}/" not in mounts:
                missing[f"acknowledged mount {op.key}/ is missing"].append(k)
        for path, ttl in expected_ttl.items():
            got = mounts.get(f"{path}/", {}).get("config", {}).get("default_lease_ttl")
            if got != ttl:
                missing[f"{path}/ default_lease_ttl is {got}, the last acknowledged tune set "
                        f"{ttl}"].append(k)
    lost = [f"{what} (on {len(ks)} of {connections} connections)"
            for what, ks in sorted(missing.items())]
    report = make_report("h: concurrent mount enables and tunes", history,
                         {"restart": restart, "mounts_or_tunes_lost": lost},
                         started=started)
    report.emit()
    assert report.clean, report.details()

