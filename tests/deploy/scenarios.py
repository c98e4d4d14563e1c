"""Failover under load through HAProxy: encrypt clients on the reads frontend, one writer
(key rotations) on the writes frontend, all recorded in a fault-harness History; a fault in
the middle; the longest gaps without an acknowledged write / encrypt. Used by the tests and
by bench/deploy_failover.py."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.deploy.cluster import DeployCluster, ProxyClient, first_ok_after, longest_gap
from tests.fault.harness import History, bounded

ENC_KEY, WRITE_KEY = "enc", "writes"


@dataclass
class Outcome:
    scenario: str
    history: History
    fault_at: float
    stopped_at: float
    info: dict[str, Any] = field(default_factory=dict)

    def ops(self, kind: str) -> list[Any]:
        return self.history.select(kind)

    @property
    def write_gap(self) -> float:
        return longest_gap(self.ops("rotate"), self.fault_at, self.stopped_at)

    @property
    def encrypt_gap(self) -> float:
        return longest_gap(self.ops("encrypt"), self.fault_at, self.stopped_at)

    @property
    def writes_resumed_after(self) -> float | None:
        """Seconds from the fault to the first write acknowledged after it."""
        t = first_ok_after(self.ops("rotate"), self.fault_at)
        return None if t is None else t - self.fault_at

    def counts(self) -> dict[str, dict[int, int]]:
        return self.history.statuses()

    def summary(self) -> str:
        resumed = self.writes_resumed_after
        return (f"[{self.scenario}] write gap {self.write_gap:.2f}s, encrypt gap "
                f"{self.encrypt_gap:.2f}s, first write acknowledged "
                f"{'never' if resumed is None else f'{resumed:.2f}s'} after the fault; "
                f"statuses {self.counts()}; {self.info}")


def prepare(cluster: DeployCluster) -> None:
    """Mount transit and create both keys, through HAProxy's writes frontend."""
    r = cluster.via("write", "POST", "sys/mounts/transit", json={"type": "transit"})
    assert r.status_code in (204, 400), r.text  # 400: mounted by an earlier scenario
    for key in (ENC_KEY, WRITE_KEY):
        r = cluster.via("write", "POST", f"transit/keys/{key}")
        assert r.status_code in (200, 204), r.text


def under_load(cluster: DeployCluster, scenario: str, fault: Callable[[], dict[str, Any]],
               done: Callable[[History, float], bool], *, settle: float = 1.5,
               budget: float = 40.0, encrypt_clients: int = 3) -> Outcome:
    """Run the clients, inject `fault` after `settle` seconds, stop once `done(history,
    fault_at)` holds or `budget` seconds have passed. Every loop is bounded in count and
    time."""
    history = History()
    stop = threading.Event()

    def encrypts(c: ProxyClient) -> None:
        for _ in bounded(50_000, budget):
            if stop.is_set():
                return
            c.encrypt(ENC_KEY)
            time.sleep(0.005)  # ~100 req/s per client: room for the cluster's own work

    def writes(c: ProxyClient) -> None:
        for _ in bounded(5_000, budget):
            if stop.is_set():
                return
            c.rotate(WRITE_KEY)
            time.sleep(0.02)

    clients = [ProxyClient(cluster, history, "read") for _ in range(encrypt_clients)]
    writer = ProxyClient(cluster, history, "write")
    threads = [threading.Thread(target=encrypts, args=(c,), daemon=True) for c in clients]
    threads.append(threading.Thread(target=writes, args=(writer,), daemon=True))
    for t in threads:
        t.start()
    info: dict[str, Any] = {}
    try:
        time.sleep(settle)
        fault_at = time.monotonic()
        info = fault()
        deadline = fault_at + budget
        while time.monotonic() < deadline and not done(history, fault_at):
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for c in [*clients, writer]:
            c.close()
    stopped_at = min(max(o.complete for o in history.select()), time.monotonic())
    return Outcome(scenario, history, fault_at, stopped_at, info)


def writes_back_for(seconds: float) -> Callable[[History, float], bool]:
    """Done once writes have been acknowledged again for `seconds` after the fault."""
    def done(history: History, fault_at: float) -> bool:
        oks = [o.complete for o in history.select("rotate") if o.ok and o.invoke >= fault_at]
        return bool(oks) and max(oks) - min(oks) >= seconds
    return done


def kill_active(cluster: DeployCluster, **kwargs: Any) -> Outcome:
    """kill -9 of the active node (its whole process group)."""
    active = cluster.wait_active()

    def fault() -> dict[str, Any]:
        cluster.kill(active, signal.SIGKILL)
        return {"killed_node": active}

    return under_load(cluster, "kill -9 of the active node", fault, writes_back_for(2.0),
                      **kwargs)


def redis_primary_failover(cluster: DeployCluster, **kwargs: Any) -> Outcome:
    """kill -9 of the Redis primary; Sentinel promotes a replica."""
    old = cluster.sentinel_primary()
    assert old is not None
    handle = cluster.redis_handle(old)
    promoted: dict[str, Any] = {}

    def fault() -> dict[str, Any]:
        cluster.kill_redis(handle)
        return {"killed_redis": old}

    writes_back = writes_back_for(2.0)

    def done(history: History, fault_at: float) -> bool:
        if "promoted_after" not in promoted:
            now = cluster.sentinel_primary()
            if now is not None and now != old:
                promoted.update(port=now, promoted_after=round(time.monotonic() - fault_at, 2))
        return "promoted_after" in promoted and writes_back(history, fault_at)

    out = under_load(cluster, "Redis primary failover (Sentinel)", fault, done, **kwargs)
    out.info.update(promoted)
    return out
