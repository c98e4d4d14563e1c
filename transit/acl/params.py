"""ACL parameter constraints: allowed_/denied_/required_parameters (Vault's vault/acl.go).

Values match like Vault's valueInParameterList: strings with a leading and/or trailing "*"
glob (strutil.GlobbedStringsMatch), other values by type and equality; a list value, or a
comma-separated string, matches the allowed list when every element does and the denied
list when any element does. An empty value list means "any value".
"""

from __future__ import annotations

from typing import Any


def merge_params(
    have: dict[str, list[Any]] | None, new: dict[str, list[Any]] | None
) -> dict[str, list[Any]] | None:
    if not new:
        return have
    if have is None:
        return {k: list(v) for k, v in new.items()}
    for key, values in new.items():
        if not values or (key in have and not have[key]):
            have[key] = []  # an empty list (any value) overrides everything
        else:
            have[key] = list(values) + have.get(key, [])
    return have


def _glob_match(item: str, val: str) -> bool:
    """Vault's strutil.GlobbedStringsMatch."""
    if len(item) < 2:
        return val == item
    pre, suf = item.startswith("*"), item.endswith("*")
    if pre and suf:
        return item[1:-1] in val
    if pre:
        return val.endswith(item[1:])
    if suf:
        return val.startswith(item[:-1])
    return val == item


def _in_list(v: Any, values: list[Any]) -> bool:
    for el in values:
        if el is None or v is None:
            if el is v:
                return True
        elif isinstance(el, str):
            if isinstance(v, str) and _glob_match(el, v):
                return True
        elif type(el) is type(v) and el == v:  # reflect.DeepEqual: same type, same value
            return True
    return False


def _split_values(v: Any) -> list[Any] | None:
    """A list value, or a comma-separated string (Vault's relaxed matching); else None."""
    if isinstance(v, list):
        return v
    if isinstance(v, str):
        return [s.strip() for s in v.split(",")]
    return None


def _in_allowed(v: Any, values: list[Any]) -> bool:
    if not values or _in_list(v, values):
        return True
    parts = _split_values(v)
    return parts is not None and all(_in_list(p, values) for p in parts)


def _in_denied(v: Any, values: list[Any]) -> bool:
    if not values or _in_list(v, values):
        return True
    parts = _split_values(v)
    return parts is not None and any(_in_list(p, values) for p in parts)


def params_ok(
    allowed: dict[str, list[Any]] | None,
    denied: dict[str, list[Any]] | None,
    required: list[str],
    data: dict[str, Any],
) -> bool:
    """Vault's allowed_/denied_/required_parameters check of a request body."""
    for p in required:
        if p.lower() not in data:
            return False
    if not data:
        return True
    if denied:
        if "*" in denied:
            return False
        for key, value in data.items():
            values = denied.get(key.lower())
            if values is not None and _in_denied(value, values):
                return False
    if not allowed:
        return True
    allow_all = "*" in allowed
    if allow_all and len(allowed) == 1:
        return True
    for key, value in data.items():
        values = allowed.get(key.lower())
        if values is None:
            if not allow_all:
                return False
        elif not _in_allowed(value, values):
            return False
    return True
