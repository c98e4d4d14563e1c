"""`GET /v1/sys/metrics` with real `transit server` processes (operations-api §4): Vault's
JSON shape, the Prometheus text format (parsed with prometheus_client's parser), counters that
move with the traffic, token access unless `unauthenticated_metrics_access`, the `telemetry`
stanza; and a Redis-backed node with two workers whose counts add up, scraped from the
standby too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT, ServerProcess, free_port, init_and_unseal

HANDLE = "vault_core_handle_request"


def _poll(fn: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _count(text: str, mount: str, operation: str, status: str = "200") -> float:
    """vault_core_handle_request_count for one (mount, operation, status)."""
    fam = _families(text).get(HANDLE)
    if fam is None:
        return 0.0
    return sum(s.value for s in fam.samples if s.name == HANDLE + "_count"
               and s.labels == {"mount": mount, "operation": operation, "status": status})


def _counter(text: str, name: str, **labels: str) -> float:
    fam = _families(text).get(name)
    if fam is None:
        return 0.0
    return sum(s.value for s in fam.samples if s.labels == labels)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess.dev(tmp_path_factory.mktemp("metrics")).start()
    yield srv
    srv.stop()


def test_json_is_go_metrics_display_shape(dev: ServerProcess) -> None:
    assert dev.request("POST", "transit/keys/mj").status_code in (200, 204)
    for _ in range(3):
        assert dev.request("POST", "transit/encrypt/mj",
                           json={"plaintext": "aGk="}).status_code == 200
    r = dev.request("GET", "sys/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["Timestamp", "Gauges", "Points", "Counters", "Samples"]
    assert body["Timestamp"].endswith("0 +0000 UTC")
    assert body["Points"] == []
    gauges = {g["Name"].split(".")[-1]: g for g in body["Gauges"]}
    assert gauges["active"]["Value"] == 1 and gauges["unsealed"]["Value"] == 1
    assert set(gauges["active"]["Labels"]) == {"cluster"}
    # disable_hostname is false: gauges carry the host name after the prefix, as in Vault
    assert all(g["Name"].startswith("vault.") and g["Name"].count(".") >= 3
               for g in body["Gauges"])
    counters = {(c["Name"], tuple(sorted(c["Labels"].items()))): c for c in body["Counters"]}
    assert counters[("vault.audit.log_request_failure", ())]["Count"] == 0
    assert counters[("vault.transit.items", (("operation", "encrypt"),))]["Count"] >= 3
    for c in body["Counters"] + body["Samples"]:
        assert list(c) == ["Name", "Count", "Rate", "Sum", "Min", "Max", "Mean", "Stddev",
                           "Labels"]
    handled = [s for s in body["Samples"] if s["Name"] == "vault.core.handle_request"
               and s["Labels"] == {"mount": "transit/", "operation": "update", "status": "200"}]
    assert handled and handled[0]["Count"] >= 3 and handled[0]["Sum"] > 0


def test_prometheus_parses_and_counts_requests(dev: ServerProcess) -> None:
    assert dev.request("POST", "transit/keys/mp").status_code in (200, 204)
    before = dev.request("GET", "sys/metrics", params={"format": "prometheus"})
    assert before.status_code == 200, before.text
    assert before.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    n0 = _count(before.text, "transit/", "update")
    items0 = _counter(before.text, "vault_transit_items", operation="encrypt")
    for _ in range(5):
        assert dev.request("POST", "transit/encrypt/mp",
                           json={"plaintext": "aGk="}).status_code == 200
    assert dev.request("POST", "transit/encrypt/mp", json={
        "batch_input": [{"plaintext": "aGk="}] * 4}).status_code == 200
    after = dev.request("GET", "sys/metrics", params={"format": "prometheus"}).text
    assert _count(after, "transit/", "update") == n0 + 6
    assert _counter(after, "vault_transit_items", operation="encrypt") == items0 + 9
    fams = _families(after)
    assert fams[HANDLE].type == "histogram"
    buckets = [s for s in fams[HANDLE].samples if s.name == HANDLE + "_bucket"
               and s.labels.get("mount") == "transit/" and s.labels.get("le") == "+Inf"]
    assert buckets and buckets[0].value == _count(after, "transit/", "update")
    assert fams["vault_audit_log_request_failure"].type == "counter"
    # Vault's per-route timer, derived from it: vault.route.update.transit-
    route = fams["vault_route_update_transit_"]
    assert route.type == "histogram"
    assert [s.value for s in route.samples if s.name.endswith("_count")] == [
        _count(after, "transit/", "update")]
    # Vault's gauge names carry the host name unless disable_hostname
    assert any(n.endswith("_core_active") and n != "vault_core_active" for n in fams)
    # the Accept header selects it too
    r = dev.request("GET", "sys/metrics",
                    headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_cache_hits_and_misses(dev: ServerProcess) -> None:
    """A new token and a new key are read from storage once (a miss), then served from the
    caches (hits): counted per cache."""
    before = dev.request("GET", "sys/metrics", params={"format": "prometheus"}).text
    r = dev.request("POST", "auth/token/create", json={"policies": ["default"]})
    token = r.json()["auth"]["client_token"]
    assert dev.request("POST", "transit/keys/mcache").status_code in (200, 204)
    for _ in range(4):
        assert dev.request("POST", "transit/encrypt/mcache",
                           json={"plaintext": "aGk="}).status_code == 200
    for _ in range(3):
        r = requests.get(f"{dev.addr}/v1/auth/token/lookup-self",
                         headers={"X-Vault-Token": token}, timeout=10)
        assert r.status_code == 200, r.text
    after = dev.request("GET", "sys/metrics", params={"format": "prometheus"}).text

    def moved(name: str, cache: str) -> float:
        return (_counter(after, name, cache=cache) - _counter(before, name, cache=cache))

    assert moved("vault_cache_hit", "transit_key") >= 4
    assert moved("vault_cache_miss", "transit_key") >= 1
    # the created token is cached by its creator's write; its three uses are hits
    assert moved("vault_cache_hit", "token") >= 3
    assert moved("vault_cache_hit", "policy") + moved("vault_cache_hit", "acl") >= 1


def test_access_needs_a_token_with_read_and_bad_format(dev: ServerProcess) -> None:
    r = requests.get(f"{dev.addr}/v1/sys/metrics", timeout=10)
    assert r.status_code == 403 and r.json() == {"errors": ["permission denied"]}
    r = dev.request("PUT", "sys/policies/acl/metrics-reader",
                    json={"policy": 'path "sys/metrics" { capabilities = ["read"] }'})
    assert r.status_code == 204, r.text
    reader = dev.request("POST", "auth/token/create",
                         json={"policies": ["metrics-reader"]}).json()["auth"]["client_token"]
    other = dev.request("POST", "auth/token/create",
                        json={"policies": ["default"]}).json()["auth"]["client_token"]
    assert dev.request("GET", "sys/metrics", token=other).status_code == 403
    assert dev.request("GET", "sys/metrics", token=reader).status_code == 200
    r = dev.request("GET", "sys/metrics", params={"format": "xml"})
    assert r.status_code == 400 and r.text == 'metric response format "xml" unknown'
    assert r.headers["content-type"].startswith("text/plain")


def _config(port: int, extra: str, listener_extra: str = "") -> str:
    return (f'storage "inmem" {{}}\nlistener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
            f"  tls_disable = true\n{listener_extra}}}\n{extra}")


def test_telemetry_stanza(tmp_path: Path) -> None:
    """No stanza: prometheus is not enabled (JSON still is). A listener's
    unauthenticated_metrics_access serves it without a token, even sealed, GET only;
    disable_hostname drops the host from gauge names."""
    port = free_port()
    cfg = tmp_path / "plain.hcl"
    cfg.write_text(_config(port, ""))
    srv = ServerProcess(["server", f"-config={cfg}"], port, log=tmp_path / "plain.out").start()
    try:
        init_and_unseal(srv)
        r = srv.request("GET", "sys/metrics", params={"format": "prometheus"})
        assert r.status_code == 400 and r.text == "prometheus is not enabled"
        assert srv.request("GET", "sys/metrics").status_code == 200
    finally:
        srv.stop()

    port = free_port()
    cfg = tmp_path / "open.hcl"
    cfg.write_text(_config(
        port, 'telemetry {\n  prometheus_retention_time = "1h"\n  disable_hostname = true\n}\n',
        "  telemetry {\n    unauthenticated_metrics_access = true\n  }\n"))
    srv = ServerProcess(["server", f"-config={cfg}"], port, log=tmp_path / "open.out").start()
    try:
        # sealed (not even initialised) and no token
        r = requests.get(f"{srv.addr}/v1/sys/metrics?format=prometheus", timeout=10)
        assert r.status_code == 200, r.text
        fams = _families(r.text)
        assert fams["vault_core_unsealed"].samples[0].value == 0
        assert requests.post(f"{srv.addr}/v1/sys/metrics", timeout=10).status_code == 405
        init_and_unseal(srv)
        body = requests.get(f"{srv.addr}/v1/sys/metrics", timeout=10).json()
        names = {g["Name"] for g in body["Gauges"]}
        assert "vault.core.unsealed" in names and "vault.core.active" in names
    finally:
        srv.stop()


@pytest.mark.parametrize("extra, message", [
    ("telemetry {\n  statsd_address = \"x:1\"\n}\n", "statsd_address not supported"),
    ("telemetry {\n  disable_hostname = \"maybe\"\n}\n", "disable_hostname"),
])
def test_unknown_telemetry_keys_stop_the_server(tmp_path: Path, extra: str, message: str) -> None:
    cfg = tmp_path / "bad.hcl"
    cfg.write_text(_config(free_port(), extra))
    out = subprocess.run([sys.executable, "-m", "transit", "server", f"-config={cfg}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_private_metrics_dir_is_removed_at_exit(tmp_path: Path) -> None:
    srv = ServerProcess.dev(tmp_path)
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(env_tmp)
    try:
        srv.start()
    finally:
        if old is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old
    try:
        dirs = [p for p in env_tmp.iterdir() if p.name.startswith("transit-metrics-")]
        assert len(dirs) == 1 and (dirs[0].stat().st_mode & 0o777) == 0o700
        assert srv.request("GET", "sys/metrics").status_code == 200
        assert any(dirs[0].iterdir())  # the process's mmap files
    finally:
        srv.stop()
    assert not dirs[0].exists()


# -- a Redis-backed node with two workers, and its standby ---------------------------------------


@pytest.fixture(scope="module")
def wcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.ha.test_workers import WorkersCluster
    from tests.redis_fixtures import redis_available

    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")

    class MetricsCluster(WorkersCluster):
        def node_config(self, node: Any) -> str:
            return (super().node_config(node)
                    + 'telemetry {\n  unauthenticated_metrics_access = true\n}\n')

    c = MetricsCluster(tmp_path_factory.mktemp("mworkers") / "cluster")
    c.up()
    try:
        yield c
    finally:
        c.down(timeout=10.0)


def _scrape(addr: str) -> str:
    r = requests.get(f"{addr}/v1/sys/metrics?format=prometheus",
                     headers={"Connection": "close"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.text


def test_workers_of_a_node_add_up_and_the_standby_reports(wcluster: Any) -> None:
    from tests.ha.util import poll

    c = wcluster
    active, standby = poll(c.settled, 20, "one active node, all workers agreeing")
    token = {"X-Vault-Token": c.root_token, "Connection": "close"}
    r = requests.post(f"{c.nodes[active].addr}/v1/sys/mounts/mw", json={"type": "transit"},
                      headers=token, timeout=30)
    assert r.status_code == 204, r.text
    r = requests.post(f"{c.nodes[active].addr}/v1/mw/keys/k", headers=token, timeout=30)
    assert r.status_code in (200, 204), r.text
    addr = c.nodes[active].addr
    def total() -> float:  # the node's prometheus counter: both workers' files added up
        return _count(_scrape(addr), "mw/", "update")

    time.sleep(1.5)  # every worker has flushed the key's creation (FLUSH_INTERVAL 1 s)
    base = total()
    sent = 40

    def one(_: int) -> int:  # a new connection each: the kernel spreads them over both workers
        return requests.post(f"{addr}/v1/mw/encrypt/k", json={"plaintext": "aGk="},
                             headers=token, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(sent))) == {200}
    # every worker flushes its counts within a second; a scrape adds every worker's files
    deadline = time.monotonic() + 10
    while (got := total()) != base + sent:
        assert time.monotonic() < deadline, (base, got, _scrape(addr))
        time.sleep(0.1)
    assert _counter(_scrape(addr), "vault_transit_items", operation="encrypt") == sent
    body = requests.get(f"{addr}/v1/sys/metrics", timeout=10).json()
    gauges = {g["Name"].split(".", 2)[-1]: g["Value"] for g in body["Gauges"]}
    assert gauges["core.active"] == 1 and gauges["ha.epoch"] >= 1
    renewals = [c_ for c_ in body["Counters"] if c_["Name"] == "vault.ha.lock_renewals"]
    assert renewals and renewals[0]["Labels"] == {"result": "ok"}
    assert any(s["Name"] == "vault.redis.command" for s in body["Samples"])

    # the standby answers for itself (never forwarded): its own role and its forwards
    r = requests.post(f"{c.nodes[standby].addr}/v1/sys/mounts/mw2", json={"type": "transit"},
                      headers=token, timeout=30)
    assert r.status_code == 204, r.text  # a write: forwarded to the active node

    def standby_view() -> dict[str, Any] | None:
        b = requests.get(f"{c.nodes[standby].addr}/v1/sys/metrics",
                         headers={"Connection": "close"}, timeout=10).json()
        fwd = [s for s in b["Samples"] if s["Name"] == "vault.ha.rpc.client.forward"]
        return b if fwd else None

    sb = _poll(standby_view, 10, "the standby's forward timer")
    g = {x["Name"].split(".", 2)[-1]: x["Value"] for x in sb["Gauges"]}
    assert g["core.active"] == 0 and g["core.performance_standby"] == 1
    assert g["core.unsealed"] == 1
