"""sys/health, sys/leader, sys/ha-status and sys/seal on an HA cluster."""

from __future__ import annotations

import socket
import time

import orjson

from tests.ha.util import HACluster, poll


def health(cluster: HACluster, i: int, method: str = "GET", **params: str) -> tuple[int, bytes]:
    r = cluster.sessions[i].request(method, f"{cluster.nodes[i].addr}/v1/sys/health",
                                    params=params, timeout=10, allow_redirects=False)
    return r.status_code, r.content


def test_health_codes_and_overrides(cluster: HACluster) -> None:
    active = cluster.active_index()
    assert active is not None
    standby = cluster.standbys(active)[0]
    status, body = health(cluster, active)
    doc = orjson.loads(body)
    assert status == 200
    assert doc["standby"] is False and doc["sealed"] is False and doc["initialized"] is True
    assert doc["performance_standby"] is False
    status, body = health(cluster, standby)
    doc = orjson.loads(body)
    assert status == 429
    assert doc["standby"] is True and doc["sealed"] is False
    assert doc["cluster_name"] == "transit-local"

    # (node, params) -> expected status; GET and HEAD agree, HEAD has no body.
    cases: list[tuple[int, dict[str, str], int]] = [
        (standby, {"standbyok": "true"}, 200),
        (standby, {"standbyok": "1"}, 200),
        (standby, {"standbyok": "t"}, 200),
        (standby, {"standbyok": "false"}, 429),
        (standby, {"standbyok": "true", "activecode": "202"}, 202),
        (standby, {"standbycode": "299"}, 299),
        (standby, {"standbycode": "200"}, 200),
        (standby, {"perfstandbyok": "true"}, 429),  # a plain standby is not a perf standby
        (standby, {"performancestandbycode": "250"}, 429),
        (standby, {"activecode": "201"}, 429),
        (standby, {"sealedcode": "299", "uninitcode": "299"}, 429),
        (active, {"activecode": "201"}, 201),
        (active, {"standbycode": "299", "standbyok": "true"}, 200),
        (active, {"sealedcode": "299", "drsecondarycode": "299"}, 200),
        (standby, {"standbyok": "maybe"}, 400),
        (standby, {"standbycode": "x"}, 400),
        (active, {"activecode": "2.5"}, 400),
    ]
    for node, params, want in cases:
        got, body = health(cluster, node, "GET", **params)
        assert got == want, (node == active, params, got, body)
        if want == 400:
            assert orjson.loads(body) == {"errors": []}
        else:
            assert orjson.loads(body)["standby"] is (node != active)
        got, body = health(cluster, node, "HEAD", **params)
        assert (got, body) == (want, b""), (node == active, params, "HEAD")

    # Never forwarded: the standby answers for itself, even with a token or the no-forward
    # header.
    r = cluster.request(standby, "GET", "sys/health", headers={
        "X-Vault-No-Request-Forwarding": "1"})
    assert r.status_code == 429


def test_health_204_override_keeps_the_connection(cluster: HACluster) -> None:
    active = cluster.active_index()
    assert active is not None
    port = cluster.nodes[active].api_port
    # Two pipelined requests on one connection: both must be answered.
    req = (b"GET /v1/sys/health?activecode=204 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(req)
        try:
            while data.count(b"HTTP/1.1 ") < 2 or not data.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert data.startswith(b"HTTP/1.1 204 "), data[:200]
    assert b"HTTP/1.1 200 " in data, data


def test_leader_on_active_and_standby(cluster: HACluster) -> None:
    active = cluster.active_index()
    assert active is not None
    a = cluster.nodes[active]
    r = cluster.request(active, "GET", "sys/leader", token="")
    assert r.status_code == 200
    doc = r.json()
    assert doc["ha_enabled"] is True and doc["is_self"] is True
    assert doc["leader_address"] == a.addr
    assert doc["leader_cluster_address"] == a.cluster_addr
    assert doc["active_time"] != "0001-01-01T00:00:00Z"
    assert doc["performance_standby"] is False
    for s in cluster.standbys(active):
        r = cluster.request(s, "GET", "sys/leader", token="")
        assert r.status_code == 200
        doc = r.json()
        assert doc["ha_enabled"] is True and doc["is_self"] is False
        assert doc["leader_address"] == a.addr
        assert doc["leader_cluster_address"] == a.cluster_addr


def test_ha_status_lists_the_standbys(cluster: HACluster) -> None:
    active = cluster.active_index()
    assert active is not None
    standbys = cluster.standbys(active)

    def listed(via: int) -> list[dict[str, object]] | None:
        r = cluster.request(via, "GET", "sys/ha-status")
        assert r.status_code == 200, r.text
        nodes = r.json()["data"]["nodes"]
        return nodes if len(nodes) == len(cluster.nodes) else None

    # Standbys echo every 5 s; the list fills up within one echo period (bounded at 12 s).
    nodes = poll(lambda: listed(active), 12, "every standby in sys/ha-status", interval=0.25)
    by_addr = {n["api_address"]: n for n in nodes}
    assert set(by_addr) == {n.addr for n in cluster.nodes}
    assert by_addr[cluster.nodes[active].addr]["active_node"] is True
    assert by_addr[cluster.nodes[active].addr]["last_echo"] is None
    for s in standbys:
        entry = by_addr[cluster.nodes[s].addr]
        assert entry["active_node"] is False
        assert entry["cluster_address"] == cluster.nodes[s].cluster_addr
        assert isinstance(entry["last_echo"], str) and entry["last_echo"].endswith("Z")
    # Forwarded from a standby: the same answer (the active node's), mirrored at top level.
    r = cluster.request(standbys[0], "GET", "sys/ha-status")
    assert r.status_code == 200
    assert len(r.json()["nodes"]) == len(cluster.nodes)
    assert r.json()["data"]["nodes"] == r.json()["nodes"]
    # Needs a token.
    assert cluster.request(active, "GET", "sys/ha-status", token="").status_code == 403


def test_seal_on_standby_is_refused_and_on_active_hands_over(cluster: HACluster) -> None:
    active = cluster.active_index()
    assert active is not None
    standby = cluster.standbys(active)[0]
    cluster.client(active).sys.enable_secrets_engine("kv", path="secret",
                                                     options={"version": "2"})
    r = cluster.request(standby, "PUT", "sys/seal")
    assert r.status_code == 500
    assert r.json() == {
        "errors": ["vault cannot seal when in standby mode; please restart instead"]}
    assert health(cluster, standby)[0] == 429  # still unsealed

    t0 = time.monotonic()
    r = cluster.request(active, "PUT", "sys/seal")
    assert r.status_code == 204, r.text
    new = cluster.wait_active(timeout=cluster.lock_ttl + 10, exclude=(active,))
    took = time.monotonic() - t0
    print(f"seal of the active: node {new} active after {took:.2f}s")
    # The sealed node says so (503, or the sealedcode override) and keeps out of the race.
    status, body = health(cluster, active)
    assert status == 503
    doc = orjson.loads(body)
    assert doc["sealed"] is True and doc["standby"] is True
    assert health(cluster, active, sealedcode="299")[0] == 299
    assert health(cluster, active, standbyok="true")[0] == 503
    r = cluster.request(active, "GET", "secret/data/x")
    assert r.status_code == 503 and r.json() == {"errors": ["Vault is sealed"]}
    # The new active serves; the remaining standby forwards to it.
    other = next(i for i in cluster.standbys(new) if i != active)
    r = poll(lambda: (r := cluster.request(other, "POST", "secret/data/after-seal",
                                           json={"data": {"v": "1"}})).status_code == 200
             and r, 10, "a write through the remaining standby")
    assert cluster.request(new, "GET", "secret/data/after-seal").json()["data"]["data"] == {
        "v": "1"}
    time.sleep(1.5)  # well past the 1 s retry: the sealed node never takes the lock back
    assert cluster.active_index() == new
    # A restart unseals it (static seal) and it joins as a standby.
    cluster.restart(active)
    assert health(cluster, active)[0] == 429
    assert cluster.active_index() == new
