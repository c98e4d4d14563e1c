"""`assess`: which Redis settings lose acknowledged writes (problems) and which are worth a
note (transit/storage/redis/persistence.py)."""

from __future__ import annotations

from typing import Any

import pytest

from transit.storage.redis.persistence import ALWAYS_NOTE, EVERYSEC_NOTE, Assessment, assess

INFO_AOF = {"aof_enabled": 1, "aof_last_write_status": "ok", "aof_last_bgrewrite_status": "ok"}
INFO_NO_AOF = {**INFO_AOF, "aof_enabled": 0}
SAFE = {"appendonly": "yes", "appendfsync": "everysec", "no-appendfsync-on-rewrite": "no",
        "maxmemory": "0", "maxmemory-policy": "noeviction"}


def run(info: dict[str, Any] | None = None, role: str = "master", **config: str) -> Assessment:
    merged = {**SAFE, **{k.replace("_", "-"): v for k, v in config.items()}}
    return assess(INFO_AOF if info is None else info,
                  {k: v for k, v in merged.items() if v != "<absent>"}, role)


def test_recommended_settings_pass_with_the_everysec_window_noted() -> None:
    a = run()
    assert a.ok and a.problems == () and a.summary() == ""
    assert a.notes == (EVERYSEC_NOTE,)
    assert "1 s" in EVERYSEC_NOTE and "always" in EVERYSEC_NOTE


def test_always_passes_and_says_there_is_no_window() -> None:
    a = run(appendfsync="always")
    assert a.ok and a.notes == (ALWAYS_NOTE,)


@pytest.mark.parametrize("value", ["no", "NO"])
def test_aof_off_is_a_problem(value: str) -> None:
    a = run(INFO_NO_AOF, appendonly=value)
    assert not a.ok
    assert len(a.problems) == 1 and "appendonly is 'no'" in a.problems[0]
    assert a.summary() == a.problems[0]
    assert EVERYSEC_NOTE not in a.notes  # fsync is irrelevant without AOF


def test_appendfsync_no_is_a_problem() -> None:
    a = run(appendfsync="no")
    assert not a.ok and "appendfsync is 'no'" in a.summary() and "30 s" in a.summary()


def test_unknown_appendfsync_value_is_a_problem() -> None:
    assert "does not know" in run(appendfsync="sometimes").summary()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "allkeys-random",
                                    "volatile-ttl", "allkeys-lfu"])
@pytest.mark.parametrize("maxmemory", ["0", "104857600"])
def test_any_eviction_policy_is_a_problem_whatever_maxmemory_is(policy: str,
                                                                maxmemory: str) -> None:
    a = run(maxmemory_policy=policy, maxmemory=maxmemory)
    assert not a.ok and len(a.problems) == 1
    assert f"maxmemory-policy is '{policy}'" in a.problems[0]
    assert ("no limit yet" if maxmemory == "0" else maxmemory) in a.problems[0]


def test_noeviction_with_a_limit_is_only_noted() -> None:
    a = run(maxmemory="1048576")
    assert a.ok and any("refuses writes with an OOM error" in n for n in a.notes)


def test_every_problem_is_listed() -> None:
    a = run(INFO_NO_AOF, appendonly="no", maxmemory_policy="allkeys-lru")
    assert len(a.problems) == 2


def test_config_missing_falls_back_to_info_aof_enabled() -> None:
    # What `check` passes when CONFIG is disabled: INFO values only, no appendfsync.
    ok = assess(INFO_AOF, {"maxmemory": "0", "maxmemory-policy": "noeviction"}, "master")
    assert ok.ok and any("appendfsync could not be read" in n for n in ok.notes)
    off = assess(INFO_NO_AOF, {"maxmemory-policy": "noeviction"}, "master")
    assert "appendonly is 'no'" in off.summary()


def test_unreadable_settings_are_problems_when_they_decide_safety() -> None:
    a = assess({}, {}, "master")
    assert not a.ok
    assert any("AOF state unknown" in p for p in a.problems)
    assert any("maxmemory-policy unknown" in p for p in a.problems)


def test_no_appendfsync_on_rewrite_is_noted() -> None:
    a = run(no_appendfsync_on_rewrite="yes")
    assert a.ok and any("no-appendfsync-on-rewrite" in n for n in a.notes)
    assert not any("no-appendfsync-on-rewrite" in n for n in run().notes)


def test_failed_aof_write_is_noted() -> None:
    a = run({**INFO_AOF, "aof_last_write_status": "err"})
    assert a.ok and any("aof_last_write_status is 'err'" in n for n in a.notes)


def test_a_replica_is_judged_alike_and_noted() -> None:
    a = run(INFO_NO_AOF, role="slave", appendonly="no")
    assert not a.ok and any("role is 'slave'" in n for n in a.notes)
    assert not any("role" in n for n in run(role="").notes)  # unknown role: no note


def test_values_as_redis_py_parses_them() -> None:
    # INFO values arrive as ints, CONFIG values may arrive as bytes.
    a = assess({"aof_enabled": "1"}, {"appendfsync": b"always",  # type: ignore[dict-item]
                                      "maxmemory-policy": b"noeviction", "maxmemory": 0}, "master")  # type: ignore[dict-item]
    assert a.ok and a.notes == (ALWAYS_NOTE,)


def test_delayed_fsyncs_are_noted() -> None:
    a = run({**INFO_AOF, "aof_delayed_fsync": 3})
    assert a.ok and any("aof_delayed_fsync is 3" in n for n in a.notes)
    assert not any("aof_delayed_fsync" in n for n in run({**INFO_AOF, "aof_delayed_fsync": 0}).notes)
