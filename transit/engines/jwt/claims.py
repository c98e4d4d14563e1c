"""Claim checks of a verified JWT (Vault's vault-plugin-auth-jwt `path_login.go`,
`claims.go` and hashicorp/cap `jwt.Validate`), as pure functions.

Each raises `ClaimError` with the text Vault answers (400). Order as in Vault: registered
claims and times (`validate_registered`, prefixed `error validating token: `), the role's
audience rule, the identity (user claim, claim mappings, groups claim: `identity`), then the
bound claims (`validate_bound_claims`, prefixed `error validating claims: `).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transit.fields import go_value
from transit.gocompat import is_digits, json_kind

DEFAULT_SKEW = 60  # cap's clock skew leeway when the role says 0
DEFAULT_LEEWAY = 150  # cap's expiration / not-before leeway when the role says 0


class ClaimError(ValueError):
    """A claim check failed; `str()` is Vault's message."""


# -- JSON pointers --------------------------------------------------------------------------


def pointer_get(claims: Any, pointer: str) -> Any:
    """RFC 6901 lookup (`/kubernetes.io/namespace`); None when absent."""
    if pointer == "":
        return claims
    node = claims
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            if part not in node:
                return None
            node = node[part]
        elif isinstance(node, list):
            if not is_digits(part) or int(part) >= len(node):
                return None
            node = node[int(part)]
        else:
            return None
    return node


def get_claim(claims: dict[str, Any], name: str) -> Any:
    """Vault's getClaim: a JSON pointer when `name` starts with `/`, else a top-level key."""
    if name.startswith("/"):
        return pointer_get(claims, name)
    return claims.get(name)


# -- registered claims ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    issuer: str = ""
    subject: str = ""
    audiences: tuple[str, ...] = ()
    clock_skew_leeway: int = 0  # the role's values: 0 = default, -1 = none
    expiration_leeway: int = 0
    not_before_leeway: int = 0


def _leeway(value: int, default: int) -> int:
    if value == 0:
        return default
    return max(value, 0)


def _string_claim(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ClaimError(f"json: cannot unmarshal {json_kind(value)} into Go struct field "
                         f"Claims.{name} of type string")
    return value


def _time_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClaimError(f"json: cannot unmarshal {json_kind(value)} into Go struct field "
                         f"Claims.{name} of type jwt.NumericDate")
    return float(value)


def audiences(claims: dict[str, Any]) -> list[str]:
    """The `aud` claim as a list (a string or a list of strings, go-jose's Audience)."""
    aud = claims.get("aud", ...)
    if aud is ...:
        return []
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return list(aud)
    raise ClaimError("go-jose/go-jose/jwt: expected string or array value to unmarshal to "
                     "Audience")


def validate_registered(claims: dict[str, Any], exp: Expected, now: float) -> None:
    """iss, sub, aud and the times (cap `Validate`); texts without Vault's prefix."""
    issuer = _string_claim(claims, "iss")
    subject = _string_claim(claims, "sub")
    auds = audiences(claims)
    if exp.issuer and issuer != exp.issuer:
        raise ClaimError("invalid issuer (iss) claim")
    if exp.subject and subject != exp.subject:
        raise ClaimError("invalid subject (sub) claim")
    if exp.audiences and not any(a in exp.audiences for a in auds):
        raise ClaimError("invalid audience (aud) claim: audience claim does not match any "
                         "expected audience")
    iat = _time_claim(claims, "iat")
    nbf = _time_claim(claims, "nbf")
    expiry = _time_claim(claims, "exp")
    if iat is None and nbf is None and expiry is None:
        raise ClaimError("no issued at (iat), not before (nbf), or expiration time (exp) "
                         "claims in token")
    skew = _leeway(exp.clock_skew_leeway, DEFAULT_SKEW)
    if expiry is None:
        expiry = max(t for t in (iat, nbf) if t is not None) + _leeway(
            exp.expiration_leeway, DEFAULT_LEEWAY)
    if nbf is None:
        nbf = iat if iat is not None else expiry - _leeway(exp.not_before_leeway,
                                                           DEFAULT_LEEWAY)
    if now + skew < nbf:
        raise ClaimError("invalid not before (nbf) claim: token not yet valid")
    if now - skew > expiry:
        raise ClaimError("invalid expiration time (exp) claim: token is expired")
    if iat is not None and now + skew < iat:
        raise ClaimError("invalid issued at (iat) claim: token issued in the future")


# -- identity -------------------------------------------------------------------------------


def normalize_list(value: Any) -> list[Any] | None:
    """Vault's normalizeList: a list stays, a string/bool/number becomes a one-item list."""
    if isinstance(value, list):
        return value
    if isinstance(value, str | bool | int | float):
        return [value]
    return None


def user_name(claims: dict[str, Any], user_claim: str, json_pointer: bool) -> str:
    raw = pointer_get(claims, user_claim) if json_pointer else claims.get(user_claim)
    if raw is None:
        raise ClaimError(f'claim "{user_claim}" not found in token')
    if not isinstance(raw, str):
        raise ClaimError(f'claim "{user_claim}" could not be converted to string')
    return raw


def mapped_metadata(claims: dict[str, Any], mappings: dict[str, str]) -> dict[str, str]:
    """Vault's extractMetadata: each mapped claim present must be a string."""
    out: dict[str, str] = {}
    for source, target in sorted(mappings.items()):
        value = get_claim(claims, source)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ClaimError(f"error converting claim '{source}' to string")
        out[target] = value
    return out


def group_names(claims: dict[str, Any], groups_claim: str) -> list[str]:
    """The groups claim as group alias names (empty strings skipped)."""
    raw = get_claim(claims, groups_claim)
    if raw is None:
        raise ClaimError(f'failed to fetch groups: "{groups_claim}" claim not found in token')
    groups = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else None
    if groups is None:
        raise ClaimError(f'"{groups_claim}" claim could not be converted to string list')
    out: list[str] = []
    for g in groups:
        if not isinstance(g, str):
            raise ClaimError(f"value {go_value(g)} in groups claim could not be parsed as string")
        if g and g not in out:
            out.append(g)
    return out


# -- bound claims ---------------------------------------------------------------------------


def glob_match(pattern: str, value: str) -> bool:
    """ryanuber/go-glob: `*` is the only wildcard (any run of characters)."""
    if pattern == "*":
        return True
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == value
    if not value.startswith(parts[0]) or not value.endswith(parts[-1]):
        return False
    if len(parts[0]) + len(parts[-1]) > len(value):
        return False
    pos = len(parts[0])
    end = len(value) - len(parts[-1])
    for middle in parts[1:-1]:
        found = value.find(middle, pos, end)
        if found < 0:
            return False
        pos = found + len(middle)
    return True


@dataclass(frozen=True, slots=True)
class _GoInt:
    """A scalar JSON number after Vault's normalizeList (an int64: 5.5 becomes 5). Numbers
    inside a list stay raw JSON numbers, which in Go equal nothing else (probed)."""

    value: int


def _bound_values(value: Any) -> list[Any] | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [_GoInt(int(value))]
    return normalize_list(value)


def _same(expected: Any, actual: Any) -> bool:
    """String mode: Go's interface equality after normalisation (strings, bools, ints)."""
    if isinstance(expected, _GoInt) or isinstance(actual, _GoInt):
        return expected == actual
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, str) and isinstance(actual, str):
        return expected == actual
    return False


def validate_bound_claims(claims: dict[str, Any], bound: dict[str, Any], use_globs: bool
                          ) -> None:
    """Every bound claim must be present and match one of its values (texts without
    Vault's `error validating claims: ` prefix)."""
    for name in sorted(bound):
        actual = get_claim(claims, name)
        if actual is None:
            raise ClaimError(f'claim "{name}" is missing')
        actual_values = _bound_values(actual)
        if actual_values is None:
            raise ClaimError("received claim is not a string, bool, int or list: "
                             f"{go_value(actual)}")
        expected_values = _bound_values(bound[name])
        if expected_values is None:
            raise ClaimError("bound claim is not a string, bool, int or list: "
                             f"{go_value(bound[name])}")
        if not any(_matches(e, a, use_globs) for e in expected_values for a in actual_values):
            raise ClaimError(f'claim "{name}" does not match any associated bound claim values')


def _matches(expected: Any, actual: Any, use_globs: bool) -> bool:
    if use_globs:
        return isinstance(expected, str) and isinstance(actual, str) and glob_match(
            expected, actual)
    return _same(expected, actual)
