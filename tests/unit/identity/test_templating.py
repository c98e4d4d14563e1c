"""ACL policy templating (spec auth-api §6.8): rendering, the write-time check, and that a
compiled ACL drops a path it cannot fill."""

from __future__ import annotations

import pytest

from transit.acl.acl import ACL
from transit.acl.policy import parse_policy
from transit.errors import UserError
from transit.identity.store import IdentityContext
from transit.identity.templating import balanced, render

ENTITY = {"id": "e-1", "name": "app-a", "metadata": {"app": "a", "glob": "x*", "empty": ""},
          "aliases": [{"id": "al-1", "name": "svc", "mount_accessor": "auth_approle_1",
                       "metadata": {"role": "r1"}, "custom_metadata": {"team": "blue"}}]}
GROUPS = ({"id": "g-1", "name": "ops", "metadata": {"tier": "gold"}},)
CTX = IdentityContext(("e-1", 1), 1, "e-1", False, (), ENTITY, GROUPS)


@pytest.mark.parametrize("template, want", [
    ("k/{{identity.entity.id}}", "k/e-1"),
    ("k/{{ identity.entity.name }}/x", "k/app-a/x"),
    ("transit/encrypt/{{identity.entity.metadata.app}}", "transit/encrypt/a"),
    ("k/{{identity.entity.aliases.auth_approle_1.id}}", "k/al-1"),
    ("k/{{identity.entity.aliases.auth_approle_1.name}}", "k/svc"),
    ("k/{{identity.entity.aliases.auth_approle_1.metadata.role}}", "k/r1"),
    ("k/{{identity.entity.aliases.auth_approle_1.custom_metadata.team}}", "k/blue"),
    ("k/{{identity.groups.ids.g-1.name}}", "k/ops"),
    ("k/{{identity.groups.names.ops.id}}/{{identity.groups.names.ops.metadata.tier}}",
     "k/g-1/gold"),
    ("plain/path", "plain/path"),
    # cannot be filled: the path block is dropped
    ("k/{{identity.entity.metadata.nope}}", None),
    ("k/{{identity.entity.metadata.empty}}", None),
    ("k/{{identity.entity.metadata.glob}}", None),
    ("k/{{identity.entity.aliases.auth_other.name}}", None),
    ("k/{{identity.groups.names.dev.id}}", None),
    ("k/{{identity.entity.unknown}}", None),
    ("k/{{time.now}}", None),
])
def test_render(template: str, want: str | None) -> None:
    assert render(template, CTX) == want


def test_no_entity_fills_nothing() -> None:
    assert render("k/{{identity.entity.id}}", None) is None
    assert render("k/plain", None) == "k/plain"


def test_balance_is_checked_when_a_policy_is_written() -> None:
    assert balanced("a/{{x}}/{{y}}") and balanced("plain")
    for bad in ("a/{{identity.entity.id", "a/}}x{{", "a/{{b{{c}}}}"):
        assert not balanced(bad)
    with pytest.raises(UserError, match="unbalanced templating characters"):
        parse_policy("p", 'path "a/{{identity.entity.id" { capabilities = ["read"] }')


def test_acl_fills_templated_paths_and_drops_unfillable_ones() -> None:
    policy = parse_policy("p", """
path "transit/encrypt/{{identity.entity.metadata.app}}" { capabilities = ["update"] }
path "secret/{{identity.entity.metadata.missing}}/*" { capabilities = ["read"] }
path "kv/{{identity.groups.names.ops.id}}/*" { capabilities = ["read"] }
path "static/x" { capabilities = ["read"] }
""")
    assert policy.templated
    acl = ACL([policy], CTX)
    assert acl.allowed("transit/encrypt/a", "update").allowed
    assert not acl.allowed("transit/encrypt/b", "update").allowed
    assert not acl.allowed("transit/encrypt/{{identity.entity.metadata.app}}", "update").allowed
    assert acl.allowed("kv/g-1/sub", "read").allowed
    assert not acl.allowed("secret/anything", "read").allowed
    assert acl.allowed("static/x", "read").allowed
    # without an entity every templated path is left out; the rest still applies
    plain = ACL([policy])
    assert not plain.allowed("transit/encrypt/a", "update").allowed
    assert not plain.allowed("transit/encrypt/{{identity.entity.metadata.app}}",
                             "update").allowed
    assert plain.allowed("static/x", "read").allowed
