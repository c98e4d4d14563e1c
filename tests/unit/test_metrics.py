"""The `telemetry` stanza (operations-api §4.4) and transit/metrics.py's per-process counting,
flushing into prometheus_client's multiprocess files, and rendering."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from transit import metrics
from transit.config import parse_config
from transit.errors import ConfigError

BASE = 'storage "inmem" {}\nlistener "tcp" {\n  address = "127.0.0.1:8200"\n  tls_disable = true\n%s}\n'


def cfg(extra: str = "", listener: str = ""):  # type: ignore[no-untyped-def]
    return parse_config(BASE % listener + extra, env={})


def test_no_stanza_leaves_prometheus_off() -> None:
    c = cfg()
    assert c.telemetry.prometheus_retention_time == 0
    assert not c.telemetry.disable_hostname
    assert not c.listeners[0].unauthenticated_metrics_access


def test_stanza_defaults_to_24h_and_reads_its_keys() -> None:
    c = cfg("telemetry {\n  disable_hostname = true\n}\n")
    assert c.telemetry.prometheus_retention_time == 24 * 3600
    assert c.telemetry.disable_hostname
    c = cfg('telemetry {\n  prometheus_retention_time = "0"\n}\n')
    assert c.telemetry.prometheus_retention_time == 0
    c = cfg('telemetry {\n  prometheus_retention_time = "30s"\n}\n')
    assert c.telemetry.prometheus_retention_time == 30


def test_unauthenticated_metrics_access_in_the_listener_or_the_stanza() -> None:
    c = cfg(listener="  telemetry {\n    unauthenticated_metrics_access = true\n  }\n")
    assert c.listeners[0].unauthenticated_metrics_access
    c = cfg("telemetry {\n  unauthenticated_metrics_access = true\n}\n")
    assert c.listeners[0].unauthenticated_metrics_access


@pytest.mark.parametrize("extra, listener, message", [
    ('telemetry {\n  statsd_address = "x:1"\n}\n', "", "statsd_address not supported"),
    ('telemetry {\n  prometheus_retention_time = "-1s"\n}\n', "", "must not be negative"),
    ("", '  telemetry {\n    disallow_metrics = true\n  }\n', "disallow_metrics not supported"),
])
def test_unknown_or_bad_keys_are_refused(extra: str, listener: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cfg(extra, listener)


def test_counts_flush_into_the_shared_files_and_render(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.ENV_DIR, str(tmp_path))
    monkeypatch.setattr(metrics, "enabled", True)
    monkeypatch.setattr(metrics, "_prom", {})
    monkeypatch.setattr(metrics, "_timers", {})
    monkeypatch.setattr(metrics, "_counters", {})
    monkeypatch.setattr(metrics, "_core", None)
    monkeypatch.setattr(metrics.settings, "disable_hostname", True)
    for ms in (0.05, 0.3, 7.0):
        metrics.observe(("vault.core.handle_request", "transit/", "update", "200"), ms)
    metrics.incr(("vault.transit.items", "encrypt"), 4)
    text = metrics.prometheus_text().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    h = fams["vault_core_handle_request"]
    by = {(s.name, s.labels.get("le")): s.value for s in h.samples}
    assert by[("vault_core_handle_request_count", None)] == 3
    assert by[("vault_core_handle_request_bucket", "0.1")] == 1
    assert by[("vault_core_handle_request_bucket", "0.5")] == 2
    assert by[("vault_core_handle_request_bucket", "+Inf")] == 3
    assert abs(by[("vault_core_handle_request_sum", None)] - 7.35) < 1e-9
    assert [s.value for s in fams["vault_transit_items"].samples] == [4]
    route = fams["vault_route_update_transit_"]
    assert [s.value for s in route.samples if s.name.endswith("_count")] == [3]
    body = metrics.display_metrics()
    assert list(body) == ["Timestamp", "Gauges", "Points", "Counters", "Samples"]
    sample = next(s for s in body["Samples"] if s["Name"] == "vault.core.handle_request")
    assert sample["Count"] == 3 and abs(sample["Mean"] - 2.45) < 1e-9
    assert any(f.startswith("histogram_") for f in os.listdir(tmp_path))
    # nothing is counted twice: a second flush adds nothing
    again = {f.name: f for f in text_string_to_metric_families(metrics.prometheus_text().decode())}
    assert [s.value for s in again["vault_transit_items"].samples] == [4]
