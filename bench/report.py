"""Turn a bench/matrix.py run (runs.json + locust CSVs + wrk numbers) into summary.md and PNG
plots (throughput and latency percentiles against users, one panel per scenario).

    .venv/bin/python bench/report.py bench/results/<date>/<matrix|compare>

Needs matplotlib (the `bench` extra); draws with the Agg backend (no display).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

SERVERS = ("transit", "openbao")
LABEL = {"transit": "transit (ours)", "openbao": "OpenBao"}
SCENARIO_TITLE = {
    "dev": "dev: one dev node, root token, no audit",
    "audit": "audit: one node, file audit device, policy-limited token",
    "cluster": "cluster: 1 active + 2 standbys, users spread over the nodes",
}


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "N/A") else None
    except ValueError:
        return None


def read_stats(path: Path) -> dict[str, Any]:
    """The measured numbers of one locust run, from its `_stats.csv`: requests, failures,
    req/s, p50/p95/p99 (ms). Rows named "setup: ..." (each user's first requests) are left
    out; a run with several request names (the mixed workload) adds their req/s and takes the
    percentiles of locust's Aggregated row."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    measured = [r for r in rows if r["Name"] != "Aggregated" and not r["Name"].startswith("setup:")]
    agg = next((r for r in rows if r["Name"] == "Aggregated"), None)
    pct_row = measured[0] if len(measured) == 1 else agg
    reqs = sum(int(r["Request Count"]) for r in measured)
    fails = sum(int(r["Failure Count"]) for r in measured)
    out: dict[str, Any] = {
        "names": [r["Name"] for r in measured], "requests": reqs, "failures": fails,
        "rps": sum(_num(r["Requests/s"]) or 0.0 for r in measured),
        "error_pct": 100.0 * fails / reqs if reqs else None,
    }
    for key, col in (("p50_ms", "50%"), ("p95_ms", "95%"), ("p99_ms", "99%")):
        out[key] = _num(pct_row[col]) if pct_row else None
    return out


def load(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = json.loads((out / "runs.json").read_text())
    runs = []
    for r in data["runs"]:
        r = dict(r)
        if r["kind"] == "locust":
            r.update(read_stats(out / r["csv"]))
        else:
            reqs = None
            r.setdefault("error_pct", None)
            if r.get("non2xx") is not None and r.get("rps"):
                reqs = r["rps"] * r.get("duration_s", 1)
                r["error_pct"] = 100.0 * r["non2xx"] / reqs if reqs else None
            r.setdefault("p95_ms", None)
        r["items_ps"] = r["rps"] * r.get("batch", 1) if r.get("rps") is not None else None
        runs.append(r)
    return data["meta"], runs


# -- formatting -------------------------------------------------------------------------------
def fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "–"
    if x == int(x):  # locust's rounded milliseconds; 0 is under half a millisecond
        return "<1" if x == 0 else str(int(x))
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def fmt_pct(x: float | None) -> str:
    return "–" if x is None else ("0" if x == 0 else f"{x:.2f}")


def generator(r: dict[str, Any]) -> str:
    if r["kind"] == "wrk":
        return f"wrk (-c{r['users']})"
    return f"locust ×{r['processes']}"


def op_label(r: dict[str, Any]) -> str:
    op, size = r["op"], r.get("payload", 64)
    sz = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
    if r["kind"] == "wrk":
        return f"encrypt {sz} (peak)"
    if op.startswith("batch_"):
        return f"{op.replace('_', ' ')} ×{r['batch']} ({sz} items)"
    if op in ("sign", "verify"):
        return f"{op} {r['sign_key_type']} ({sz})"
    if op in ("kv_read", "kv_write"):
        return op.replace("_", " ") + (f" ({sz})" if op == "kv_write" else "")
    if op == "datakey":
        return "datakey plaintext 256"
    if op == "mixed":
        return f"mixed app workload ({sz})"
    return f"{op} {sz}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "–"


def _rows(runs: list[dict[str, Any]], scenario: str) -> list[tuple[tuple, dict[str, dict]]]:
    """(step key, {server: run}) in the order the steps ran, wrk last."""
    grouped: dict[tuple, dict[str, dict]] = {}
    for r in runs:
        if r["scenario"] != scenario:
            continue
        grouped.setdefault((r["kind"], r["step"], r["users"]), {})[r["server"]] = r
    return sorted(grouped.items(), key=lambda kv: kv[0][0] == "wrk")


def headline(meta: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """One row per scenario and operation at the top user count (+ the wrk peak): req/s of
    each server and the ratio. bench/README.md quotes it."""
    compare = meta.get("kind") == "compare"
    top = max(meta.get("ladder") or [0])
    head = "| scenario | operation | users | generator | transit req/s |"
    sep = "| --- | --- | --- | --- | --- |"
    if compare:
        head += " OpenBao req/s | ratio ours/theirs |"
        sep += " --- | --- |"
    lines = [head, sep]
    for scenario in meta.get("scenarios") or sorted({r["scenario"] for r in runs}):
        for (kind, _step, users), by in _rows(runs, scenario):
            if kind == "locust" and users != top:
                continue
            any_r = next(iter(by.values()))
            ours, theirs = by.get("transit"), by.get("openbao")
            row = (f"| {scenario} | {op_label(any_r)} | {users} | {generator(any_r)} | "
                   f"{_rps_cell(ours)} |")
            if compare:
                row += f" {_rps_cell(theirs)} | {ratio(ours and ours['rps'], theirs and theirs['rps'])} |"
            lines.append(row)
    return "\n".join(lines)


def _rps_cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "–"
    cell = fmt(r["rps"])
    if r.get("batch", 1) > 1:
        cell += f" ({fmt(r['items_ps'])} items/s)"
    if r.get("error_pct"):
        cell += f" **{fmt_pct(r['error_pct'])} % errors**"
    return cell


def scenario_table(meta: dict[str, Any], runs: list[dict[str, Any]], scenario: str) -> str:
    compare = meta.get("kind") == "compare"
    if compare:
        lines = ["| operation | users | generator | transit req/s | OpenBao req/s | ratio | "
                 "items/s transit / OpenBao | transit p50 / p95 / p99 ms | "
                 "OpenBao p50 / p95 / p99 ms | errors % transit / OpenBao |",
                 "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    else:
        lines = ["| operation | users | generator | req/s | items/s | p50 ms | p95 ms | p99 ms | "
                 "errors % |", "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (_kind, _step, users), by in _rows(runs, scenario):
        any_r = next(iter(by.values()))
        lab, gen = op_label(any_r), generator(any_r)
        if compare:
            o, t = by.get("transit", {}), by.get("openbao", {})
            items = (f"{fmt(o.get('items_ps'))} / {fmt(t.get('items_ps'))}"
                     if any_r.get("batch", 1) > 1 else "")
            lat = [" / ".join(fmt_ms(x.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms"))
                   for x in (o, t)]
            lines.append(f"| {lab} | {users} | {gen} | {fmt(o.get('rps'))} | {fmt(t.get('rps'))}"
                         f" | {ratio(o.get('rps'), t.get('rps'))} | {items} | {lat[0]} | "
                         f"{lat[1]} | {fmt_pct(o.get('error_pct'))} / "
                         f"{fmt_pct(t.get('error_pct'))} |")
        else:
            r = by.get("transit") or any_r
            items = fmt(r.get("items_ps")) if r.get("batch", 1) > 1 else ""
            lines.append(f"| {lab} | {users} | {gen} | {fmt(r.get('rps'))} | {items} | "
                         f"{fmt_ms(r.get('p50_ms'))} | {fmt_ms(r.get('p95_ms'))} | "
                         f"{fmt_ms(r.get('p99_ms'))} | {fmt_pct(r.get('error_pct'))} |")
    return "\n".join(lines)


# -- plots ------------------------------------------------------------------------------------
def _laddered(runs: list[dict[str, Any]], scenario: str) -> dict[str, dict[str, list]]:
    """step -> server -> [(users, run)] for the steps run at more than one user count."""
    by: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r["kind"] == "locust" and r["scenario"] == scenario:
            by[r["step"]][r["server"]].append((r["users"], r))
    return {step: {s: sorted(v, key=lambda x: x[0]) for s, v in servers.items()}
            for step, servers in by.items()
            if len({u for v in servers.values() for u, _ in v}) > 1}


def plot(meta: dict[str, Any], runs: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = meta.get("scenarios") or sorted({r["scenario"] for r in runs})
    scenarios = [s for s in scenarios if any(r["scenario"] == s for r in runs)]
    if not scenarios:
        return []
    servers = [s for s in SERVERS if any(r["server"] == s for r in runs)]
    style = {"transit": dict(linestyle="-", marker="o"),
             "openbao": dict(linestyle="--", marker="s")}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    gen = f"generator: locust, {meta.get('processes', '?')} processes, closed loop (users = connections)"
    written = []

    # throughput: one panel per scenario, a line per laddered operation and server (an
    # operation has the same colour in every panel)
    all_steps = sorted({s for sc in scenarios for s in _laddered(runs, sc)})
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.2 * len(scenarios), 4.2),
                             squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        lad = _laddered(runs, scenario)
        for step, by in sorted(lad.items()):
            i = all_steps.index(step)
            for server in servers:
                pts = by.get(server, [])
                if pts:
                    ax.plot([u for u, _ in pts], [r["rps"] for _, r in pts],
                            color=colors[i % len(colors)], label=f"{step} — {LABEL[server]}",
                            **style[server])
        for server in servers:
            peak = next((r for r in runs if r["kind"] == "wrk" and r["scenario"] == scenario
                         and r["server"] == server), None)
            if peak and peak.get("rps"):
                ax.plot([peak["users"]], [peak["rps"]], linestyle="none", marker="*",
                        markersize=12, color="black" if server == "transit" else "grey",
                        label=f"encrypt peak, wrk -c{peak['users']} — {LABEL[server]}")
        users = sorted({r["users"] for r in runs if r["scenario"] == scenario})
        _users_axis(ax, users)
        ax.set_ylim(bottom=0)
        ax.set_title(scenario, fontsize=10)
        ax.set_ylabel("requests/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Throughput against users ({meta.get('date', '')})\n{gen}", fontsize=9)
    fig.tight_layout()
    path = out / "throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    # latency percentiles: one panel per scenario and laddered operation
    steps = all_steps
    if steps:
        fig, axes = plt.subplots(len(steps), len(scenarios),
                                 figsize=(5.2 * len(scenarios), 3.6 * len(steps)),
                                 squeeze=False)
        pstyle = {"p50_ms": ":", "p95_ms": "--", "p99_ms": "-"}
        for col, scenario in enumerate(scenarios):
            lad = _laddered(runs, scenario)
            for row, step in enumerate(steps):
                ax = axes[row][col]
                if step not in lad:
                    ax.set_axis_off()
                    continue
                for si, server in enumerate(servers):
                    pts = lad[step].get(server, [])
                    for key, ls in pstyle.items():
                        ys = [r.get(key) for _, r in pts]
                        if pts and any(y is not None for y in ys):
                            ax.plot([u for u, _ in pts], ys, linestyle=ls, marker=".",
                                    color=colors[si], label=f"{key[:3]} {LABEL[server]}")
                _users_axis(ax, sorted({u for v in lad[step].values() for u, _ in v}))
                ax.set_ylim(bottom=0)
                ax.set_title(f"{scenario}: {step}", fontsize=10)
                ax.set_ylabel("latency ms (locust, 1 ms resolution)")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7)
        fig.suptitle(f"Latency percentiles against users ({meta.get('date', '')})\n{gen}",
                     fontsize=9)
        fig.tight_layout()
        path = out / "latency.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _users_axis(ax, users: list[int]) -> None:
    if users and min(users) > 0:
        ax.set_xscale("log", base=2)
        ax.set_xticks(users)
        ax.set_xticklabels([str(u) for u in users])
    ax.set_xlabel("users (concurrent connections)")


# -- the summary ------------------------------------------------------------------------------
def summary(meta: dict[str, Any], runs: list[dict[str, Any]], plots: list[Path]) -> str:
    compare = meta.get("kind") == "compare"
    m = meta.get("machine", {})
    title = "transit vs OpenBao" if compare else "transit"
    out = [f"# Benchmark matrix: {title} ({meta.get('date', '')})", ""]
    out += [f"Run: `{meta.get('invocation', '')}` from {meta.get('started', '?')} to "
            f"{meta.get('finished', '?')} ({meta.get('elapsed_s', '?')} s).", ""]
    out += ["## Machine and noise", ""]
    out += [f"- {k}: {v}" for k, v in m.items()]
    out += [f"- 1/5/15-min load average: {meta.get('load_start', '?')} at the start, "
            f"{meta.get('load_end', '?')} at the end",
            "- The generator, every server (and, for the cluster, Redis) share the machine's "
            "cores. **Other engineers' test suites may run on the same machine during a run**: "
            "read single figures as ±30 %; the ratios of a compare run are steadier because "
            "the two servers alternate step by step (ABBA).", ""]
    out += ["## Generators", ""]
    out += [f"- **locust ×{meta.get('processes', '?')}**: `bench/locustfile.py` (FastHttpUser, "
            f"wait 0: users = concurrent connections), `--processes {meta.get('processes', '?')}`"
            f", {meta.get('run_time_s', '?')} s per step after spawning all users at once "
            "(`--reset-stats`); latencies at 1 ms resolution (locust rounds them). req/s of "
            "batch steps count requests; items/s = req/s × batch size.",
            f"- **wrk (-c32)**: `bench/peak.lua`, 64 B encrypt, 2 threads, 32 connections, "
            f"{meta.get('wrk_duration_s', '?')} s after a 3 s warm-up (on a cluster one wrk per "
            "node, concurrently, the connections split): a generator much lighter than locust, "
            "for the server's peak. On 2 cores locust's workers use about as much CPU as the "
            "server, so locust figures understate the peak.", ""]
    out += ["## Results at the top user count", "", headline(meta, runs), ""]
    for scenario in meta.get("scenarios") or sorted({r["scenario"] for r in runs}):
        if not any(r["scenario"] == scenario for r in runs):
            continue
        out += [f"## {SCENARIO_TITLE.get(scenario, scenario)}", ""]
        for server, info in meta.get("servers", {}).get(scenario, {}).items():
            out.append(f"- {LABEL.get(server, server)}: {info['describe']}")
        out += ["", scenario_table(meta, runs, scenario), ""]
        audit = [r for r in runs if r["scenario"] == scenario and r.get("audit_bytes")]
        if audit:
            per = defaultdict(lambda: [0, 0])
            for r in audit:
                per[r["server"]][0] += r["audit_bytes"]
                per[r["server"]][1] += r["requests"]
            out += ["Audit log written during the locust steps: " + "; ".join(
                f"{LABEL[s]} {b / 1e6:,.0f} MB ({b / max(n, 1):,.0f} bytes per request)"
                for s, (b, n) in per.items()) + ".", ""]
    if plots:
        out += ["## Plots", ""]
        out += [f"![{p.stem}]({p.name})" for p in plots]
        out += ["", "Throughput: one panel per scenario, a line per operation run at several "
                "user counts" + (" (solid: transit, dashed: OpenBao)" if compare else "") +
                "; the star is the wrk peak. Latency: p50 (dotted), p95 (dashed), p99 (solid) "
                "against users.", ""]
    html = [r["html"] for r in runs if r.get("html")]
    if html:
        out += ["Locust HTML reports: " + ", ".join(f"[{Path(h).stem}]({h})" for h in html), ""]
    out += ["## Commands", ""]
    for scenario, servers in meta.get("servers", {}).items():
        for server, info in servers.items():
            out.append(f"- {scenario}, {LABEL.get(server, server)} set-up: " +
                       "; ".join(f"`{c}`" for c in info["commands"]))
    out += ["", "Each step (run from the results folder; CSVs under `csv/`):", "", "```"]
    out += [r["command"] for r in runs]
    out += ["```", ""]
    return "\n".join(out)


def write_report(out: Path) -> Path:
    out = Path(out)
    meta, runs = load(out)
    plots = plot(meta, runs, out)
    path = out / "summary.md"
    path.write_text(summary(meta, runs, plots))
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(write_report(Path(sys.argv[1])))
