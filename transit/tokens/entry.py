"""`TokenEntry`: one token as the token store keeps it, and its storage JSON.

The token string itself (`id`) and its salted hash (`hash`) live in memory only: storage is
keyed by the hash, and the stored JSON holds neither, so a storage dump never shows a token.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from transit.gocompat import format_time

SERVICE = "service"
BATCH = "batch"
# The path of root tokens made without a request (sys/init, generate-root, dev mode): like
# Vault's `rootToken()`, they get no lease; every other service token has one.
ROOT_TOKEN_PATH = "auth/token/root"


def rfc3339(ts: float) -> str:
    """Go's `time.Time` JSON form of a unix timestamp (µs precision)."""
    return format_time(datetime.fromtimestamp(ts, UTC))


@dataclass(slots=True)
class TokenEntry:
    id: str = ""  # the token string: memory only, never stored
    accessor: str = ""
    policies: list[str] = field(default_factory=list)
    parent: str = ""  # the parent's salted hash; "" for orphans
    display_name: str = ""
    meta: dict[str, str] | None = None
    num_uses: int = 0  # 0 = unlimited; -1 = used up, revocation pending
    creation_time: int = 0  # unix seconds
    ttl: int = 0  # seconds; the TTL at creation (or last renewal's lease)
    explicit_max_ttl: int = 0
    period: int = 0
    expire_time: float = 0.0  # unix seconds; 0 = never
    renewable: bool = True
    role: str = ""
    path: str = ""
    type: str = SERVICE
    entity_id: str = ""
    issue_time: float = 0.0  # creation, with sub-second precision (lookup's issue_time)
    last_renewal: float = 0.0  # 0 = never renewed
    creation_ttl: int = 0  # the TTL granted at creation (lookup's creation_ttl)
    # The token is usable only from these CIDRs/addresses (auth methods' token_bound_cidrs).
    bound_cidrs: list[str] = field(default_factory=list)
    # An auth method's private data for its renewal check (Vault's Auth.InternalData):
    # stored behind the barrier, never shown by lookups.
    internal_data: dict[str, Any] | None = None
    hash: str = ""  # salted hash of `id`: the storage key; memory only
    revoked: bool = False  # memory only: set once revoked so a held reference can't be saved

    @property
    def orphan(self) -> bool:
        return self.parent == ""

    def is_root(self) -> bool:
        return "root" in self.policies

    def expired(self, now: float | None = None) -> bool:
        exp = self.expire_time
        return exp != 0.0 and exp <= (time.time() if now is None else now)

    @property
    def has_lease(self) -> bool:
        """Whether Vault would hold a lease for this token (`sys/leases/*`): every service
        token created through a request (`auth/token/create*`, logins, response wrapping),
        with or without a TTL; batch tokens and the request-less root tokens have none."""
        return self.type == SERVICE and self.path != ROOT_TOKEN_PATH

    def lease_ttl(self, now: float) -> int:
        """Vault's `leaseEntry.ttl()`: seconds to the expiry from now rounded to the second
        (0 for a lease that never expires)."""
        if not self.expire_time:
            return 0
        return int(self.expire_time - math.floor(now + 0.5))

    def lease_renewable(self, now: float) -> bool:
        """Vault's `leaseEntry.renewable()` without its error: an expiring, unexpired,
        renewable lease."""
        return bool(self.expire_time) and self.expire_time >= now and self.renewable

    def remaining(self, now: float) -> int:
        """Seconds left (0 for a non-expiring token)."""
        if not self.expire_time:
            return 0
        return max(0, int(self.expire_time - now))

    # --- storage -----------------------------------------------------------------

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "accessor": self.accessor, "policies": self.policies, "parent": self.parent,
                "display_name": self.display_name, "meta": self.meta,
                "num_uses": self.num_uses, "creation_time": self.creation_time,
                "ttl": self.ttl, "creation_ttl": self.creation_ttl,
                "explicit_max_ttl": self.explicit_max_ttl, "period": self.period,
                "expire_time": self.expire_time, "renewable": self.renewable,
                "role": self.role, "path": self.path, "type": self.type,
                "entity_id": self.entity_id, "issue_time": self.issue_time,
                "last_renewal": self.last_renewal,
                **({"bound_cidrs": self.bound_cidrs} if self.bound_cidrs else {}),
                **({"internal_data": self.internal_data} if self.internal_data else {}),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes, *, id: str = "", hash: str = "") -> TokenEntry:
        d: dict[str, Any] = orjson.loads(raw)
        return cls(
            id=id, hash=hash, accessor=d.get("accessor", ""),
            policies=list(d.get("policies") or []), parent=d.get("parent", ""),
            display_name=d.get("display_name", ""), meta=d.get("meta"),
            num_uses=int(d.get("num_uses", 0)), creation_time=int(d.get("creation_time", 0)),
            ttl=int(d.get("ttl", 0)), creation_ttl=int(d.get("creation_ttl", 0)),
            explicit_max_ttl=int(d.get("explicit_max_ttl", 0)), period=int(d.get("period", 0)),
            expire_time=float(d.get("expire_time", 0.0)), renewable=bool(d.get("renewable", True)),
            role=d.get("role", ""), path=d.get("path", ""), type=d.get("type", SERVICE),
            entity_id=d.get("entity_id", ""), issue_time=float(d.get("issue_time", 0.0)),
            last_renewal=float(d.get("last_renewal", 0.0)),
            bound_cidrs=list(d.get("bound_cidrs") or []),
            internal_data=d.get("internal_data"),
        )

    # --- API shapes --------------------------------------------------------------

    def auth_block(self, lease_duration: int | None = None,
                   identity_policies: list[str] | None = None) -> dict[str, Any]:
        """The envelope's `auth` object (Go `HTTPAuth` field order; `token_policies` and
        `identity_policies` are omitempty). `policies` = token ∪ identity policies, sorted."""
        ttl = self.ttl if lease_duration is None else lease_duration
        block: dict[str, Any] = {
            "client_token": self.id,
            "accessor": self.accessor,
            "policies": (sorted(set(self.policies) | set(identity_policies))
                         if identity_policies else list(self.policies)),
        }
        if self.policies:
            block["token_policies"] = list(self.policies)
        if identity_policies:
            block["identity_policies"] = list(identity_policies)
        block.update({
            "metadata": self.meta,
            "lease_duration": ttl,
            "renewable": self.renewable and ttl > 0,
            "entity_id": self.entity_id,
            "token_type": self.type,
            "orphan": self.orphan,
            "mfa_requirement": None,
            "num_uses": self.num_uses,
        })
        return block

    def lookup_data(self, now: float) -> dict[str, Any]:
        """`auth/token/lookup*`'s `data` (Vault's handleLookup)."""
        data: dict[str, Any] = {
            "id": self.id,
            "accessor": self.accessor,
            "policies": list(self.policies),
            "path": self.path,
            "meta": self.meta,
            "display_name": self.display_name,
            "num_uses": max(self.num_uses, 0),
            "orphan": self.orphan,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "expire_time": None,
            "ttl": 0,
            "explicit_max_ttl": self.explicit_max_ttl,
            "entity_id": self.entity_id,
            "type": self.type,
        }
        if self.role:
            data["role"] = self.role
        if self.bound_cidrs:
            data["bound_cidrs"] = list(self.bound_cidrs)
        if self.period:
            data["period"] = self.period
        if self.has_lease:  # the lease's times, as `sys/leases/lookup` shows them
            if self.last_renewal:
                data["last_renewal_time"] = int(self.last_renewal)
                data["last_renewal"] = rfc3339(self.last_renewal)
            if self.expire_time:
                data["expire_time"] = rfc3339(self.expire_time)
                data["ttl"] = self.lease_ttl(now)
            data["renewable"] = self.lease_renewable(now)
            data["issue_time"] = rfc3339(self.issue_time or float(self.creation_time))
        return data
