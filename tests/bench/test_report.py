"""bench/report.py on recorded locust CSVs (tests/bench/data/compare-audit: a short real
`bench/matrix.py --compare --scenarios audit` run, trimmed): the markdown summary's numbers
and the PNG plots."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import ROOT

DATA = Path(__file__).parent / "data" / "compare-audit"


def _report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(DATA, out)
    return out


def _png(path: Path) -> None:
    assert path.exists(), path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_read_stats_leaves_out_setup_rows() -> None:
    report = _report()
    mixed = report.read_stats(DATA / "csv/audit/transit/mixed-u4_stats.csv")
    assert mixed["names"] == ["mixed: decrypt 64B", "mixed: encrypt 64B", "mixed: kv read"]
    assert mixed["requests"] == 1481 + 2002 + 189
    assert mixed["rps"] == pytest.approx(827.44 + 1118.53 + 105.60, abs=0.05)
    assert (mixed["p50_ms"], mixed["p95_ms"], mixed["p99_ms"]) == (1, 5, 9)  # Aggregated
    assert mixed["error_pct"] == 0


def test_compare_summary_and_plots(recorded: Path) -> None:
    report = _report()
    path = report.write_report(recorded)
    text = path.read_text()
    # headline: ours, OpenBao and the ratio at the top user count, with the generator
    assert "| audit | encrypt 64 B | 4 | locust ×2 | 2,163 | 874 | 2.48 |" in text
    assert ("| audit | batch encrypt ×100 (64 B items) | 4 | locust ×2 | 527 (52,732 items/s) "
            "| 267 (26,682 items/s) | 1.98 |") in text
    assert "| audit | encrypt 64 B (peak) | 32 | wrk (-c32) | 5,903 | 1,194 | 4.94 |" in text
    # the scenario table: percentiles and errors of both servers
    assert "| encrypt 64 B | 4 | locust ×2 | 2,163 | 874 | 2.48 |  | 2 / 3 / 4 | 3 / 11 / 19 | 0 / 0 |" in text
    assert "52,732 / 26,682" in text
    # the machine, the load average, the commands
    assert "Intel" in text and "load average: 1.62 1.59 1.16 at the start" in text
    assert "OpenBao v2.7.2" in text
    assert "locust -f bench/locustfile.py --headless -u 4 -r 4" in text
    assert "wrk -t2 -c32" in text
    for name in ("throughput.png", "latency.png"):
        _png(recorded / name)
        assert f"]({name})" in text


def test_single_server_summary(recorded: Path) -> None:
    """`make bench` (no OpenBao): one server's columns, no ratios."""
    data = json.loads((recorded / "runs.json").read_text())
    data["meta"]["kind"] = "matrix"
    data["meta"]["machine"].pop("openbao")
    data["meta"]["servers"]["audit"].pop("openbao")
    data["runs"] = [r for r in data["runs"] if r["server"] == "transit"]
    (recorded / "runs.json").write_text(json.dumps(data))
    text = _report().write_report(recorded).read_text()
    assert "OpenBao" not in text
    assert "| audit | encrypt 64 B | 4 | locust ×2 | 2,163 |" in text
    assert "| batch encrypt ×100 (64 B items) | 4 | locust ×2 | 527 | 52,732 | 7 | 12 | 16 | 0 |" in text
    assert "| encrypt 64 B | 1 | locust ×2 | 1,875 |  | <1 | 1 | 1 | 0 |" in text
    _png(recorded / "throughput.png")
    _png(recorded / "latency.png")
