"""Rate-limit quotas: the rules, the `sys/quotas/config` settings, and which rule a request
path falls under (spec operations-api §7; Vault's vault/quotas).

Storage: one entry behind the barrier, `core/quotas`:
`{"config": {...}, "rate-limit": {"<name>": {"path": ..., "rate": ..., ...}}}`, changed only
by a guarded read-modify-write (`transit.storage.update.update`), so concurrent writers on
any worker or node never lose each other's rules. Every node and worker keeps an immutable
`QuotaTable` snapshot, reloaded when the entry changes (the invalidation feed: key
`core/quotas`).

Matching, most specific first, one rule applies: the exact path suffix under its mount, then
the longest suffix glob (`encrypt/*`), then the mount, then the global rule (path ""). The
token bucket that enforces a rule lives in `transit.ratelimit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from transit.errors import StorageError
from transit.storage.base import Write
from transit.storage.update import update

QUOTAS_KEY = "core/quotas"
RATE_LIMIT = "rate-limit"

# Vault's default `rate_limit_exempt_paths`.
DEFAULT_EXEMPT_PATHS = (
    "sys/generate-recovery-token/attempt",
    "sys/generate-recovery-token/update",
    "sys/generate-root/attempt",
    "sys/generate-root/update",
    "sys/health",
    "sys/seal-status",
    "sys/unseal",
)


@dataclass(frozen=True)
class RateLimitQuota:
    name: str
    mount_path: str  # "" for the global rule, else a mount path ending in "/"
    path_suffix: str  # "" for the whole mount; may end in "*"
    rate: float
    interval: int  # seconds
    block_interval: int = 0  # seconds
    role: str = ""
    inheritable: bool = False

    @property
    def path(self) -> str:
        return self.mount_path + self.path_suffix

    @property
    def tokens(self) -> int:
        """Requests admitted per interval (Go's `math.Round(rate)`, half away from zero;
        at least 1)."""
        return max(1, math.floor(self.rate + 0.5))

    def describe(self) -> dict[str, Any]:
        """As `GET sys/quotas/rate-limit/<name>` shows it."""
        return {"block_interval": self.block_interval, "inheritable": self.inheritable,
                "interval": self.interval, "name": self.name, "path": self.path,
                "rate": int(self.rate) if self.rate.is_integer() else self.rate,
                "role": self.role, "type": RATE_LIMIT}

    def to_json(self) -> dict[str, Any]:
        return {"mount_path": self.mount_path, "path_suffix": self.path_suffix,
                "rate": self.rate, "interval": self.interval,
                "block_interval": self.block_interval, "role": self.role,
                "inheritable": self.inheritable}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> RateLimitQuota:
        return cls(name=name, mount_path=str(data["mount_path"]),
                   path_suffix=str(data["path_suffix"]), rate=float(data["rate"]),
                   interval=int(data["interval"]), block_interval=int(data["block_interval"]),
                   role=str(data.get("role") or ""), inheritable=bool(data.get("inheritable")))


@dataclass(frozen=True)
class QuotaConfig:
    enable_rate_limit_audit_logging: bool = False
    enable_rate_limit_response_headers: bool = False
    rate_limit_exempt_paths: tuple[str, ...] = DEFAULT_EXEMPT_PATHS

    def describe(self) -> dict[str, Any]:
        return {"enable_rate_limit_audit_logging": self.enable_rate_limit_audit_logging,
                "enable_rate_limit_response_headers": self.enable_rate_limit_response_headers,
                "rate_limit_exempt_paths": list(self.rate_limit_exempt_paths)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuotaConfig:
        return cls(bool(data.get("enable_rate_limit_audit_logging")),
                   bool(data.get("enable_rate_limit_response_headers")),
                   tuple(str(p) for p in data.get("rate_limit_exempt_paths") or ()))


@dataclass(frozen=True)
class QuotaTable:
    """An immutable snapshot of every rule and the config (replaced, never changed)."""

    rules: dict[str, RateLimitQuota] = field(default_factory=dict)
    config: QuotaConfig = field(default_factory=QuotaConfig)

    def exempt(self, path: str) -> bool:
        """Vault's path manager: an exact path, or a prefix when the entry ends in `*`."""
        for entry in self.config.rate_limit_exempt_paths:
            if entry.endswith("*"):
                if path.startswith(entry[:-1]):
                    return True
            elif path == entry or path.rstrip("/") == entry.rstrip("/"):
                return True
        return False

    def same_scope(self, quota: RateLimitQuota) -> RateLimitQuota | None:
        """Another rule with the same mount, suffix and role (Vault refuses a second one)."""
        for other in self.rules.values():
            if other.name != quota.name and (other.mount_path, other.path_suffix, other.role) \
                    == (quota.mount_path, quota.path_suffix, quota.role):
                return other
        return None

    def match(self, mount_path: str, suffix: str) -> RateLimitQuota | None:
        """The rule for a request to `mount_path` + `suffix`, most specific first."""
        exact = glob = mount = global_ = None
        glob_len = -1
        suffix = suffix.rstrip("/")
        for q in self.rules.values():
            if q.mount_path == "":
                global_ = q
            elif q.mount_path != mount_path:
                continue
            elif q.path_suffix == "":
                mount = q
            elif q.path_suffix.endswith("*"):
                prefix = q.path_suffix[:-1]
                if suffix.startswith(prefix) and len(prefix) > glob_len:
                    glob, glob_len = q, len(prefix)
            elif q.path_suffix.rstrip("/") == suffix:
                exact = q
        return exact or glob or mount or global_


def _decode(raw: bytes | None) -> QuotaTable:
    if raw is None:
        return QuotaTable()
    try:
        data = orjson.loads(raw)
        rules = {name: RateLimitQuota.from_json(name, value)
                 for name, value in (data.get(RATE_LIMIT) or {}).items()}
        config = QuotaConfig.from_json(data["config"]) if "config" in data else QuotaConfig()
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"failed to decode the quota table: {exc}") from None
    return QuotaTable(rules, config)


def _encode(table: QuotaTable) -> bytes:
    return orjson.dumps({
        "config": table.config.describe(),
        RATE_LIMIT: {name: q.to_json() for name, q in sorted(table.rules.items())},
    })


class QuotaStore:
    """The stored quota table and this process's snapshot of it (`table`)."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage  # a view over the barrier at its root
        self.table = QuotaTable()

    async def load(self) -> None:
        self.table = _decode(await self._storage.get(QUOTAS_KEY))

    def clear(self) -> None:
        """Forget the snapshot (on seal)."""
        self.table = QuotaTable()

    async def _change(self, fn: Any) -> QuotaTable:
        def change(values: dict[str, bytes | None]) -> tuple[list[Write], QuotaTable]:
            old = _decode(values[QUOTAS_KEY])
            new = fn(old)
            return ([] if new is old else [Write(QUOTAS_KEY, _encode(new))]), new

        self.table = await update(self._storage, [QUOTAS_KEY], change)
        return self.table

    async def put_rule(self, quota: RateLimitQuota) -> RateLimitQuota | None:
        """Store `quota` (by name); returns the rule of another name with the same scope
        instead of storing, when there is one (checked on the stored table)."""
        clash: list[RateLimitQuota] = []

        def put(table: QuotaTable) -> QuotaTable:
            other = table.same_scope(quota)
            clash[:] = [other] if other is not None else []
            if other is not None:
                return table
            return replace(table, rules={**table.rules, quota.name: quota})

        await self._change(put)
        return clash[0] if clash else None

    async def delete_rule(self, name: str) -> None:
        await self._change(lambda t: replace(
            t, rules={k: v for k, v in t.rules.items() if k != name}))

    async def set_config(self, config: QuotaConfig) -> None:
        await self._change(lambda t: replace(t, config=config))
