"""Vault's weakly typed request fields (spec §1.5): declare, coerce, validate.

The vault CLI sends every `k=v` as a string, so a bool may arrive as "true" and an int as
"10". A value that cannot be coerced fails the whole request with
`Field validation failed: error converting input ...` before the handler runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from transit.errors import UserError
from transit.gocompat import GO_FALSE, GO_TRUE, sum_duration


class FieldType(Enum):
    STRING = "string"
    BOOL = "bool"
    INT = "int"
    DURATION = "duration"  # int seconds, numeric string, or Go duration ("1h", "90m")
    SLICE = "slice"  # a JSON list, items left as they are
    MAP = "map"  # a JSON object
    ANY = "any"


@dataclass(frozen=True, slots=True)
class Field:
    type: FieldType = FieldType.STRING
    default: Any = None
    description: str = ""


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


# Vault's framework adds this prefix, except on routes with an existence check, whose
# validation error comes from HandleExistenceCheck bare (see framework.Engine.handle).
VALIDATION_PREFIX = "Field validation failed: "


def parse_bool(value: Any) -> bool:
    """Go's strconv.ParseBool plus JSON bools; raises ValueError otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in GO_TRUE:
            return True
        if value in GO_FALSE:
            return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value in (0, 1):
            return bool(value)
    raise ValueError(f"cannot parse {value!r} as bool")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"cannot parse {value!r} as int")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != int(value):
            raise ValueError(f"cannot parse {value!r} as int")
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"[+-]?\d+", s):
            return int(s)
    raise ValueError(f"cannot parse {value!r} as int")


# The longest duration Go can hold (int64 nanoseconds): ~292 years.
MAX_DURATION_SECONDS = (2**63 - 1) // 1_000_000_000
_MAX_DURATION_FLOAT = 2**63 / 1e9  # the same bound for a parsed Go duration (a float)


def parse_duration(value: Any) -> int:
    """Seconds from an int, a numeric string, or a Go duration string."""
    if isinstance(value, bool):
        raise ValueError(f"cannot parse {value!r} as duration")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        if s == "":
            return 0
        if re.fullmatch(r"[+-]?\d+", s):
            return int(s)
        total = sum_duration(s[1:] if s[0] in "+-" else s, _DURATION_RE)
        # Go's time.ParseDuration refuses what overflows int64 nanoseconds (and a float
        # past 1.8e308 is infinite here: int() of it would raise OverflowError, a 500)
        if total is not None and total <= _MAX_DURATION_FLOAT:
            return -int(total) if s[0] == "-" else int(total)
    raise ValueError(f"time: invalid duration {value!r}")


def go_value(v: Any) -> str:
    """Go's `%v` of a value decoded by Vault's JSON layer (numbers are json.Number)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_value(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_value(x) for x in v) + "]"
    return str(v)


def go_type(v: Any) -> str:
    """Go's `%T` of a value decoded by Vault's JSON layer (numbers are json.Number)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, str):
        return "string"
    if isinstance(v, int | float):
        return "json.Number"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    return type(v).__name__


def _unconvertible(want: str, v: Any) -> ValueError:
    """mapstructure (v1.5) WeakDecode's error for a value of the wrong kind."""
    return ValueError(
        f"'' expected type '{want}', got unconvertible type '{go_type(v)}', value: '{go_value(v)}'"
    )


def coerce(ftype: FieldType, value: Any) -> Any:
    """Coerce one raw JSON value to the declared type (raises ValueError carrying the text
    of Vault's mapstructure.WeakDecode / parseutil error)."""
    if ftype is FieldType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "1" if value else "0"  # mapstructure's weak bool -> string
        if isinstance(value, int | float):
            return str(value)
        raise _unconvertible("string", value)
    if ftype is FieldType.BOOL:
        if value == "":  # mapstructure's weak decoding: "" is false
            return False
        try:
            return parse_bool(value)
        except ValueError:
            if isinstance(value, str | int | float):
                raise ValueError(
                    f"cannot parse '' as bool: strconv.ParseBool: parsing \"{value}\": "
                    "invalid syntax"
                ) from None
            raise _unconvertible("bool", value) from None
    if ftype is FieldType.INT:
        # mapstructure's weak decoding: a bool is 0/1 and "" is 0.
        if isinstance(value, bool):
            return int(value)
        if value == "":
            return 0
        try:
            number = parse_int(value)
        except ValueError:
            number = None
        if number is not None:
            if not -(2**63) <= number < 2**63:  # Go's int: a bigger number is an error
                raise ValueError(
                    f"cannot parse '' as int: strconv.ParseInt: parsing \"{value}\": "
                    "value out of range")
            return number
        try:
            return parse_int(value)
        except ValueError:
            if isinstance(value, str):
                raise ValueError(
                    f"cannot parse '' as int: strconv.ParseInt: parsing \"{value}\": "
                    "invalid syntax"
                ) from None
            if isinstance(value, float):
                raise ValueError(
                    f"error decoding json.Number into : strconv.ParseInt: parsing \"{value}\": "
                    "invalid syntax"
                ) from None
            raise _unconvertible("int", value) from None
    if ftype is FieldType.DURATION:
        try:
            seconds = parse_duration(value)
        except ValueError:
            if isinstance(value, str):
                raise ValueError(f'time: invalid duration "{value}"') from None
            raise
        if seconds < 0:  # Vault's TypeDurationSecond
            raise ValueError(f"cannot provide negative value '{seconds}'")
        if seconds > MAX_DURATION_SECONDS:  # Go's time.Duration (int64 ns) would overflow
            raise ValueError(f'time: invalid duration "{value}"')
        return seconds
    if ftype is FieldType.SLICE:
        if isinstance(value, list):
            return value
        if isinstance(value, str):
            return [s for s in value.split(",") if s] if value else []
        if isinstance(value, dict) and not value:
            return []
        # mapstructure's weak decoding lifts anything else into a one-element slice; the
        # handlers that care (batch_input) read the raw value and report its real type.
        return [value]
    if ftype is FieldType.MAP:
        if isinstance(value, dict):
            return value
        raise ValueError(f"cannot parse {type(value).__name__} as a map")
    return value


_UNSET = object()  # FieldData.get: nothing cached yet


class FieldData:
    """A request's raw data seen through a route's field schema.

    `get(name)` returns the coerced value, or the field's default when the value is absent
    or JSON null. `validate()` coerces everything up front so a bad type fails the request
    before the handler does anything.
    """

    __slots__ = ("raw", "schema", "_cache")

    def __init__(self, raw: dict[str, Any], schema: dict[str, Field]) -> None:
        self.raw = raw
        self.schema = schema
        self._cache: dict[str, Any] = {}

    def validate(self) -> None:
        """Coerce every field the caller sent (defaults are valid by construction)."""
        schema = self.schema
        for name, value in self.raw.items():
            if value is not None and name in schema:
                self.get(name)

    def present(self, name: str) -> bool:
        """True when the caller sent this field with a non-null value."""
        return self.raw.get(name) is not None

    def get(self, name: str) -> Any:
        result = self._cache.get(name, _UNSET)  # (not try/except: most first reads miss)
        if result is not _UNSET:
            return result
        field = self.schema[name]
        value = self.raw.get(name)
        if value is None:
            result = field.default
            if isinstance(result, list | dict):
                result = type(result)(result)
        else:
            try:
                result = coerce(field.type, value)
            except ValueError as exc:
                raise UserError(
                    f"{VALIDATION_PREFIX}error converting input {go_value(value)} for field "
                    f'"{name}": {exc}'
                ) from None
        self._cache[name] = result
        return result

    def get_ok(self, name: str) -> tuple[Any, bool]:
        """(value, present) like Vault's GetOk."""
        return self.get(name), self.present(name)


def remove_duplicates(items: list[str], lower: bool = True) -> list[str]:
    """strutil.RemoveDuplicates: trim, (lower-case), drop empties, de-duplicate, sort."""
    out = {(s.strip().lower() if lower else s.strip()) for s in items}
    out.discard("")
    return sorted(out)
