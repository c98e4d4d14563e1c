"""User lockout (spec auth-api §1.8; Vault 1.13+): too many failed logins for one alias of
one auth mount lock it for a while, even for the right credentials.

A failed login is one whose handler raised `InvalidCredentials` (a wrong password; unknown
users are not counted). The alias comes from the method's look-ahead
(`Engine.login_alias`); a method without one is never locked. Counters live behind the
barrier at `core/locked-users/<mount accessor>/<alias>` (so every worker and node sees the
same count), each changed by a guarded read-modify-write; a success deletes it.

Per-mount settings: the auth mount's `config.user_lockout_config` (sys/auth enable or tune):
`lockout_threshold` [5], `lockout_duration` [15m], `lockout_counter_reset` [15m],
`lockout_disable` [false].
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from transit.errors import UserError
from transit.fields import FieldType, coerce, go_value
from transit.storage.base import Write
from transit.storage.update import update

PREFIX = "core/locked-users/"
DEFAULT_THRESHOLD = 5
DEFAULT_DURATION = 15 * 60
DEFAULT_COUNTER_RESET = 15 * 60
# `user_lockout_config` input keys -> stored (and shown) keys
_KEYS = {
    "lockout_threshold": ("user_lockout_threshold", FieldType.INT),
    "lockout_duration": ("user_lockout_duration", FieldType.DURATION),
    "lockout_counter_reset": ("user_lockout_counter_reset_duration", FieldType.DURATION),
    "lockout_disable": ("user_lockout_disable", FieldType.BOOL),
}


def parse_config(raw: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `user_lockout_config` map as stored on the mount (all four keys, unset ones zero,
    as Vault shows them)."""
    if not isinstance(raw, dict):
        raise UserError("user_lockout_config must be a map")
    out: dict[str, Any] = {"user_lockout_counter_reset_duration": 0,
                           "user_lockout_disable": False, "user_lockout_duration": 0,
                           "user_lockout_threshold": 0}
    out.update(current or {})
    for key, value in raw.items():
        if key not in _KEYS or value is None:
            continue
        stored, ftype = _KEYS[key]
        try:
            out[stored] = coerce(ftype, value)
        except ValueError as exc:
            raise UserError(f"error converting input {go_value(value)} for field "
                            f'"{key}": {exc}') from None
        if ftype is FieldType.INT and out[stored] < 0:
            raise UserError(f"{key} cannot be negative")
    return out


@dataclass(frozen=True, slots=True)
class Settings:
    threshold: int
    duration: int
    counter_reset: int
    disabled: bool

    @classmethod
    def of(cls, config: dict[str, Any]) -> Settings:
        c = config.get("user_lockout_config") or {}
        return cls(
            threshold=int(c.get("user_lockout_threshold") or DEFAULT_THRESHOLD),
            duration=int(c.get("user_lockout_duration") or DEFAULT_DURATION),
            counter_reset=int(c.get("user_lockout_counter_reset_duration")
                              or DEFAULT_COUNTER_RESET),
            disabled=bool(c.get("user_lockout_disable", False)),
        )


def _key(accessor: str, alias: str) -> str:
    return f"{PREFIX}{accessor}/{alias}"


class Lockout:
    """The failed-login counters of every auth mount (over the barrier)."""

    def __init__(self, storage: Any, clock: Any = time.time) -> None:
        self.storage = storage
        self.clock = clock

    async def locked(self, accessor: str, alias: str, settings: Settings) -> bool:
        if settings.disabled or not alias:
            return False
        raw = await self.storage.get(_key(accessor, alias))
        if raw is None:
            return False
        return float(orjson.loads(raw).get("locked_until", 0)) > self.clock()

    async def failed(self, accessor: str, alias: str, settings: Settings) -> None:
        """Count one failed login; the `threshold`-th locks the alias for `duration`."""
        if settings.disabled or not alias:
            return
        key, now = _key(accessor, alias), self.clock()

        def change(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
            raw = values[key]
            info = orjson.loads(raw) if raw is not None else {}
            if now - float(info.get("last_failed", 0)) > settings.counter_reset:
                info = {}  # the counter resets after a quiet period
            count = int(info.get("count", 0)) + 1
            info = {"count": count, "last_failed": now,
                    "locked_until": now + settings.duration if count >= settings.threshold
                    else float(info.get("locked_until", 0))}
            return [Write(key, orjson.dumps(info))], None

        await update(self.storage, [key], change)

    async def succeeded(self, accessor: str, alias: str) -> None:
        if alias and await self.storage.get(_key(accessor, alias)) is not None:
            await self.storage.delete(_key(accessor, alias))

    async def unlock(self, accessor: str, alias: str) -> None:
        await self.storage.delete(_key(accessor, alias))

    async def clear_mount(self, accessor: str) -> None:
        for alias in await self.storage.list(f"{PREFIX}{accessor}/"):
            await self.storage.delete(f"{PREFIX}{accessor}/{alias}")

    async def locked_users(self) -> dict[str, list[str]]:
        """Accessor -> aliases locked right now."""
        now = self.clock()
        out: dict[str, list[str]] = {}
        for accessor in await self.storage.list(PREFIX):
            accessor = accessor.rstrip("/")
            for alias in await self.storage.list(f"{PREFIX}{accessor}/"):
                raw = await self.storage.get(f"{PREFIX}{accessor}/{alias}")
                if raw is not None and float(orjson.loads(raw).get("locked_until", 0)) > now:
                    out.setdefault(accessor, []).append(alias)
        return out
