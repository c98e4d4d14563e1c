"""The shared token buckets of the rate-limit quotas (transit/ratelimit.py): windows,
blocking, slot reuse, sharing across a fork."""

from __future__ import annotations

import multiprocessing

from transit.ratelimit import Buckets


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


def test_a_block_of_an_hour_reports_3600_seconds_whatever_the_clock_reads() -> None:
    # (29496.296 + 3600) - 29496.296 is a hair above 3600 in floats: ceil would say 3601
    now = 29496.296
    assert (now + 3600.0) - now > 3600.0
    b = Buckets.create(slots=8)
    k = Buckets.key("hour", "10.0.0.1")
    assert b.take(k, 1, 1.0, 3600.0, now=now - 0.1).allowed
    v = b.take(k, 1, 1.0, 3600.0, now=now)
    assert not v.allowed and v.reset_seconds == 3600


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
