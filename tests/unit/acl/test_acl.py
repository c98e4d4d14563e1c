"""The compiled ACL (transit/acl/acl.py): matching with Vault's precedence rules, capabilities,
parameter constraints and sudo paths."""

from __future__ import annotations

from typing import Any

import pytest

from transit.acl import ACL, Decision, parse_policy, requires_sudo


def acl(*texts: str) -> ACL:
    return ACL([parse_policy(f"p{i}", t) for i, t in enumerate(texts)])


def caps(a: ACL, path: str) -> list[str]:
    return a.capabilities(path)


def test_deny_by_default_and_empty_acl():
    a = ACL([])
    assert a.allowed("transit/keys/k", "read") == Decision(False)
    assert caps(a, "anything") == ["deny"]


def test_exact_vs_glob():
    a = acl(
        'path "transit/keys/k" { capabilities = ["read"] }\npath "transit/keys/*" { capabilities = ["list", "delete"] }'
    )
    assert a.allowed("transit/keys/k", "read").allowed
    # an exact rule wins outright, even if it lacks the capability
    assert not a.allowed("transit/keys/k", "delete").allowed
    assert a.allowed("transit/keys/other", "delete").allowed
    assert not a.allowed("transit/keys/other", "read").allowed


def test_glob_matches_across_slashes_and_empty_suffix():
    a = acl('path "secret/*" { capabilities = ["read"] }')
    assert a.allowed("secret/a/b/c", "read").allowed
    assert a.allowed("secret/", "read").allowed
    assert not a.allowed("secret", "read").allowed
    b = acl('path "transit/encrypt/app-*" { capabilities = ["update"] }')
    assert b.allowed("transit/encrypt/app-1", "update").allowed
    assert not b.allowed("transit/encrypt/other", "update").allowed


def test_longest_prefix_wins():
    a = acl(
        'path "secret/*" { capabilities = ["read"] }\npath "secret/team/*" { capabilities = ["update"] }'
    )
    assert a.allowed("secret/team/x", "update").allowed
    assert not a.allowed("secret/team/x", "read").allowed
    assert a.allowed("secret/other", "read").allowed


def test_plus_matches_exactly_one_segment():
    a = acl('path "transit/keys/+" { capabilities = ["read"] }')
    assert a.allowed("transit/keys/k", "read").allowed
    assert not a.allowed("transit/keys/k/config", "read").allowed
    assert not a.allowed("transit/keys", "read").allowed
    b = acl('path "secret/+/config" { capabilities = ["read"] }')
    assert b.allowed("secret/x/config", "read").allowed
    assert not b.allowed("secret/x/y/config", "read").allowed


def test_plus_with_trailing_glob():
    a = acl('path "kv/+/team-*" { capabilities = ["read"] }')
    assert a.allowed("kv/data/team-a/x", "read").allowed
    assert not a.allowed("kv/data/other", "read").allowed


@pytest.mark.parametrize(
    "low, high, path",
    [
        # rule 1: the first wildcard later ranks higher
        (
            'path "a/+/c/d" { capabilities = ["read"] }',
            'path "a/b/+/d" { capabilities = ["update"] }',
            "a/b/c/d",
        ),
        (
            'path "a/+" { capabilities = ["read"] }',
            'path "a/b*" { capabilities = ["update"] }',
            "a/bc",
        ),
        # rule 2: not ending in * ranks higher
        (
            'path "a/+/b*" { capabilities = ["read"] }',
            'path "a/+/bc" { capabilities = ["update"] }',
            "a/x/bc",
        ),
        (
            'path "a/*" { capabilities = ["read"] }',
            'path "a/+" { capabilities = ["update"] }',
            "a/x",
        ),
        # rule 3: fewer + segments ranks higher
        (
            'path "a/+/+/d" { capabilities = ["read"] }',
            'path "a/+/c/d" { capabilities = ["update"] }',
            "a/b/c/d",
        ),
        # rule 4: longer ranks higher
        (
            'path "a/+/b*" { capabilities = ["read"] }',
            'path "a/+/bc*" { capabilities = ["update"] }',
            "a/x/bcd",
        ),
    ],
)
def test_wildcard_precedence(low: str, high: str, path: str):
    for order in ((low, high), (high, low)):
        a = acl(*order)
        assert a.allowed(path, "update").allowed, order
        assert not a.allowed(path, "read").allowed, order


def test_same_pattern_unions_across_policies_with_granting_policies():
    a = acl(
        'path "t/*" { capabilities = ["read"] }', 'path "t/*" { capabilities = ["read", "update"] }'
    )
    d = a.allowed("t/x", "read")
    assert d.allowed and d.granting_policies == [
        {"name": "p0", "type": "acl"},
        {"name": "p1", "type": "acl"},
    ]
    assert a.allowed("t/x", "update").granting_policies == [{"name": "p1", "type": "acl"}]
    assert caps(a, "t/x") == ["read", "update"]


def test_different_patterns_do_not_union():
    a = acl('path "t/*" { capabilities = ["read"] }', 'path "t/x/*" { capabilities = ["update"] }')
    assert not a.allowed("t/x/y", "read").allowed


def test_deny_wins_for_same_pattern_in_any_order():
    for texts in (
        (
            'path "t/k" { capabilities = ["deny"] }',
            'path "t/k" { capabilities = ["read", "sudo"] }',
        ),
        (
            'path "t/k" { capabilities = ["read", "sudo"] }',
            'path "t/k" { capabilities = ["deny"] }',
        ),
    ):
        a = acl(*texts)
        d = a.allowed("t/k", "read")
        assert not d.allowed and not d.sudo
        assert caps(a, "t/k") == ["deny"]


def test_deny_on_more_specific_path():
    a = acl(
        'path "transit/*" { capabilities = ["read", "update"] }\npath "transit/keys/secret" { capabilities = ["deny"] }'
    )
    assert not a.allowed("transit/keys/secret", "read").allowed
    assert a.allowed("transit/keys/other", "read").allowed


def test_list_on_trailing_slash_paths():
    exact = acl('path "transit/keys" { capabilities = ["list"] }')
    assert exact.allowed("transit/keys/", "list").allowed
    assert exact.allowed("transit/keys", "list").allowed
    assert not exact.allowed("transit/keys/", "read").allowed
    glob = acl('path "transit/keys/*" { capabilities = ["list"] }')
    assert glob.allowed("transit/keys/", "list").allowed
    plus = acl('path "transit/+" { capabilities = ["list"] }')
    assert plus.allowed("transit/keys/", "list").allowed


def test_create_vs_update():
    a = acl('path "transit/encrypt/*" { capabilities = ["update"] }')
    assert a.allowed("transit/encrypt/k", "update").allowed
    assert not a.allowed("transit/encrypt/k", "create").allowed
    b = acl('path "transit/encrypt/*" { capabilities = ["create"] }')
    assert b.allowed("transit/encrypt/k", "create").allowed
    assert not b.allowed("transit/encrypt/k", "update").allowed


def test_operation_map_and_unknown_operation():
    a = acl('path "x" { capabilities = ["create", "read", "update", "delete", "list", "patch"] }')
    for op in ("create", "read", "update", "delete", "list", "patch", "renew", "revoke"):
        assert a.allowed("x", op).allowed, op
    assert not a.allowed("x", "frobnicate").allowed
    assert a.allowed("anything", "help").allowed


def test_sudo_flag():
    a = acl('path "sys/audit*" { capabilities = ["read", "sudo"] }')
    d = a.allowed("sys/audit", "read")
    assert d.allowed and d.sudo
    d = a.allowed("sys/audit/file", "update")
    assert not d.allowed and d.sudo
    assert a.has_sudo("sys/audit/x")


def test_leading_slash_is_ignored():
    a = acl('path "/secret/x" { capabilities = ["read"] }')
    assert a.allowed("/secret/x", "read").allowed
    assert a.allowed("secret/x", "read").allowed


def test_root_policy_allows_everything():
    a = ACL([parse_policy("p", 'path "x" { capabilities = ["deny"] }'), parse_policy("root", "")])
    d = a.allowed("x", "delete")
    assert d.allowed and d.sudo and d.is_root
    assert d.granting_policies == [{"name": "root", "type": "acl"}]
    assert caps(a, "x") == ["root"]


def test_capabilities_sorted():
    a = acl(
        'path "x/*" { capabilities = ["update", "sudo", "create", "read", "list", "delete", "patch"] }'
    )
    assert caps(a, "x/y") == ["create", "delete", "list", "patch", "read", "sudo", "update"]


def test_memo_is_bounded_and_consistent():
    a = acl('path "k/*" { capabilities = ["read"] }')
    for i in range(10000):
        assert a.allowed(f"k/{i}", "read").allowed
    assert len(a._memo) <= 8192
    assert a.allowed("k/1", "read") is a.allowed("k/1", "read")


# -- parameter constraints -----------------------------------------------------------------


PARAMS = """
path "transit/encrypt/*" {
  capabilities = ["update", "create"]
  allowed_parameters = { "plaintext" = [], "context" = ["ab*", "x"] }
  denied_parameters = { "key_version" = [] }
}
path "transit/required/*" {
  capabilities = ["update"]
  required_parameters = ["plaintext"]
}
path "transit/deny-all/*" {
  capabilities = ["update"]
  denied_parameters = { "*" = [] }
}
"""


@pytest.mark.parametrize(
    "path, data, ok",
    [
        ("transit/encrypt/k", {"plaintext": "aGk="}, True),
        ("transit/encrypt/k", {}, True),
        ("transit/encrypt/k", {"plaintext": "aGk=", "context": "abc"}, True),
        ("transit/encrypt/k", {"plaintext": "aGk=", "context": "zzz"}, False),
        ("transit/encrypt/k", {"plaintext": "aGk=", "nonce": "x"}, False),
        ("transit/encrypt/k", {"Key_Version": 1}, False),
        ("transit/required/k", {"plaintext": "x"}, True),
        ("transit/required/k", {"other": "x"}, False),
        ("transit/deny-all/k", {}, True),
        ("transit/deny-all/k", {"a": 1}, False),
    ],
)
def test_parameter_constraints(path: str, data: dict[str, Any], ok: bool):
    a = acl(PARAMS)
    assert a.allowed(path, "update", data).allowed is ok
    assert a.allowed(path, "update", data).allowed is ok  # memo must not leak data results


def test_wrapping_ttl_constraints():
    a = acl(
        'path "w/*" { capabilities = ["read"]\n min_wrapping_ttl = 10\n max_wrapping_ttl = 100 }'
    )
    assert not a.allowed("w/x", "read").allowed
    assert a.allowed("w/x", "read", wrap_ttl=50).allowed
    assert not a.allowed("w/x", "read", wrap_ttl=500).allowed
    assert not a.allowed("w/x", "read", wrap_ttl=5).allowed


# -- sudo paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, sudo",
    [
        ("sys/audit", True),
        ("sys/audit/file", True),
        ("sys/raw/core/x", True),
        ("sys/rotate", True),
        ("sys/seal", True),
        ("sys/step-down", True),
        ("sys/remount", True),
        ("sys/auth/x", True),
        ("auth/token/accessors/", True),
        ("auth/token/revoke-orphan/x", True),
        ("sys/policies/acl/x", False),
        ("sys/mounts", False),
        ("sys/audit-hash/file", False),
        ("sys/auth", False),
        ("transit/keys/k", False),
        ("sys/key-status", False),
    ],
)
def test_requires_sudo(path: str, sudo: bool):
    assert requires_sudo(path, "update") is sudo
    assert requires_sudo(path, "help") is False
