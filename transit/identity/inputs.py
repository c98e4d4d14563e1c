"""Vault's field types as the identity endpoints decode them: TypeKVPairs (metadata),
TypeCommaStringSlice (policies, id lists) and custom_metadata's limits
(sdk/helper/custommetadata). Every problem is a UserError with Vault's text."""

from __future__ import annotations

from typing import Any

from transit.errors import InternalError, UserError
from transit.fields import VALIDATION_PREFIX, go_value

MAX_CUSTOM_KEYS = 64
MAX_CUSTOM_KEY_LEN = 128
MAX_CUSTOM_VALUE_LEN = 512


def _scalar(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return None


def _invalid(value: Any, what: str, detail: str) -> UserError:
    return UserError(f"{VALIDATION_PREFIX}error converting input {go_value(value)} for field "
                     f'"{what}": {detail}')


def kv_pairs(value: Any, what: str = "metadata") -> dict[str, str]:
    """TypeKVPairs: a JSON object of strings (scalars weakly converted), or `key=value`
    strings (the CLI form); errors as Vault's framework words them."""
    if value is None:
        return {}
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            s = _scalar(v)
            if s is None:
                raise _invalid(value, what, "source data must be an array or slice, got map")
            out[str(k)] = s
        return out
    items = value if isinstance(value, list) else [value]
    for item in items:
        s = _scalar(item)
        if s is None:
            raise _invalid(value, what, f"'[{items.index(item)}]' expected type 'string', got "
                                        f"unconvertible type '{_go_type(item)}'")
        key, sep, val = s.partition("=")
        if not sep or not key:
            raise _invalid(value, what, f'invalid key pair "{s}"')
        out[key] = val
    return out


def _go_type(v: Any) -> str:
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    return "interface {}"


def string_list(value: Any, field: str) -> list[str]:
    """TypeCommaStringSlice: a JSON list (items weakly converted) or a comma string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()] if value else []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for i, item in enumerate(items):
        s = _scalar(item)
        if s is None:
            raise _invalid(value, field, f"'[{i}]' expected type 'string', got unconvertible "
                                         f"type '{_go_type(item)}'")
        out.append(s)
    return out


def remove_duplicates(items: list[str]) -> list[str]:
    """strutil.RemoveDuplicates(items, false): trimmed, non-empty, unique, sorted; case kept."""
    return sorted({s.strip() for s in items if s.strip()})


def policies(value: Any) -> list[str]:
    """Entity/group policies; `root` in any case is refused (CVE-2025-5999's fix)."""
    out = remove_duplicates(string_list(value, "policies"))
    if any(p.lower() == "root" for p in out):
        raise UserError("policies cannot contain root")
    return out


def custom_metadata(value: Any) -> dict[str, str]:
    """custom_metadata of an entity alias, with sdk/helper/custommetadata's limits (a 500
    with Vault's texts, as its handler returns them as plain errors)."""
    pairs = kv_pairs(value, "custom_metadata")
    prefix = "custom_metadata validation failed"
    if len(pairs) > MAX_CUSTOM_KEYS:
        raise InternalError(f"{prefix}: payload must contain at most {MAX_CUSTOM_KEYS} keys, "
                            f"provided {len(pairs)}")
    problems: list[str] = []
    for k, v in pairs.items():
        klen, vlen = len(k.encode()), len(v.encode())
        if not 0 < klen <= MAX_CUSTOM_KEY_LEN:
            problems.append(f'{prefix}: length of key "{k}" is {klen} but must be 0 < len(key) '
                            f"<= {MAX_CUSTOM_KEY_LEN}")
        if not 0 < vlen <= MAX_CUSTOM_VALUE_LEN:
            problems.append(f'{prefix}: length of value for key "{k}" is {vlen} but must be '
                            f"0 < len(value) <= {MAX_CUSTOM_VALUE_LEN}")
        if not k.isprintable():
            problems.append(f'{prefix}: key "{k}" ({k}) contains unprintable characters')
        if not v.isprintable():
            problems.append(f'{prefix}: value for key "{k}" contains unprintable characters')
    if problems:
        raise InternalError("; ".join(problems))
    return pairs
