"""Vault's TTL arithmetic (`framework.CalculateTTL`) and Go duration formatting."""

from __future__ import annotations

from dataclasses import dataclass

from transit.errors import InternalError
from transit.gocompat import format_duration

# The system defaults (`default_lease_ttl` / `max_lease_ttl`): 768h, i.e. 32 days.
DEFAULT_LEASE_TTL = 768 * 3600
MAX_LEASE_TTL = 768 * 3600


@dataclass(frozen=True, slots=True)
class RenewLimits:
    """What a login token's renewal is computed from, re-read from its auth method's role
    (Vault's AuthRenew callback answer) and its mount: the role's TTL, max TTL and period,
    and the mount's (else the server's) default and max lease TTL."""

    ttl: int
    max_ttl: int
    period: int
    default_ttl: int
    max_lease_ttl: int


class RenewDeclined(Exception):  # noqa: N818 (Vault's name for the outcome, not an error)
    """An auth method answers a renewal with nothing (Vault: its AuthRenew returns nil, e.g.
    the userpass user was deleted): the token is not renewed and the request answers 204."""


def human_duration(seconds: int) -> str:
    """Vault's `humanDuration`: Go's form without the pesky zeros ("768h", "1h30m")."""
    if seconds == 0:
        return "0s"
    s = format_duration(seconds)
    if s.endswith("m0s"):
        s = s[:-2]
    idx = s.find("h0m")
    if idx > 0:
        s = s[: idx + 1] + s[idx + 3 :]
    return s


def calculate_ttl(
    *,
    increment: int,
    backend_ttl: int,
    period: int,
    explicit_max_ttl: int,
    start: float,
    now: float,
    backend_max_ttl: int = 0,
    default_ttl: int = DEFAULT_LEASE_TTL,
    max_ttl: int = MAX_LEASE_TTL,
) -> tuple[int, list[str]]:
    """(ttl, warnings) like `framework.CalculateTTL`; start = the lease's issue time."""
    warnings: list[str] = []
    now_s = int(now)
    start_s = int(start) if start else now_s
    effective_max = max_ttl
    if 0 < backend_max_ttl < effective_max:
        effective_max = backend_max_ttl
    if 0 < explicit_max_ttl < effective_max:
        effective_max = explicit_max_ttl
    if effective_max <= 0:
        raise InternalError("max TTL must be greater than zero")

    max_valid: int | None = None
    if period > 0:
        if period > effective_max:
            warnings.append(
                f'period of "{human_duration(period)}" exceeded the effective max_ttl of '
                f'"{human_duration(effective_max)}"; period value is capped accordingly'
            )
            period = effective_max
        ttl = period
        if explicit_max_ttl > 0:
            max_valid = start_s + explicit_max_ttl
    else:
        if increment > 0:
            ttl = increment
        elif backend_ttl > 0:
            ttl = backend_ttl
        else:
            ttl = default_ttl
        max_valid = start_s + effective_max

    if max_valid is not None:
        max_valid_ttl = max_valid - now_s
        if max_valid_ttl <= 0:
            raise InternalError("past the max TTL, cannot renew")
        if max_valid_ttl < ttl:
            warnings.append(
                f'TTL of "{human_duration(ttl)}" exceeded the effective max_ttl of '
                f'"{human_duration(max_valid_ttl)}"; TTL value is capped accordingly'
            )
            ttl = max_valid_ttl
    return ttl, warnings
