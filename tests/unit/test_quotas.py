"""Rate-limit quotas (transit/quotas.py), the pure parts: which rule a path falls under,
exempt paths, a rule's tokens. The shared buckets: tests/unit/test_ratelimit.py."""

from __future__ import annotations

from transit.quotas import QuotaConfig, QuotaTable, RateLimitQuota


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
