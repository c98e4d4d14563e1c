"""Go's text forms of bools and durations, shared by the config file (L0) and request fields.

Layer L0: stdlib only. The callers keep their own leniency rules (the config file folds case
and knows a "d" unit; request fields follow Vault's parseutil) and their own error texts; what
lives here is what they have in common:

* `GO_TRUE` / `GO_FALSE` — the spellings Go's `strconv.ParseBool` accepts;
* `sum_duration(body, part)` — the seconds in an unsigned Go duration such as "1h30m", given
  the caller's `<number><unit>` regex;
* `format_duration(seconds)` — Go's `time.Duration.String()` for whole seconds.
"""

from __future__ import annotations

import re

GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

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
