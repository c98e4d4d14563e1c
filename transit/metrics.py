"""Telemetry: what `GET /v1/sys/metrics` reports (spec operations-api §4).

The hot path only touches plain Python objects of its own process: `observe` / `incr` add to
module-level dicts keyed by (metric, *label values), with no lock, no await and no I/O. Once a
second (`run_flusher`, one task per process) and right before a scrape answered by this
process, `flush` adds what accumulated since the last flush to prometheus_client metrics in
multiprocess mode: every process writes its own mmap files in the node's private directory
(`PROMETHEUS_MULTIPROC_DIR`, made 0700 by `private_dir` in the supervisor, or in the process of
a one-process node, and removed at exit). A scrape reads every file of the directory with
`MultiProcessCollector`, so the workers of a node add up; it renders the sum in Prometheus'
text format or in the JSON of go-metrics' `InmemSink.DisplayMetrics`.

Timers are in milliseconds, like Vault's. Gauges (HA role, seal state, epoch) are not pushed
from the code that changes them: `flush` reads them from the core.

`TRANSIT_METRICS=off` in the environment (a benchmarking switch, not a Vault setting) makes
`observe` / `incr` no-ops; sys/metrics still answers, with what was not counted missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any, Literal

from transit.gocompat import time_string

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
FLUSH_INTERVAL = 1.0
# Upper bounds (ms) of the latency histograms' buckets (+Inf implied).
BOUNDS_MS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
             2500.0, 5000.0, 10000.0)
_NB = len(BOUNDS_MS) + 1

# -- what is exported: go-metrics name (dots), label names, help ------------------------------
TIMERS: dict[str, tuple[tuple[str, ...], str]] = {
    "vault.core.handle_request": (
        ("mount", "operation", "status"),
        "requests handled by this node (ms), by mount path, operation and HTTP status"),
    "vault.ha.rpc.client.forward": (
        ("status",), "requests a standby forwarded to the active node (ms), by HTTP status"),
    "vault.redis.command": (("command",), "Redis round trips on the primary (ms), by command"),
}
COUNTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "vault.transit.items": (("operation",), "encrypt and decrypt items (batch items count one "
                                            "each) handled by this node"),
    "vault.ha.rpc.client.forward.errors": ((), "forwards to the active node that failed"),
    "vault.redis.command.errors": (("command",), "Redis commands that failed, by command"),
    "vault.ha.lock_renewals": (("result",), "HA lock renewals by the active node "
                                            "(ok, refused, error, timeout)"),
    "vault.audit.log_request_failure": ((), "requests no audit device could log"),
    "vault.audit.log_response_failure": ((), "responses no audit device could log"),
    "vault.cache.hit": (("cache",), "lookups answered from a cache over storage, by cache "
                                    "(transit_key, token, policy, acl)"),
    "vault.cache.miss": (("cache",), "lookups that missed a cache over storage, by cache "
                                     "(transit_key, token, policy, acl)"),
}
_GaugeMode = Literal["mostrecent", "max"]  # the prometheus_client multiprocess modes used here
# name -> (prometheus_client multiprocess mode, help). Stored without labels (a node's workers
# share one cluster); a scrape labels them with `cluster`, as Vault does.
GAUGES: dict[str, tuple[_GaugeMode, str]] = {
    "vault.core.active": ("mostrecent", "1 on the active node (or a node without HA)"),
    "vault.core.unsealed": ("mostrecent", "1 when unsealed"),
    "vault.core.performance_standby": ("mostrecent", "1 on a performance standby"),
    "vault.ha.epoch": ("max", "highest HA lock epoch this node has seen"),
    "vault.cluster.invalidation.lag": (
        "mostrecent", "seconds this standby's caches may be behind the active node's writes "
                      "(its invalidation feed; 0 without one, NaN when not confirmed)"),
}

enabled = os.environ.get("TRANSIT_METRICS", "").strip().lower() not in ("off", "0", "false")

# per-process accumulation since the last flush
_timers: dict[tuple[str, ...], list[Any]] = {}
_counters: dict[tuple[str, ...], float] = {}

_core: Any = None
_prom: dict[str, Any] = {}  # dotted name -> prometheus_client metric (made by `_metrics()`)
_prom_pid = 0


def prom_name(name: str) -> str:
    return name.replace(".", "_").replace("-", "_")


# -- hot path -----------------------------------------------------------------------------------


def observe(key: tuple[str, ...], ms: float) -> None:
    """Add one timing (ms) to timer `key` = (name, *label values)."""
    if not enabled:
        return
    e = _timers.get(key)
    if e is None:
        e = _timers[key] = [0, 0.0, [0] * _NB]
    e[0] += 1
    e[1] += ms
    e[2][bisect_left(BOUNDS_MS, ms)] += 1


def incr(key: tuple[str, ...], n: float = 1) -> None:
    if not enabled:
        return
    _counters[key] = _counters.get(key, 0) + n


# -- process set-up ------------------------------------------------------------------------------


@contextlib.contextmanager
def private_dir() -> Iterator[str]:
    """A fresh 0700 directory for this node's metric files (never one from the environment:
    two nodes must not add up), in the environment of this process and of the workers it
    forks; removed at exit."""
    _sweep()
    previous = os.environ.get(ENV_DIR)
    path = tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-")  # mode 0700
    os.environ[ENV_DIR] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(ENV_DIR, None)
        else:
            os.environ[ENV_DIR] = previous
        shutil.rmtree(path, ignore_errors=True)


_DIR_PREFIX = "transit-metrics-"


def _sweep() -> None:
    """Remove the directories of nodes that died without removing theirs (SIGKILL): ours
    (same user), named after a process that no longer exists."""
    import re

    base = tempfile.gettempdir()
    pattern = re.compile(re.escape(_DIR_PREFIX) + r"(\d+)-")
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            m = pattern.match(entry.name)
            if m is None or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                os.kill(int(m.group(1)), 0)
            except ProcessLookupError:
                shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                continue


def _metrics() -> dict[str, Any]:
    """The prometheus_client metrics of this process (made on first use, in the process that
    uses them, after the multiprocess directory is in the environment)."""
    global _prom_pid
    if _prom and _prom_pid == os.getpid():
        return _prom
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

    if not os.environ.get(ENV_DIR):
        raise RuntimeError(f"{ENV_DIR} is not set: metrics need the node's private directory")
    values.ValueClass = values.get_value_class()  # whatever was imported earlier
    registry = CollectorRegistry()  # never collected: the files are
    _prom.clear()
    for name, (labels, doc) in TIMERS.items():
        _prom[name] = Histogram(prom_name(name), doc, labels, buckets=BOUNDS_MS,
                                registry=registry)
    for name, (labels, doc) in COUNTERS.items():
        _prom[name] = Counter(prom_name(name), doc, labels, registry=registry)
    for name, (mode, doc) in GAUGES.items():
        _prom[name] = Gauge(prom_name(name), doc, registry=registry, multiprocess_mode=mode)
    _prom_pid = os.getpid()  # metrics without labels (audit failures) exist at 0 from here
    return _prom


def bind(core: Any) -> None:
    """The core whose state the gauges report (one per process)."""
    global _core
    _core = core


# -- flushing -------------------------------------------------------------------------------------


def flush() -> None:
    """Add what this process counted since the last flush to its metric files, and write the
    gauges. Synchronous: nothing can count in between."""
    global _timers, _counters
    if not os.environ.get(ENV_DIR):
        return
    prom = _metrics()
    timers, _timers = _timers, {}
    counters, _counters = _counters, {}
    for key, (_count, total, buckets) in timers.items():
        child = prom[key[0]].labels(*key[1:])
        child._sum.inc(total)  # prometheus_client's histogram internals (pinned version)
        for i, n in enumerate(buckets):
            if n:
                child._buckets[i].inc(n)
    for key, n in counters.items():
        prom[key[0]].labels(*key[1:]).inc(n)
    core = _core
    if core is None:
        return
    sealed = bool(getattr(core, "sealed", True))
    ha = getattr(core, "ha", None)
    active = (not sealed) and (ha is None or bool(ha.is_active))
    prom["vault.core.active"].set(1 if active else 0)
    prom["vault.core.unsealed"].set(0 if sealed else 1)
    prom["vault.core.performance_standby"].set(
        1 if not sealed and bool(getattr(core, "perf_standby", False)) else 0)
    prom["vault.ha.epoch"].set(int(getattr(ha, "max_epoch", 0) or 0))
    feed = getattr(core, "invalidator", None)
    lag = 0.0
    if feed is not None and not active:
        staleness = feed.staleness
        lag = float("nan") if staleness is None else max(0.0, staleness)
    prom["vault.cluster.invalidation.lag"].set(lag)


async def run_flusher(interval: float = FLUSH_INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            flush()
        except Exception:  # never let telemetry take the process down
            import logging

            logging.getLogger("transit.metrics").exception("flushing metrics failed")


# -- telemetry settings ----------------------------------------------------------------------


class Settings:
    """The server's `telemetry` stanza (and the listener's sub-block)."""

    __slots__ = ("prometheus_retention_time", "disable_hostname")

    def __init__(self, prometheus_retention_time: float = 0.0,
                 disable_hostname: bool = False) -> None:
        self.prometheus_retention_time = prometheus_retention_time
        self.disable_hostname = disable_hostname


settings = Settings()


def configure(prometheus_retention_time: float, disable_hostname: bool) -> None:
    settings.prometheus_retention_time = prometheus_retention_time
    settings.disable_hostname = disable_hostname


# -- scraping -----------------------------------------------------------------------------------

_DISPLAY_NAMES = {prom_name(n): n for n in (*TIMERS, *COUNTERS, *GAUGES)}


def _host() -> str:
    return socket.gethostname().split(".", 1)[0] or "localhost"


def _gauge_name(dotted: str) -> str:
    """go-metrics puts the host name after the prefix of gauges unless disable_hostname."""
    if settings.disable_hostname:
        return dotted
    prefix, _, rest = dotted.partition(".")
    return f"{prefix}.{_host()}.{rest}"


def collect() -> list[Any]:
    """The node's metric families (every process's files added up), after flushing ours."""
    flush()
    path = os.environ.get(ENV_DIR)
    if not path:
        return []
    from prometheus_client.multiprocess import MultiProcessCollector

    families = list(MultiProcessCollector(None, path=path).collect())
    families += _routes(families)
    return sorted(families, key=lambda m: m.name)


def _routes(families: list[Any]) -> list[Any]:
    """Vault's `vault.route.<operation>.<mount, "/" as "-">` timers (e.g.
    `vault.route.update.transit-`), derived at scrape time from `vault.core.handle_request`
    (summed over the status): nothing more is counted per request."""
    from prometheus_client.metrics_core import Metric

    handle = next((f for f in families if f.name == prom_name("vault.core.handle_request")),
                  None)
    if handle is None:
        return []
    sums: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for sample in handle.samples:
        mount, op = sample.labels.get("mount", ""), sample.labels.get("operation", "")
        if not mount:
            continue
        dotted = f"vault.route.{op}.{mount.replace('/', '-')}"
        suffix = sample.name[len(handle.name):]
        per = sums.setdefault((dotted, op), {})
        key = (suffix, sample.labels.get("le", ""))
        per[key] = per.get(key, 0.0) + sample.value
    out = []
    for (dotted, _op), per in sorted(sums.items()):
        name = prom_name(dotted)
        _DISPLAY_NAMES[name] = dotted
        fam = Metric(name, f"{dotted} (ms): vault.core.handle_request of this mount and "
                           "operation", "histogram")
        for (suffix, le), value in per.items():
            fam.add_sample(name + suffix, {"le": le} if le else {}, value)
        out.append(fam)
    return out


def _fmt(value: float) -> str:
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(value))


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        '{}="{}"'.format(k, v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\""))
        for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def prometheus_text() -> bytes:
    """Text exposition format 0.0.4. Counters keep Vault's names (no `_total`)."""
    out: list[str] = []
    for family in collect():
        name = family.name
        dotted = _DISPLAY_NAMES.get(name, name)
        shown = prom_name(_gauge_name(dotted)) if family.type == "gauge" else name
        out.append(f"# HELP {shown} {family.documentation}")
        out.append(f"# TYPE {shown} {family.type}")
        for s in family.samples:
            sname = s.name
            if family.type == "counter":
                if sname.endswith("_created"):
                    continue
                sname = name
            elif family.type == "gauge":
                out.append(f"{shown}{_labels(_gauge_labels(s.labels))} {_fmt(s.value)}")
                continue
            out.append(f"{sname}{_labels(s.labels)} {_fmt(s.value)}")
    return ("\n".join(out) + "\n").encode()


def _gauge_labels(labels: dict[str, str]) -> dict[str, str]:
    core = _core
    cluster = getattr(getattr(core, "cluster", None), "name", "") if core is not None else ""
    return {**labels, "cluster": str(cluster or "")}


def display_metrics() -> dict[str, Any]:
    """go-metrics' `InmemSink.DisplayMetrics` shape. Unlike Vault's (the last 10-second
    interval), the values are cumulative since the node started; `Rate` is `Sum` / 10 s as
    there. Min, Max and Stddev of timers are not kept (0)."""
    gauges: list[dict[str, Any]] = []
    counters: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    for family in collect():
        dotted = _DISPLAY_NAMES.get(family.name, family.name)
        if family.type == "gauge":
            for s in family.samples:
                gauges.append({"Name": _gauge_name(dotted), "Value": s.value,
                               "Labels": _gauge_labels(s.labels)})
        elif family.type == "counter":
            for s in family.samples:
                if s.name.endswith("_created"):
                    continue
                v = s.value
                counters.append({"Name": dotted, "Count": int(v), "Rate": v / 10, "Sum": v,
                                 "Min": 1 if v else 0, "Max": 1 if v else 0,
                                 "Mean": 1 if v else 0, "Stddev": 0, "Labels": dict(s.labels)})
        elif family.type == "histogram":
            acc: dict[tuple[tuple[str, str], ...], list[float]] = {}
            for s in family.samples:
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                e = acc.setdefault(labels, [0.0, 0.0])
                if s.name.endswith("_count"):
                    e[0] = s.value
                elif s.name.endswith("_sum"):
                    e[1] = s.value
            for labels, (count, total) in acc.items():
                if not count:
                    continue
                samples.append({"Name": dotted, "Count": int(count), "Rate": total / 10,
                                "Sum": total, "Min": 0, "Max": 0,
                                "Mean": total / count if count else 0, "Stddev": 0,
                                "Labels": dict(labels)})
    now = time.time()
    return {"Timestamp": time_string(now - now % 10), "Gauges": gauges, "Points": [],
            "Counters": counters, "Samples": samples}
