"""Decoding the bodies of Vault's raw (non-logical) endpoints the way Go's `encoding/json`
does: field names match case-insensitively, a value of the wrong JSON type is a 400 with Go's
unmarshal message, and key shares are hex or base64 (`decode_share`). Used by
`transit/api/status.py` and the `sys/rekey`, `sys/generate-root` handlers
(`transit/engines/system/operator.py`).
"""

from __future__ import annotations

import base64
import binascii
import string
from typing import Any

from transit.errors import UserError

KEY_MIN, KEY_MAX = 16, 33  # barrier key length bounds, + 1 byte of Shamir overhead


def fields(body: dict[str, Any]) -> dict[str, Any]:
    """Go's encoding/json matches field names case-insensitively."""
    return {str(k).lower(): v for k, v in body.items()}


def go_type_error(value: Any, struct: str, name: str, go_type: str) -> UserError:
    kinds = {bool: "bool", str: "string", int: "number", float: "number", list: "array",
             dict: "object"}
    kind = kinds.get(type(value), "value")
    if kind == "number":
        kind = f"number {value}"
    return UserError(
        f"json: cannot unmarshal {kind} into Go struct field {struct}.{name} of type {go_type}"
    )


def int_field(fields: dict[str, Any], name: str, struct: str) -> int:
    value = fields.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise go_type_error(value, struct, name, "int")
    return int(value)


def strings_field(fields: dict[str, Any], name: str, struct: str) -> list[str]:
    value = fields.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise go_type_error(value, struct, name, "[]string")
    return value


def str_field(fields: dict[str, Any], name: str, struct: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise go_type_error(value, struct, name, "string")
    return value


def bool_field(fields: dict[str, Any], name: str, struct: str) -> bool:
    value = fields.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise go_type_error(value, struct, name, "bool")
    return value


def decode_share(text: str) -> bytes:
    """Vault's order: hex when it decodes to 16..33 bytes, otherwise standard base64."""
    try:
        hex_text = len(text) % 2 == 0 and all(c in string.hexdigits for c in text)
        key = bytes.fromhex(text) if hex_text else b""
    except ValueError:
        key = b""
    if KEY_MIN <= len(key) <= KEY_MAX:
        return key
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UserError("'key' must be a valid hex or base64 string") from None
