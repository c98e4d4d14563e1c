"""Go compatibility: the text forms Go (and so Vault) reads and writes, in one place.

Layer L0: stdlib only. Callers keep their own leniency rules and error texts (the config file
folds case and knows a "d" unit; request fields follow Vault's parseutil); what lives here is
the Go behaviour they share.

Parsing
    `GO_TRUE` / `GO_FALSE` — the spellings `strconv.ParseBool` accepts;
    `atoi(s)` — `strconv.Atoi` (64-bit), ValueError with Go's text;
    `is_digits(s)` — ASCII digits only (`str.isdigit` also takes "²", which `int` refuses);
    `sum_duration(body, part)` — the seconds in an unsigned duration such as "1h30m";
    `parse_time(s)` — an RFC 3339 time (nanoseconds truncated to microseconds).
Formatting
    `format_duration(seconds)` — `time.Duration.String()` for whole seconds;
    `format_time(dt)`, `format_time_ns(ns)` — `time.Time` JSON (RFC3339Nano, UTC as "Z",
    fraction zeros trimmed) of a datetime (µs) or of nanoseconds since the epoch;
    `format_time_s(secs)` — `time.RFC3339` (whole seconds);
    `time_string(secs)` — `time.Time.String()` in UTC;
    `isoformat_z(dt)` — Python's isoformat with "Z": NOT Go's form (six fraction digits,
    untrimmed), kept for the endpoints that have always sent it;
    `multierror(messages)` — hashicorp/go-multierror's error text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


# --- integers --------------------------------------------------------------------------------

def is_digits(s: str) -> bool:
    """Whether `s` is one or more ASCII digits: what `int(s)` takes without a sign or spaces.
    (`str.isdigit` is true for "²" too, which `int` refuses.)"""
    return s.isascii() and s.isdigit()


def atoi(s: str) -> int:
    """Go's `strconv.Atoi` on 64 bits: optional sign, ASCII digits, nothing else."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not is_digits(body):
        raise ValueError(f'strconv.Atoi: parsing "{s}": invalid syntax')
    value = int(s)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f'strconv.Atoi: parsing "{s}": value out of range')
    return value


# --- durations -------------------------------------------------------------------------------

# Seconds per unit: Go's time units, plus Vault's "d" (parseutil) for callers whose regex has it.
UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
    "d": 86400.0,
}


def sum_duration(body: str, part: re.Pattern[str]) -> float | None:
    """Seconds in `body` (no sign), which must be nothing but `part` matches end to end.

    `part` matches one `<number><unit>` run, the number in group 1 and a unit of
    `UNIT_SECONDS` in group 2. None when `body` is empty or anything else is in it.
    """
    pos, total = 0, 0.0
    for m in part.finditer(body):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return total if pos and pos == len(body) else None


def format_duration(seconds: int) -> str:
    """Go's `time.Duration.String()` for whole seconds ("0s", "90s" -> "1m30s", "1h0m0s")."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{sign}{h}h{m}m{sec}s"
    if m:
        return f"{sign}{m}m{sec}s"
    return f"{sign}{sec}s"


# --- times -----------------------------------------------------------------------------------

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time as JSON


def format_time(dt: datetime) -> str:
    """Go's `time.Time.MarshalJSON` layout (RFC3339Nano) for an aware datetime, UTC as "Z"."""
    dt = dt.astimezone(UTC)
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        s += f".{dt.microsecond:06d}".rstrip("0")
    return s + "Z"


# (seconds, their "%Y-%m-%dT%H:%M:%S"): the audit log formats the same second many times
_last_second: list[Any] = [None, ""]


def format_time_ns(ns: int | None = None) -> str:
    """Go's RFC3339Nano in UTC of `ns` nanoseconds since the epoch (default: now)."""
    if ns is None:
        ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    last = _last_second
    if last[0] == secs:
        base = last[1]
    else:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        last[0], last[1] = secs, base
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return f"{base}Z"


def format_time_s(secs: int) -> str:
    """Go's `time.RFC3339` in UTC (whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))


def time_string(secs: float) -> str:
    """Go's `time.Time.String()` of a UTC time, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(secs))


def isoformat_z(dt: datetime) -> str:
    """`dt.isoformat()` with "Z" for +00:00: six fraction digits (none when zero), where
    Go would trim trailing zeros. What sys/ha-status and sys/leader have always sent."""
    return dt.isoformat().replace("+00:00", "Z")


_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})"
)


def parse_time(s: str) -> datetime:
    """Parse a Go RFC 3339 time (nanoseconds truncated to microseconds)."""
    m = _TIME_RE.fullmatch(s)
    if not m:
        raise ValueError(f"cannot parse time {s!r}")
    frac = (m.group(7) or "").ljust(6, "0")[:6]
    tz = m.group(8)
    iso = f"{m.group(1)}-{m.group(2)}-{m.group(3)}T{m.group(4)}:{m.group(5)}:{m.group(6)}"
    iso += f".{frac}" + ("+00:00" if tz == "Z" else tz)
    return datetime.fromisoformat(iso)


# --- errors ----------------------------------------------------------------------------------

def multierror(messages: Sequence[str]) -> str:
    """hashicorp/go-multierror's rendering of the errors (Vault wraps plain handler errors
    in one)."""
    head = "1 error occurred:" if len(messages) == 1 else f"{len(messages)} errors occurred:"
    return head + "".join(f"\n\t* {m}" for m in messages) + "\n\n"


def json_kind(v: object) -> str:
    """The JSON kind Go's encoding/json names in an unmarshal error ("cannot unmarshal
    <kind> into ...") for a decoded value."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"
