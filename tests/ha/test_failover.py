"""Failover: step-down, kill -9 of the active under load, SIGSTOP of the active past the
lock TTL. Afterwards every acknowledged write is present and every ciphertext decrypts."""

from __future__ import annotations

import base64
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from tests.ha.util import HACluster, poll
from transit.cluster.ha import HAController

# The stepped-down node sits out HAController's cooldown (not configurable from the server
# configuration; Vault's is also 10 s).
COOLDOWN = float(HAController.__init__.__kwdefaults__["cooldown"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def forwarding_reaches(cluster: HACluster, via: int, active: int, timeout: float = 10.0) -> int:
    """Poll a forwarded read (sys/ha-status, answered by the active) through `via` until it
    names `active` as the active node; returns how many non-matching answers came first (a
    standby re-reads the lock holder every 2.5 s, so it can briefly aim at the old one)."""
    misses = 0

    def check() -> bool:
        nonlocal misses
        r = cluster.request(via, "GET", "sys/ha-status", timeout=5)
        if r.status_code == 200:
            nodes = [n for n in r.json()["data"]["nodes"] if n["active_node"]]
            if [n["api_address"] for n in nodes] == [cluster.nodes[active].addr]:
                return True
        misses += 1
        return False

    poll(check, timeout, f"node {via} to forward to node {active}")
    return misses


def setup_mounts(cluster: HACluster, i: int) -> None:
    c = cluster.client(i)
    c.sys.enable_secrets_engine("transit", path="transit")
    c.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    c.secrets.transit.create_key("k", mount_point="transit")
    c.secrets.transit.create_key("r", mount_point="transit")


def test_step_down_six_times(cluster: HACluster) -> None:
    active = cluster.active_index()
    assert active is not None
    cluster.client(active).sys.enable_secrets_engine("kv", path="secret",
                                                     options={"version": "2"})
    stepped_at: dict[int, float] = {}
    seen = [active]
    timings: list[tuple[float, float, int]] = []
    for round_ in range(6):
        standbys = cluster.standbys(active)
        # At least one standby must be out of its cooldown, or nobody can take over.
        ready_at = min(stepped_at.get(i, float("-inf")) + COOLDOWN + 0.2 for i in standbys)
        pause = ready_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # the cooldown is a fixed 10 s: nothing to poll for
        # Even rounds on the active itself, odd rounds forwarded through a standby.
        via = active if round_ % 2 == 0 else standbys[round_ % len(standbys)]
        t0 = time.monotonic()
        cluster.client(via).sys.step_down()
        stepped_at[active] = t0
        new = cluster.wait_active(timeout=COOLDOWN + 5, exclude=(active,))
        took = time.monotonic() - t0
        assert new != active
        # The old active is a plain standby now.
        poll(lambda a=active: (h := cluster.health(a)) is not None and h[0] == 429,
             5, f"node {active} to report standby")
        # Forwarding from every standby reaches the new active; writes through them work.
        misses = 0
        for s in cluster.standbys(new):
            misses += forwarding_reaches(cluster, s, new)
            r = cluster.request(s, "POST", f"secret/data/round-{round_}-{s}",
                                json={"data": {"by": str(s)}})
            assert r.status_code == 200, r.text
        timings.append((round(took, 2), round(time.monotonic() - t0, 2), misses))
        active = new
        seen.append(new)
    print(f"step-down rounds (takeover s, until every standby forwards s, stale answers): "
          f"{timings}; actives {seen}")
    assert len(set(seen)) == 3  # everyone got a turn
    c = cluster.client(active)
    for round_ in range(6):
        keys = c.secrets.kv.v2.list_secrets("", mount_point="secret")["data"]["keys"]
        assert sum(k.startswith(f"round-{round_}-") for k in keys) == 2


@dataclass
class Load:
    """A bounded background client on one node: encrypts, KV writes and key rotations;
    records only what was acknowledged (2xx)."""

    cluster: HACluster
    node: int
    max_ops: int = 3000
    max_seconds: float = 60.0
    ciphertexts: list[tuple[str, bytes]] = field(default_factory=list)
    kv: dict[str, str] = field(default_factory=dict)
    rotations: int = 0
    errors: list[str] = field(default_factory=list)
    acks: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        s = requests.Session()
        s.headers["X-Vault-Token"] = self.cluster.root_token
        base = f"{self.cluster.nodes[self.node].addr}/v1"
        deadline = time.monotonic() + self.max_seconds
        for n in range(self.max_ops):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            try:
                if n % 10 == 9:
                    r = s.post(f"{base}/transit/keys/r/rotate", timeout=10,
                               allow_redirects=False)
                    if r.status_code in (200, 204):
                        self.rotations += 1
                elif n % 5 == 4:
                    value = f"v{n}"
                    r = s.post(f"{base}/secret/data/load/{n}", json={"data": {"v": value}},
                               timeout=10, allow_redirects=False)
                    if r.status_code in (200, 204):
                        self.kv[f"load/{n}"] = value
                else:
                    pt = f"plaintext {n}".encode()
                    r = s.post(f"{base}/transit/encrypt/k", json={"plaintext": b64(pt)},
                               timeout=10, allow_redirects=False)
                    if r.status_code == 200:
                        self.ciphertexts.append((r.json()["data"]["ciphertext"], pt))
                if r.status_code in (200, 204):
                    self.acks += 1
                else:
                    self.errors.append(f"{r.status_code} {r.text[:80]}")
                    time.sleep(0.02)
            except requests.RequestException as exc:
                self.errors.append(type(exc).__name__)
                time.sleep(0.02)

    def verify(self, cluster: HACluster, i: int) -> None:
        c = cluster.client(i)
        for ct, pt in self.ciphertexts:
            out = c.secrets.transit.decrypt_data("k", ct, mount_point="transit")
            assert base64.b64decode(out["data"]["plaintext"]) == pt
        for path, value in self.kv.items():
            got = c.secrets.kv.v2.read_secret_version(path, mount_point="secret",
                                                      raise_on_deleted_version=True)
            assert got["data"]["data"] == {"v": value}, path
        latest = c.secrets.transit.read_key("r", mount_point="transit")["data"]["latest_version"]
        assert latest >= 1 + self.rotations


def test_kill_9_of_the_active_under_load(cluster: HACluster) -> None:
    old = cluster.active_index()
    assert old is not None
    setup_mounts(cluster, old)
    via = cluster.standbys(old)[0]
    load = Load(cluster, via)
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        poll(lambda: load.acks >= 30, 20, "load before the kill", interval=0.01)
        before = load.acks
        t0 = time.monotonic()
        cluster.kill(old, signal.SIGKILL)
        new = cluster.wait_active(timeout=cluster.lock_ttl + 10, exclude=(old,))
        takeover = time.monotonic() - t0
        # The new active accepts writes, directly and through the load's standby.
        r = cluster.request(new, "POST", "secret/data/after-kill", json={"data": {"v": "1"}})
        assert r.status_code == 200, r.text
        poll(lambda: load.acks >= before + 30, 20, "load to continue after the takeover",
             interval=0.01)
    finally:
        load.stop.set()
        thread.join(30)
    assert not thread.is_alive()
    print(f"kill -9: new active node {new} after {takeover:.2f}s; {load.acks} acknowledged; "
          f"answers during failover: {dict(Counter(load.errors))}")
    assert takeover < cluster.lock_ttl + 2
    load.verify(cluster, new)
    got = cluster.client(new).secrets.kv.v2.read_secret_version(
        "after-kill", mount_point="secret", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"v": "1"}
    # The killed node comes back as a standby and sees everything.
    cluster.restart(old)
    assert cluster.active_index() == new
    load.verify(cluster, old)


def test_sigstop_of_the_active_past_the_ttl(cluster: HACluster) -> None:
    old = cluster.active_index()
    assert old is not None
    setup_mounts(cluster, old)
    c_old = cluster.client(old)
    for n in range(5):
        c_old.secrets.kv.v2.create_or_update_secret(f"before/{n}", secret={"v": str(n)},
                                                    mount_point="secret")
    c_old.secrets.transit.rotate_key("r", mount_point="transit")
    ct = c_old.secrets.transit.encrypt_data("k", b64(b"before"), mount_point="transit")[
        "data"]["ciphertext"]

    cluster.kill(old, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        new = cluster.wait_active(timeout=cluster.lock_ttl + 10, exclude=(old,))
        takeover = time.monotonic() - t0
        r = cluster.request(new, "POST", "secret/data/after-stop", json={"data": {"v": "1"}})
        assert r.status_code == 200, r.text

        # Requests sent to the paused old active wait in its socket; it wakes up to them.
        late: dict[str, requests.Response | Exception] = {}

        def send_late(name: str, method: str, path: str, body: dict[str, object]) -> None:
            try:
                late[name] = requests.request(
                    method, f"{cluster.nodes[old].addr}/v1/{path}", json=body, timeout=30,
                    headers={"X-Vault-Token": cluster.root_token}, allow_redirects=False)
            except requests.RequestException as exc:
                late[name] = exc

        threads = [
            threading.Thread(target=send_late, args=(
                "kv", "POST", "secret/data/late-queued", {"data": {"v": "late"}})),
            threading.Thread(target=send_late, args=(
                "rotate", "POST", "transit/keys/r/rotate", {})),
        ]
        for t in threads:
            t.start()
        time.sleep(0.3)  # let the requests reach the paused process's socket
    finally:
        cluster.kill(old, signal.SIGCONT)
    # And one sent right after it resumed.
    send_late("kv-after-cont", "POST", "secret/data/late-after-cont", {"data": {"v": "late"}})
    for t in threads:
        t.join(40)
    assert not any(t.is_alive() for t in threads)
    # Soon after, it reports itself a standby.
    t1 = time.monotonic()
    poll(lambda: (h := cluster.health(old)) is not None and h[0] == 429, 10,
         "the resumed node to report standby")
    to_standby = time.monotonic() - t1
    outcome = {k: (v.status_code if isinstance(v, requests.Response) else repr(v))
               for k, v in late.items()}
    print(f"SIGSTOP: new active node {new} after {takeover:.2f}s (lock_ttl "
          f"{cluster.lock_ttl}s); resumed node standby {to_standby:.2f}s after SIGCONT; "
          f"late requests: {outcome}")
    assert takeover > cluster.lock_ttl * 0.5  # it had to wait for the lock to expire

    c_new = cluster.client(new)
    # Whatever the resumed node acknowledged is on the new active (it can only have been
    # forwarded there); whatever it refused is absent.
    for name, path in (("kv", "late-queued"), ("kv-after-cont", "late-after-cont")):
        resp = late[name]
        assert isinstance(resp, requests.Response), resp
        assert resp.status_code in (200, 500, 503, 307), (name, resp.status_code, resp.text)
        r = cluster.request(new, "GET", f"secret/data/{path}")
        if resp.status_code == 200:
            assert r.status_code == 200 and r.json()["data"]["data"] == {"v": "late"}, name
    latest = c_new.secrets.transit.read_key("r", mount_point="transit")["data"]["latest_version"]
    rotate = late["rotate"]
    assert isinstance(rotate, requests.Response)
    assert latest == (3 if rotate.ok else 2), (rotate.status_code, rotate.text, latest)
    # Nothing acknowledged before the pause is missing.
    for n in range(5):
        got = c_new.secrets.kv.v2.read_secret_version(f"before/{n}", mount_point="secret",
                                                      raise_on_deleted_version=True)
        assert got["data"]["data"] == {"v": str(n)}
    assert base64.b64decode(c_new.secrets.transit.decrypt_data(
        "k", ct, mount_point="transit")["data"]["plaintext"]) == b"before"
    assert cluster.active_index() == new
