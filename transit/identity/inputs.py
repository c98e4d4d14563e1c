"""Vault's field types as the identity endpoints decode them: TypeKVPairs (metadata),
TypeCommaStringSlice (policies, id lists) and custom_metadata's limits
(sdk/helper/custommetadata). Every problem is a UserError with Vault's text."""

from __future__ import annotations

from typing import Any

from transit.errors import UserError

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


def kv_pairs(value: Any, what: str = "metadata") -> dict[str, str]:
    """TypeKVPairs: a JSON object of strings, or `key=value` strings (CLI form)."""
    if value is None:
        return {}
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            s = _scalar(v)
            if s is None:
                raise UserError(f"failed to parse {what}: '' expected type 'string', got "
                                f"unconvertible type '{_go_type(v)}', value: '{v}'")
            out[str(k)] = s
        return out
    items = value if isinstance(value, list) else [value]
    for item in items:
        s = _scalar(item)
        if s is None:
            raise UserError(f"failed to parse {what}: '' expected type 'string', got "
                            f"unconvertible type '{_go_type(item)}', value: '{item}'")
        key, sep, val = s.partition("=")
        if not sep or not key:
            raise UserError(f"failed to parse {what}: invalid key value pair {s!r}".replace(
                "'", '"'))
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
    for item in items:
        s = _scalar(item)
        if s is None:
            raise UserError(f'error converting input {item!r} for field "{field}": source '
                            "data must be an array or slice, got map" if isinstance(item, dict)
                            else f'error converting input for field "{field}"')
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
    """custom_metadata of an entity alias, with sdk/helper/custommetadata's limits."""
    pairs = kv_pairs(value, "custom_metadata")
    problems: list[str] = []
    if len(pairs) > MAX_CUSTOM_KEYS:
        problems.append(f"payload must contain at most {MAX_CUSTOM_KEYS} keys, provided "
                        f"{len(pairs)}")
    for k, v in pairs.items():
        if not 0 < len(k.encode()) <= MAX_CUSTOM_KEY_LEN:
            problems.append(f'length of key "{k}" is {len(k.encode())} but max allowed length '
                            f"is {MAX_CUSTOM_KEY_LEN}")
        if not 0 < len(v.encode()) <= MAX_CUSTOM_VALUE_LEN:
            problems.append(f'length of value for key "{k}" is {len(v.encode())} but max '
                            f"allowed length is {MAX_CUSTOM_VALUE_LEN}")
        if not k.isprintable():
            problems.append(f'key "{k}" contains unprintable characters')
        if not v.isprintable():
            problems.append(f'value for key "{k}" contains unprintable characters')
    if problems:
        raise UserError("custom_metadata validation failed: " + "; ".join(problems))
    return pairs
