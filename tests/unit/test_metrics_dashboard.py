"""docs/grafana-dashboard.json only charts metrics the server exports (transit/metrics.py),
under their Prometheus names, and is a dashboard Grafana can import."""

from __future__ import annotations

import json
import re
from pathlib import Path

from transit import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def _exported() -> set[str]:
    names = {metrics.prom_name(n) for n in (*metrics.COUNTERS, *metrics.GAUGES)}
    for timer in metrics.TIMERS:
        base = metrics.prom_name(timer)
        names |= {base + "_bucket", base + "_count", base + "_sum"}
    return names


def test_every_query_uses_exported_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["panels"]
    exported = _exported()
    used: set[str] = set()
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\bvault_[a-z_]+", target["expr"]))
            assert names, target["expr"]
            assert names <= exported, (panel["title"], names - exported)
            used |= names
    # every exported family appears somewhere
    families = {n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
                for n in used}
    wanted = {metrics.prom_name(n) for n in (*metrics.TIMERS, *metrics.COUNTERS,
                                             *metrics.GAUGES)}
    assert wanted <= families, wanted - families
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
