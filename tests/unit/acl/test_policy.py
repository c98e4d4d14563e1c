"""ACL policy parsing (transit/acl/policy.py): HCL and JSON, legacy shorthands, errors."""

from __future__ import annotations

import json

import pytest

from transit.acl import parse_policy
from transit.acl.policy import CREATE, DENY, LIST, READ, SUDO, UPDATE
from transit.acl.store import DEFAULT_POLICY
from transit.errors import UserError


def test_parse_hcl_capabilities_and_prefix():
    text = 'path "secret/*" {\n  capabilities = ["read", "list"]\n}\npath "/sys/mounts" { capabilities = ["read", "sudo"] }\n'
    p = parse_policy("p", text)
    assert p.raw == text
    assert [r.pattern for r in p.paths] == ["secret/*", "sys/mounts"]
    glob, exact = p.paths
    assert glob.is_prefix and glob.path == "secret/" and glob.capabilities == READ | LIST
    assert not exact.is_prefix and exact.path == "sys/mounts" and exact.capabilities == READ | SUDO


@pytest.mark.parametrize(
    "legacy, bits",
    [
        ("deny", DENY),
        ("read", READ | LIST),
        ("write", CREATE | READ | UPDATE | 16 | LIST),
        ("sudo", CREATE | READ | UPDATE | 16 | LIST | SUDO),
    ],
)
def test_parse_legacy_policy_shorthand(legacy: str, bits: int):
    p = parse_policy("p", f'path "a/*" {{ policy = "{legacy}" }}')
    assert p.paths[0].capabilities == bits


def test_parse_deny_wipes_other_capabilities_and_parameters():
    p = parse_policy(
        "p",
        'path "a" { capabilities = ["read", "deny", "update"]\n allowed_parameters = { "x" = [] } }',
    )
    assert p.paths[0].capabilities == DENY
    assert p.paths[0].allowed_parameters is None


def test_parse_segment_wildcards_keep_trailing_star():
    p = parse_policy("p", 'path "a/+/b*" { capabilities = ["read"] }')
    r = p.paths[0]
    assert r.has_segment_wildcards and not r.is_prefix and r.path == "a/+/b*"


def test_parse_parameters_and_wrapping_ttls():
    text = """
    path "transit/encrypt/*" {
      capabilities = ["update"]
      allowed_parameters = { "Plaintext" = [], "context" = ["abc", "x*"] }
      denied_parameters = { "key_version" = [] }
      required_parameters = ["plaintext"]
      min_wrapping_ttl = "1m"
      max_wrapping_ttl = 3600
    }
    """
    r = parse_policy("p", text).paths[0]
    assert r.allowed_parameters == {"plaintext": [], "context": ["abc", "x*"]}
    assert r.denied_parameters == {"key_version": []}
    assert r.required_parameters == ["plaintext"]
    assert (r.min_wrapping_ttl, r.max_wrapping_ttl) == (60, 3600)


def test_parse_json_policy_object_and_list_forms():
    obj = json.dumps({"path": {"secret/*": {"capabilities": ["read"]}, "a": {"policy": "write"}}})
    p = parse_policy("j", obj)
    assert p.raw == obj
    assert {r.pattern for r in p.paths} == {"secret/*", "a"}
    lst = json.dumps(
        {"path": [{"x": {"capabilities": ["list"]}}, {"y": {"capabilities": ["read"]}}]}
    )
    assert [r.pattern for r in parse_policy("j", lst).paths] == ["x", "y"]


def test_parse_empty_and_comment_only_policies():
    assert parse_policy("e", "").paths == []
    assert parse_policy("e", "# nothing\n// here\n").paths == []


def test_parse_default_policy_text():
    p = parse_policy("default", DEFAULT_POLICY)
    assert "auth/token/lookup-self" in {r.pattern for r in p.paths}


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'path "a" { capabilities = ["reed"] }',
            'failed to parse policy: path "a": invalid capability "reed"',
        ),
        (
            'path "a" { policy = "admin" }',
            'failed to parse policy: path "a": invalid policy "admin"',
        ),
        (
            'path "a" { capabilities = ["read"]\n bogus = 1 }',
            'failed to parse policy: path "a": invalid key "bogus"',
        ),
        ('foo = "bar"', 'failed to parse policy: invalid key "foo"'),
        (
            'path "a/+*" { capabilities = ["read"] }',
            "failed to parse policy: path \"a/+*\": invalid use of wildcards ('+*' is forbidden)",
        ),
        (
            'path "a" { capabilities = ["read"]\n min_wrapping_ttl = 100\n max_wrapping_ttl = 10 }',
            "failed to parse policy: max_wrapping_ttl cannot be less than min_wrapping_ttl",
        ),
        ('path "a" { capabilities = [1] }', "failed to parse policy: "),
        (
            'path "a" { capabilities = ["read"]\n max_wrapping_ttl = "3000000000h" }',
            "failed to parse policy: error parsing max_wrapping_ttl: time: invalid duration",
        ),
        (
            'path "a" { capabilities = ["read"]\n min_wrapping_ttl = 99999999999999999999 }',
            "failed to parse policy: error parsing min_wrapping_ttl: time: invalid duration",
        ),
    ],
)
def test_parse_errors(text: str, message: str):
    with pytest.raises(UserError) as exc:
        parse_policy("p", text)
    assert exc.value.message.startswith(message)


@pytest.mark.parametrize(
    "text", ['path "a" { capabilities = [read }', 'path "a" {', "{not json", '["a"]', 'path = "x"']
)
def test_parse_malformed_text(text: str):
    with pytest.raises(UserError) as exc:
        parse_policy("p", text)
    assert exc.value.message.startswith("failed to parse policy: ")
