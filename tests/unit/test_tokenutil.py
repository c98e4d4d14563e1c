"""The shared token_* role fields (transit/tokenutil.py) and the login token type
rule (transit/login.py)."""

from __future__ import annotations

from typing import Any

import pytest

from transit.errors import UserError
from transit.fields import FieldData
from transit.login import token_type_for
from transit.tokenutil import (
    TokenParams,
    addr_allowed,
    parse_cidrs,
    parse_token_fields,
    token_fields,
)

LEGACY = ("policies", "ttl", "max_ttl", "period", "bound_cidrs", "num_uses")


def parse(raw: dict[str, Any], current: TokenParams | None = None,
          legacy: tuple[str, ...] = LEGACY, adjust: bool = False) -> tuple[TokenParams, list[str]]:
    return parse_token_fields(FieldData(raw, token_fields(legacy)), current,
                              adjust_default_types=adjust)


def test_defaults_and_response_shape() -> None:
    p, warnings = parse({})
    assert warnings == []
    assert p.to_response() == {
        "token_bound_cidrs": [], "token_explicit_max_ttl": 0, "token_max_ttl": 0,
        "token_no_default_policy": False, "token_num_uses": 0, "token_period": 0,
        "token_policies": [], "token_type": "default", "token_ttl": 0,
    }


def test_every_field_parses() -> None:
    p, _ = parse({
        "token_bound_cidrs": "10.0.0.0/8, 127.0.0.1", "token_explicit_max_ttl": "2h",
        "token_max_ttl": 3600, "token_no_default_policy": "true", "token_num_uses": "4",
        "token_period": "90m", "token_policies": ["B", "a,c", "a"], "token_type": "service",
        "token_ttl": "30m",
    })
    assert p.bound_cidrs == ["10.0.0.0/8", "127.0.0.1"]
    assert (p.explicit_max_ttl, p.max_ttl, p.period, p.ttl) == (7200, 3600, 5400, 1800)
    assert p.no_default_policy is True and p.num_uses == 4
    assert p.policies == ["a", "b", "c"] and p.type == "service"


def test_round_trip_through_storage_json() -> None:
    p, _ = parse({"policies": "x", "token_ttl": 5, "token_bound_cidrs": ["::1"]})
    assert TokenParams.from_json(p.to_json()) == p
    assert TokenParams.from_json(None) == TokenParams()


def test_updates_merge_into_current() -> None:
    first, _ = parse({"token_ttl": 60, "token_policies": "a"})
    second, _ = parse({"token_num_uses": 2}, first)
    assert (second.ttl, second.policies, second.num_uses) == (60, ["a"], 2)
    assert first.num_uses == 0  # the current params are not changed in place
    cleared, _ = parse({"token_policies": None}, second)  # JSON null = the zero value
    assert cleared.policies == [] and cleared.ttl == 60


def test_legacy_names() -> None:
    p, _ = parse({"policies": "a,b", "ttl": "1h", "bound_cidrs": "10.0.0.0/8"})
    assert p.policies == ["a", "b"] and p.ttl == 3600 and p.bound_cidrs == ["10.0.0.0/8"]
    data = p.to_response()
    assert data["policies"] == ["a", "b"] and data["ttl"] == 3600
    assert data["bound_cidrs"] == ["10.0.0.0/8"]
    newer, _ = parse({"token_policies": "c"}, p)  # the new name retires the legacy key
    data = newer.to_response()
    assert "policies" not in data and data["token_policies"] == ["c"] and data["ttl"] == 3600
    # a method that does not accept a legacy name ignores it
    p, _ = parse({"period": "1h"}, legacy=())
    assert p.period == 0


@pytest.mark.parametrize(("raw", "message"), [
    ({"token_ttl": "2h", "token_max_ttl": "1h"},
     "'token_ttl' cannot be greater than 'token_max_ttl'"),
    ({"token_ttl": -1},
     "error converting input -1 for field \"token_ttl\": cannot provide negative value '-1'"),
    ({"token_max_ttl": "-5s"}, "error converting input -5s for field \"token_max_ttl\": "
     "cannot provide negative value '-5'"),
    ({"token_period": -3},
     "error converting input -3 for field \"token_period\": cannot provide negative value '-3'"),
    ({"token_ttl": "soon"},
     'error converting input soon for field "token_ttl": time: invalid duration "soon"'),
    ({"token_type": "default-service"}, 'invalid \'token_type\' value "default-service"'),
    ({"token_num_uses": -1}, "'token_num_uses' cannot be negative"),
    ({"token_type": "foo"}, 'invalid \'token_type\' value "foo"'),
    ({"token_type": "batch", "token_period": 10},
     "'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens"),
    ({"token_type": "batch", "token_num_uses": 1},
     "'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with "
     "limited use count"),
    ({"token_bound_cidrs": "nope"},
     'error parsing address "nope": Unable to convert "nope" to an IPv4 or IPv6 address, or a '
     "UNIX Socket"),
])
def test_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as exc:
        parse(raw)
    assert exc.value.message == message


@pytest.mark.parametrize("raw", [
    {"token_ttl": "soon"}, {"token_ttl": True}, {"token_num_uses": "x"},
    {"token_num_uses": 1.5}, {"token_no_default_policy": "maybe"},
    {"token_policies": {"a": 1}}, {"token_policies": [None]}, {"token_bound_cidrs": [True]},
])
def test_malformed_values_are_user_errors(raw: dict[str, Any]) -> None:
    with pytest.raises(UserError):
        parse(raw)


def test_default_types_adjust_with_a_warning() -> None:
    p, warnings = parse({"token_type": "default-batch"}, adjust=True)
    assert p.type == "batch"
    assert warnings == ["default-batch has no useful meaning; adjusting to batch"]
    p, warnings = parse({"token_type": "DEFAULT"})
    assert p.type == "default" and warnings == []


def test_cidrs() -> None:
    assert parse_cidrs("127.0.0.1/32,10.1.2.3/8,::1/128,fd00::/8") == [
        "127.0.0.1", "10.1.2.3/8", "::1", "fd00::/8"]
    assert addr_allowed("10.9.9.9", ["10.1.2.3/8"])
    assert not addr_allowed("11.0.0.1", ["10.0.0.0/8", "127.0.0.1"])
    assert addr_allowed("anything", [])
    assert not addr_allowed("not-an-ip", ["127.0.0.1"])


@pytest.mark.parametrize(("role", "mount", "expected"), [
    ("default", "default-service", "service"),
    ("default", "default-batch", "batch"),
    ("", "", "service"),
    ("service", "default-batch", "service"),
    ("batch", "default-service", "batch"),
    ("batch", "service", "service"),
    ("service", "batch", "batch"),
])
def test_login_token_type(role: str, mount: str, expected: str) -> None:
    assert token_type_for(role, mount) == expected


def test_token_entry_keeps_login_fields() -> None:
    """bound_cidrs and an auth method's internal data survive storage; lookups show the
    CIDRs, never the internal data; the auth block omits empty token/identity policies."""
    from transit.tokens.entry import TokenEntry

    entry = TokenEntry(id="t", policies=["a"], bound_cidrs=["10.0.0.0/8"],
                       internal_data={"role_id": "r"}, expire_time=2e9, ttl=60)
    back = TokenEntry.from_json(entry.to_json(), id="t")
    assert back.bound_cidrs == ["10.0.0.0/8"] and back.internal_data == {"role_id": "r"}
    data = back.lookup_data(1e9)
    assert data["bound_cidrs"] == ["10.0.0.0/8"] and "internal_data" not in data
    assert b"internal_data" not in TokenEntry(id="x").to_json()
    block = back.auth_block(identity_policies=["ent"])
    assert list(block)[:5] == ["client_token", "accessor", "policies", "token_policies",
                               "identity_policies"]
    assert block["policies"] == ["a", "ent"] and block["identity_policies"] == ["ent"]
    empty = TokenEntry(id="y").auth_block()
    assert "token_policies" not in empty and "identity_policies" not in empty
