"""Rate-limit quotas, the pure parts: which rule a path falls under, exempt paths, and the
shared token buckets (windows, blocking, slot reuse, sharing across a fork)."""

from __future__ import annotations

import multiprocessing

from transit.quotas import QuotaConfig, QuotaTable, RateLimitQuota
from transit.ratelimit import Buckets


def rule(name: str, mount: str = "", suffix: str = "", rate: float = 1) -> RateLimitQuota:
    return RateLimitQuota(name=name, mount_path=mount, path_suffix=suffix, rate=rate,
                          interval=1)


def test_most_specific_rule_wins() -> None:
    table = QuotaTable({q.name: q for q in [
        rule("global"), rule("mount", "transit/"), rule("glob", "transit/", "encrypt/*"),
        rule("longer", "transit/", "encrypt/app*"), rule("exact", "transit/", "encrypt/app"),
    ]})
    assert table.match("transit/", "encrypt/app").name == "exact"
    assert table.match("transit/", "encrypt/app/").name == "exact"
    assert table.match("transit/", "encrypt/app2").name == "longer"
    assert table.match("transit/", "encrypt/other").name == "glob"
    assert table.match("transit/", "decrypt/app").name == "mount"
    assert table.match("secret/", "data/x").name == "global"
    assert QuotaTable({"m": rule("m", "transit/")}).match("secret/", "x") is None


def test_same_scope_and_exempt_paths() -> None:
    table = QuotaTable({"a": rule("a", "transit/", "encrypt/k")},
                       QuotaConfig(rate_limit_exempt_paths=("sys/health", "sys/internal/*")))
    assert table.same_scope(rule("b", "transit/", "encrypt/k")).name == "a"
    assert table.same_scope(rule("a", "transit/", "encrypt/k")) is None  # itself
    assert table.same_scope(rule("c", "transit/")) is None
    assert table.exempt("sys/health") and table.exempt("sys/internal/ui/mounts")
    assert not table.exempt("sys/healthz") and not table.exempt("sys/mounts")


def test_tokens_round_half_away_from_zero_as_go() -> None:
    assert rule("r", rate=2.5).tokens == 3 and rule("r", rate=2.4).tokens == 2
    assert rule("r", rate=0.2).tokens == 1


def test_windows_and_blocking() -> None:
    b = Buckets.create(slots=64)
    k = Buckets.key("rule", "10.0.0.1")
    got = [b.take(k, 2, 10.0, 0.0, now=100.0 + i).allowed for i in range(3)]
    assert got == [True, True, False]
    v = b.take(k, 2, 10.0, 0.0, now=103.0)
    assert not v.allowed and v.remaining == 0 and v.reset == 7.0
    assert b.take(k, 2, 10.0, 0.0, now=110.0).allowed  # a new window
    other = Buckets.key("rule", "10.0.0.2")
    assert b.take(other, 2, 10.0, 0.0, now=110.0).remaining == 1  # its own bucket
    blocked = Buckets.key("strict", "10.0.0.1")
    assert b.take(blocked, 1, 1.0, 60.0, now=0.0).allowed
    v = b.take(blocked, 1, 1.0, 60.0, now=0.5)
    assert not v.allowed and v.reset == 60.0
    assert not b.take(blocked, 1, 1.0, 60.0, now=30.0).allowed  # windows refill, still blocked
    assert b.take(blocked, 1, 1.0, 60.0, now=61.0).allowed


def test_a_full_table_reuses_the_oldest_slot_and_never_refuses_a_newcomer() -> None:
    b = Buckets.create(slots=4)
    for i in range(4):
        assert b.take(Buckets.key("r", f"c{i}"), 1, 3600.0, 0.0, now=float(i)).allowed
    assert b.take(Buckets.key("r", "new"), 1, 3600.0, 0.0, now=10.0).allowed


def _child(b: Buckets, key: int, out: object) -> None:
    out.put(b.take(key, 3, 3600.0, 0.0).allowed)  # type: ignore[attr-defined]


def test_processes_forked_after_create_share_the_buckets() -> None:
    b = Buckets.create(slots=64)
    key = Buckets.key("shared", "c")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(b, key, out)) for _ in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    results = sorted(out.get(timeout=5) for _ in procs)
    assert results == [False, False, True, True, True]
    assert not b.take(key, 3, 3600.0, 0.0).allowed  # the parent sees it too
