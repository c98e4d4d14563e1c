"""A standby whose replica lags behind `sys/init` (issue 15, item 1): becoming a standby
never writes; what has not replicated yet is waited for with backoff while the node forwards
and says why; once the replica catches up the node serves as a performance standby."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.fault.harness import FaultCluster
from tests.ha.util import poll

LAG = 2.5  # seconds every replication chunk is held back on its way to the replica
# (durable writes — sys/init's among them — WAIT for the replica: replication_timeout 10s)


class LaggingCluster(FaultCluster):
    """Every standby reads from a replica that receives everything LAG seconds late, from
    before `sys/init` on: its first unseal finds none of what init wrote."""

    def _write_configs(self) -> None:  # Redis is up and the replica linked by now
        for proxy in self.replication_proxies.values():
            proxy.delay_replies(LAG)
        time.sleep(1.5)  # the replica's next REPLCONF ACK (1/s) poisons its link
        super()._write_configs()


@pytest.mark.timeout(120)
def test_standby_waits_for_state_its_replica_lacks(
        make_cluster: Callable[..., FaultCluster], tmp_path: object) -> None:
    c = LaggingCluster(tmp_path / "lag", nodes=3, replicas=1, workers=2,  # type: ignore[operator]
                       read_replica=True, replication_proxies=True, perf_standby=True,
                       seal="shamir", storage_options={"replication_timeout": "10s"})
    try:
        # wait_ready accepts plain standbys: right after unseal they cannot load yet
        c.up()
        active = c.wait_active(timeout=10)
        standbys = c.standbys(active)

        def why() -> bool:  # the lagging standbys say why they do not serve yet
            return all("cannot load state for performance standby mode yet"
                       in c.nodes[i].log_path.read_text(errors="replace") for i in standbys)

        poll(why, 10, "standbys logging why they cannot load yet")
        assert all(c.health(i)[0] == 429 for i in standbys), [c.health(i) for i in standbys]

        def serving() -> bool:
            for i in standbys:
                h = c.health(i)
                if h is None or h[0] != 473:
                    return False
                if c.request(i, "GET", "auth/token/lookup-self").status_code != 200:
                    return False
            return True

        poll(serving, 15, "every standby serving as a performance standby")
        for proxy in c.replication_proxies.values():
            proxy.heal()
        for n in c.nodes:
            text = n.log_path.read_text(errors="replace")
            assert "on a performance standby" not in text, text
        # a write on the active is served by a standby once its replica has it
        r = c.request(active, "POST", "sys/mounts/transit", json={"type": "transit"})
        assert r.status_code == 204, r.text
        r = c.request(active, "POST", "transit/keys/k")
        assert r.status_code in (200, 204), r.text
        poll(lambda: c.request(standbys[0], "POST", "transit/encrypt/k",
                               json={"plaintext": "aGk="}).status_code == 200 or None,
             15, "encrypt on a standby")
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.down(timeout=5.0)
