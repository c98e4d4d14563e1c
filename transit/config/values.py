"""The lenient scalars of Vault's parseutil (booleans, durations, integers, strings), the
labelled-stanza reader (`_blocks`: HCL's and JSON's shapes of `kind "label" { ... }`) and the one
host:port splitter. Layer L0: stdlib, errors and gocompat only."""

from __future__ import annotations

import re
from typing import Any

from transit.errors import ConfigError
from transit.gocompat import GO_FALSE, GO_TRUE, sum_duration

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
# Go's number grammar ("1.", ".5") and Vault's extra "d" unit.
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")


def parse_bool(value: Any, name: str = "value") -> bool:
    """Vault's ParseBool: true/false, ints (non-zero is true), "true"/"1"/"t"/... strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        v = value.strip().lower()  # any case: "TRUE", "tRuE"
        if v in GO_TRUE:
            return True
        if v in GO_FALSE:
            return False
    raise ConfigError(f"{name}: invalid boolean {value!r}")


def parse_duration(value: Any, name: str = "value") -> float:
    """Vault's ParseDurationSecond: ints/plain numbers are seconds, else Go durations (+ "d")."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: invalid duration {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        v = value.strip()
        if _NUMBER.fullmatch(v):
            return float(v)
        seconds = sum_duration(v.lstrip("+-"), _DURATION_PART)
        if seconds is not None:
            return -seconds if v.startswith("-") else seconds
    raise ConfigError(f"{name}: invalid duration {value!r}")


def _max_staleness(value: Any) -> float:
    name = "performance_standby_max_staleness"
    seconds = parse_duration(value, name)
    if not 0.1 <= seconds <= 3600:
        raise ConfigError(f"{name}: must be between 100ms and 1h, got {value!r}")
    return seconds


def _parse_int(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{name}: invalid integer {value!r}")


def _str(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{name}: expected a string, got {value!r}")


def _blocks(value: Any, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Labelled stanzas as (label, body), from HCL's or JSON's shapes of `kind "label" {}`."""
    if isinstance(value, list):
        return [b for item in value for b in _blocks(item, kind)]
    if not isinstance(value, dict):
        raise ConfigError(f'{kind}: expected a block like {kind} "<type>" {{ ... }}')
    out: list[tuple[str, dict[str, Any]]] = []
    for label, body in value.items():
        bodies = body if isinstance(body, list) else [body]
        for b in bodies:
            if not isinstance(b, dict):
                raise ConfigError(f'{kind} "{label}": expected a block, got {b!r}')
            out.append((str(label), b))
    return out


def split_host_port(address: str) -> tuple[str, int]:
    """'127.0.0.1:8200' / '[::1]:8200' / ':8200' -> (host, port): the listener and cluster
    addresses' one splitter. Brackets are dropped, an empty host is "0.0.0.0"; ValueError
    when the port is not a number."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


