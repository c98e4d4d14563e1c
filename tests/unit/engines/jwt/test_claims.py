"""Pure claim checks of the JWT auth method (transit/engines/jwt/claims.py)."""

from __future__ import annotations

import pytest

from transit.engines.jwt.claims import (
    ClaimError,
    Expected,
    get_claim,
    glob_match,
    group_names,
    mapped_metadata,
    user_name,
    validate_bound_claims,
    validate_registered,
)

NOW = 1_800_000_000.0
K8S = {"sub": "system:serviceaccount:prod:app", "iat": NOW,
       "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "app"}},
       "a/b": {"c~d": 1}, "list": ["x", "y"]}


@pytest.mark.parametrize(("pattern", "value", "ok"), [
    ("*", "", True), ("abc", "abc", True), ("abc", "abd", False), ("a*", "abc", True),
    ("*c", "abc", True), ("a*c", "ac", True), ("a*b*c", "aXbYc", True), ("a*b*c", "acb", False),
    ("ab*ba", "aba", False), ("x?y", "xzy", False), ("x?y", "x?y", True),
    ("*@example.com", "bob@example.com", True), ("*@example.com", "bob@example.org", False),
])
def test_glob_has_only_the_star_wildcard(pattern: str, value: str, ok: bool) -> None:
    assert glob_match(pattern, value) is ok


def test_json_pointers() -> None:
    assert get_claim(K8S, "/kubernetes.io/namespace") == "prod"
    assert get_claim(K8S, "/kubernetes.io/serviceaccount/name") == "app"
    assert get_claim(K8S, "/a~1b/c~0d") == 1
    assert get_claim(K8S, "/list/1") == "y"
    assert get_claim(K8S, "/list/9") is None and get_claim(K8S, "/nope/x") is None
    assert get_claim(K8S, "kubernetes.io") == K8S["kubernetes.io"]  # no slash: top level
    assert user_name(K8S, "/kubernetes.io/serviceaccount/name", True) == "app"
    with pytest.raises(ClaimError, match='claim "/kubernetes.io/serviceaccount/name" not found'):
        user_name(K8S, "/kubernetes.io/serviceaccount/name", False)


def test_times_and_leeways() -> None:
    ok = {"iat": NOW, "nbf": NOW, "exp": NOW + 60}
    validate_registered(ok, Expected(), NOW)
    validate_registered({**ok, "exp": NOW - 59}, Expected(), NOW)  # default skew 60 s
    with pytest.raises(ClaimError, match="token is expired"):
        validate_registered({**ok, "exp": NOW - 61}, Expected(), NOW)
    with pytest.raises(ClaimError, match="token is expired"):
        validate_registered({**ok, "exp": NOW - 1}, Expected(clock_skew_leeway=-1), NOW)
    with pytest.raises(ClaimError, match="token not yet valid"):
        validate_registered({**ok, "nbf": NOW + 61}, Expected(), NOW)
    with pytest.raises(ClaimError, match="token issued in the future"):
        validate_registered({**ok, "iat": NOW + 61}, Expected(), NOW)
    # missing exp: max(iat, nbf) + expiration leeway (150 s by default, -1: none)
    validate_registered({"iat": NOW - 200}, Expected(), NOW)
    with pytest.raises(ClaimError, match="token is expired"):
        validate_registered({"iat": NOW - 211}, Expected(), NOW)
    with pytest.raises(ClaimError, match="token is expired"):
        validate_registered({"iat": NOW - 61}, Expected(expiration_leeway=-1), NOW)
    # missing nbf and iat: exp - not-before leeway
    with pytest.raises(ClaimError, match="token not yet valid"):
        validate_registered({"exp": NOW + 300}, Expected(not_before_leeway=100), NOW)
    with pytest.raises(ClaimError, match="no issued at"):
        validate_registered({"sub": "x"}, Expected(), NOW)
    with pytest.raises(ClaimError, match="Claims.exp of type jwt.NumericDate"):
        validate_registered({"exp": "soon"}, Expected(), NOW)


def test_registered_claims() -> None:
    claims = {"iss": "i", "sub": "s", "aud": "a", "iat": NOW}
    validate_registered(claims, Expected(issuer="i", subject="s", audiences=("b", "a")), NOW)
    for exp, text in [(Expected(issuer="j"), "invalid issuer"),
                      (Expected(subject="t"), "invalid subject"),
                      (Expected(audiences=("b",)), "invalid audience")]:
        with pytest.raises(ClaimError, match=text):
            validate_registered(claims, exp, NOW)
    with pytest.raises(ClaimError, match="expected string or array value"):
        validate_registered({**claims, "aud": None}, Expected(), NOW)


def test_bound_claims_string_mode() -> None:
    claims = {"n": 5, "f": 5.5, "b": True, "s": "x", "l": ["p", "q"], "nl": [5], "m": {"a": 1}}
    validate_bound_claims(claims, {"n": 5, "f": 5, "b": True, "s": ["y", "x"], "l": "q"}, False)
    for bound in ({"n": "5"}, {"s": 5}, {"b": "true"}, {"nl": 5}, {"l": ["r"]}):
        with pytest.raises(ClaimError, match="does not match any associated bound claim"):
            validate_bound_claims(claims, bound, False)
    with pytest.raises(ClaimError, match='claim "zz" is missing'):
        validate_bound_claims(claims, {"zz": "x"}, False)
    with pytest.raises(ClaimError, match="received claim is not a string, bool, int or list: "
                                         "map\\[a:1\\]"):
        validate_bound_claims(claims, {"m": "x"}, False)


def test_bound_claims_glob_mode() -> None:
    claims = {"email": "bob@example.com", "n": 5, "groups": ["a", "ops-x"]}
    validate_bound_claims(claims, {"email": "*@example.com", "groups": "ops-*"}, True)
    with pytest.raises(ClaimError):
        validate_bound_claims(claims, {"n": "*"}, True)  # globs match strings only


def test_metadata_and_groups() -> None:
    claims = {"sa": "app", "n": 5, "groups": ["a", "", "a", "b"], "one": "solo"}
    assert mapped_metadata(claims, {"sa": "service", "missing": "m"}) == {"service": "app"}
    with pytest.raises(ClaimError, match="error converting claim 'n' to string"):
        mapped_metadata(claims, {"n": "num"})
    assert group_names(claims, "groups") == ["a", "b"]
    assert group_names(claims, "one") == ["solo"]
    assert group_names({"g": []}, "g") == []
    with pytest.raises(ClaimError, match='failed to fetch groups: "x" claim not found'):
        group_names(claims, "x")
    with pytest.raises(ClaimError, match="value 5 in groups claim"):
        group_names({"g": [5]}, "g")
