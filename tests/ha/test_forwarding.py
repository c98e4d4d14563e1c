"""Request forwarding from standbys to the active node, redirects, and the no-leader 503."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.ha.util import HACluster, poll


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_writes_through_standbys_land_on_the_active(cluster: HACluster) -> None:
    active = cluster.active_index()
    assert active is not None
    s1, s2 = cluster.standbys(active)
    clients = [cluster.client(i) for i in range(len(cluster.nodes))]

    # Mounts, keys and secrets created through standbys.
    clients[s1].sys.enable_secrets_engine("transit", path="transit")
    clients[s2].sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    clients[s1].secrets.transit.create_key("k1", mount_point="transit")
    clients[s2].secrets.kv.v2.create_or_update_secret(
        "app/db", secret={"password": "s3cret"}, mount_point="secret")

    # The active node has them (they were written by it, not by the standbys).
    mounts = clients[active].sys.list_mounted_secrets_engines()["data"]
    assert mounts["transit/"]["type"] == "transit"
    assert mounts["secret/"]["options"]["version"] == "2"
    key = clients[active].secrets.transit.read_key("k1", mount_point="transit")["data"]
    assert key["latest_version"] == 1
    secret = clients[active].secrets.kv.v2.read_secret_version(
        "app/db", mount_point="secret", raise_on_deleted_version=True)
    assert secret["data"]["data"] == {"password": "s3cret"}

    # Reads and writes work through every node, in every combination.
    texts: list[tuple[str, bytes]] = []
    for i, c in enumerate(clients):
        pt = f"from node {i}".encode()
        ct = c.secrets.transit.encrypt_data("k1", b64(pt), mount_point="transit")
        texts.append((ct["data"]["ciphertext"], pt))
        c.secrets.kv.v2.create_or_update_secret(
            f"node/{i}", secret={"i": str(i)}, mount_point="secret")
    clients[s2].secrets.transit.rotate_key("k1", mount_point="transit")
    for c in clients:
        for ct, pt in texts:
            out = c.secrets.transit.decrypt_data("k1", ct, mount_point="transit")
            assert base64.b64decode(out["data"]["plaintext"]) == pt
        for i in range(len(clients)):
            got = c.secrets.kv.v2.read_secret_version(
                f"node/{i}", mount_point="secret", raise_on_deleted_version=True)
            assert got["data"]["data"] == {"i": str(i)}
        assert c.secrets.transit.read_key("k1", mount_point="transit")["data"][
            "latest_version"] == 2

    # A forwarded answer is the active's, verbatim: same status, same envelope.
    r = cluster.request(s1, "GET", "transit/keys/k1")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert r.json()["data"]["name"] == "k1"
    r = cluster.request(s1, "GET", "transit/keys/missing")
    assert r.status_code == 404
    r = cluster.request(s2, "GET", "transit/keys/k1", token="not-a-token")
    assert r.status_code == 403 and r.json() == {"errors": ["permission denied"]}


def test_no_request_forwarding_header_redirects_with_307(cluster: HACluster) -> None:
    active = cluster.active_index()
    assert active is not None
    standby = cluster.standbys(active)[0]
    cluster.client(active).sys.enable_secrets_engine("transit", path="transit")
    hdr = {"X-Vault-No-Request-Forwarding": "true"}

    r = cluster.request(standby, "GET", "transit/keys/k%2Fx", params={"list": "true", "a": "1"},
                        headers=hdr)
    assert r.status_code == 307, r.text
    assert r.headers["Location"] == (
        f"{cluster.nodes[active].addr}/v1/transit/keys/k%2Fx?list=true&a=1")
    assert r.content == b""

    r = cluster.request(standby, "POST", "transit/keys/redirected", json={"type": "ed25519"},
                        headers=hdr)
    assert r.status_code == 307
    assert r.headers["Location"] == f"{cluster.nodes[active].addr}/v1/transit/keys/redirected"
    # Nothing was done on the standby's side; following the redirect (307 keeps method and
    # body) creates the key on the active.
    assert cluster.request(active, "GET", "transit/keys/redirected").status_code == 404
    followed = cluster.sessions[standby].post(
        f"{cluster.nodes[standby].addr}/v1/transit/keys/redirected", json={"type": "ed25519"},
        headers={**hdr, "X-Vault-Token": cluster.root_token}, timeout=30)
    assert followed.status_code in (200, 204), followed.text
    assert followed.history and followed.history[0].status_code == 307
    assert cluster.request(active, "GET", "transit/keys/redirected").json()["data"][
        "type"] == "ed25519"

    # The header on the active node itself changes nothing.
    r = cluster.request(active, "GET", "transit/keys/redirected", headers=hdr)
    assert r.status_code == 200
    # Status endpoints are never forwarded nor redirected.
    r = cluster.request(standby, "GET", "sys/health", headers=hdr)
    assert r.status_code == 429


def test_no_active_node_gives_503(cluster: HACluster) -> None:
    """Deterministic "no leader": the lock is handed (in Redis) to a holder that has a live
    Redis connection but never advertised itself, so nobody may take over and nobody can be
    forwarded to. Closing that connection lets the cluster elect a leader again."""
    active = cluster.active_index()
    assert active is not None
    prefix = "transit"
    with cluster.redis_client(client_name="transit-ghost") as ghost:
        ghost.ping()  # the named connection exists from now on
        epoch = ghost.incr(f"{prefix}/core/epoch")
        assert ghost.set(f"{prefix}/core/lock", f"ghost:{epoch}", xx=True, px=120_000)

        # The old active's next renew fails: it steps down; nobody is active any more.
        poll(lambda: all(
            (h := cluster.health(n.index)) is not None and h[0] == 429 for n in cluster.nodes
        ), 10, "every node to be a standby")
        # Each answer takes up to ACTIVATION_WAIT (a holder that has not advertised itself
        # may be activating): ask the nodes at the same time.
        def no_leader(i: int) -> None:
            r = poll(lambda: (r := cluster.request(i, "GET", "sys/mounts", timeout=30))
                     .status_code == 503 and r, 30, f"503 from node {i}")
            assert r.json() == {"errors": ["no active Vault instance found"]}
            hdr = {"X-Vault-No-Request-Forwarding": "1"}
            r = cluster.request(i, "PUT", "sys/mounts/x", json={"type": "kv"}, headers=hdr,
                                timeout=30)
            assert r.status_code == 503
            assert r.json() == {"errors": ["no active Vault instance found"]}

        with ThreadPoolExecutor(len(cluster.nodes)) as pool:
            list(pool.map(no_leader, [n.index for n in cluster.nodes]))
        # Still nobody: the holder is alive as far as Redis can tell.
        time.sleep(cluster.lock_ttl / 2)
        assert cluster.active_index() is None
    # The ghost's connection is gone: a node takes over at once (holder_gone fast path).
    # The ghost's lock has 120 s to live: any polling limit well short of that proves the
    # lock was broken, not waited out (no stopwatch needed).
    cluster.wait_active(timeout=30)
    r = poll(lambda: (r := cluster.request(0, "GET", "sys/mounts")).status_code == 200 and r,
             10, "a mount listing through node 0")
    assert "sys/" in r.json()["data"]


def test_forwarding_stress(cluster: HACluster) -> None:
    """24 concurrent clients on the standbys for 10 s: encrypt, decrypt, rotate and key
    config changes. Every answer is a success (no 3xx, no 5xx), every ciphertext decrypts."""
    active = cluster.active_index()
    assert active is not None
    standbys = cluster.standbys(active)
    cluster.request(active, "POST", "sys/mounts/transit", json={"type": "transit"})
    keys = [f"stress-{i}" for i in range(4)]
    for k in keys:
        assert cluster.request(active, "POST", f"transit/keys/{k}").status_code in (200, 204)

    duration, workers = 10.0, 24
    stop_at = time.monotonic() + duration
    statuses: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []
    made: list[tuple[str, str, bytes]] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        node = cluster.nodes[standbys[w % len(standbys)]]
        session = requests.Session()
        session.headers["X-Vault-Token"] = cluster.root_token
        base = f"{node.addr}/v1/transit"
        n = 0
        while time.monotonic() < stop_at and n < 5000:
            n += 1
            key = keys[(w + n) % len(keys)]
            pt = f"w{w}-{n}-{uuid.uuid4().hex[:6]}".encode()
            op = "encrypt+decrypt"
            try:
                r = session.post(f"{base}/encrypt/{key}", json={"plaintext": b64(pt)},
                                 timeout=30, allow_redirects=False)
                results = [("encrypt", r)]
                if r.status_code == 200:
                    ct = r.json()["data"]["ciphertext"]
                    r2 = session.post(f"{base}/decrypt/{key}", json={"ciphertext": ct},
                                      timeout=30, allow_redirects=False)
                    results.append(("decrypt", r2))
                    if r2.status_code == 200 and base64.b64decode(
                            r2.json()["data"]["plaintext"]) != pt:
                        raise AssertionError(f"decrypt of {ct} gave the wrong plaintext")
                    with lock:
                        made.append((key, ct, pt))
                if n % 10 == 0:
                    op = "rotate"
                    results.append((op, session.post(f"{base}/keys/{key}/rotate", timeout=30,
                                                     allow_redirects=False)))
                elif n % 10 == 5:
                    op = "config"
                    results.append((op, session.post(
                        f"{base}/keys/{key}/config", timeout=30, allow_redirects=False,
                        json={"deletion_allowed": n % 20 == 5,
                              "auto_rotate_period": "0" if n % 3 else "24h"})))
            except (requests.RequestException, AssertionError, ValueError) as exc:
                with lock:
                    failures.append(f"worker {w} {op}: {exc!r}")
                continue
            with lock:
                for name, resp in results:
                    statuses[(name, resp.status_code)] += 1
                    if resp.status_code not in (200, 204):
                        failures.append(f"worker {w} {name}: {resp.status_code} "
                                        f"{resp.headers.get('Location', '')} {resp.text[:200]}")

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 60)
    assert not any(t.is_alive() for t in threads), "workers did not finish"
    total = sum(statuses.values())
    print(f"stress: {total} requests in {duration:.0f}s through standbys: {dict(statuses)}")
    assert not failures, f"{len(failures)} failures, first: {failures[:5]}"
    assert statuses[("rotate", 200)] + statuses[("rotate", 204)] > 0
    assert statuses[("config", 200)] + statuses[("config", 204)] > 0
    assert total > 200
    # Everything still decrypts afterwards, on the active node (a sample of each key).
    for key, ct, pt in made[:: max(1, len(made) // 200)]:
        r = cluster.request(active, "POST", f"transit/decrypt/{key}", json={"ciphertext": ct})
        assert r.status_code == 200, r.text
        assert base64.b64decode(r.json()["data"]["plaintext"]) == pt


