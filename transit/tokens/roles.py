"""Token roles (`auth/token/roles/:name`): stored JSON, read shape, and the policy rules."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from transit.fields import remove_duplicates
from transit.tokens.cache import ROLE_CACHE_SIZE, make_room

TOKEN_TYPES = ("service", "batch", "default-service", "default-batch")


@dataclass(slots=True)
class TokenRole:
    name: str
    allowed_policies: list[str] = field(default_factory=list)
    disallowed_policies: list[str] = field(default_factory=list)
    allowed_policies_glob: list[str] = field(default_factory=list)
    disallowed_policies_glob: list[str] = field(default_factory=list)
    allowed_entity_aliases: list[str] = field(default_factory=list)
    orphan: bool = False
    renewable: bool = True
    path_suffix: str = ""
    period: int = 0  # token_period
    explicit_max_ttl: int = 0  # token_explicit_max_ttl
    token_type: str = "default-service"
    token_no_default_policy: bool = False
    token_num_uses: int = 0
    token_bound_cidrs: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> TokenRole:
        d = orjson.loads(raw)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def read_data(self) -> dict[str, Any]:
        """The `data` of `GET auth/token/roles/:name` (Vault's tokenStoreRoleRead)."""
        data: dict[str, Any] = {
            "allowed_entity_aliases": list(self.allowed_entity_aliases),
            "allowed_policies": list(self.allowed_policies),
            "allowed_policies_glob": list(self.allowed_policies_glob),
            "disallowed_policies": list(self.disallowed_policies),
            "disallowed_policies_glob": list(self.disallowed_policies_glob),
            "explicit_max_ttl": self.explicit_max_ttl,
            "name": self.name,
            "orphan": self.orphan,
            "path_suffix": self.path_suffix,
            "period": self.period,
            "renewable": self.renewable,
            "token_explicit_max_ttl": self.explicit_max_ttl,
            "token_no_default_policy": self.token_no_default_policy,
            "token_period": self.period,
            "token_type": self.token_type,
        }
        if self.token_bound_cidrs:
            data["token_bound_cidrs"] = list(self.token_bound_cidrs)
        if self.token_num_uses > 0:
            data["token_num_uses"] = self.token_num_uses
        return data


class RoleStore:
    """Roles under the token store's storage at `roles/<name>` (names are lower-cased).

    The cache is bounded (`cache_size`, oldest insertions evicted) and never mutated in
    place: `auth/token/roles/:name` writes a copy, `put` caches the role it stored."""

    def __init__(self, storage: Any, *, cache_size: int = ROLE_CACHE_SIZE) -> None:
        self.storage = storage
        self.cache_size = cache_size
        self._cache: dict[str, TokenRole] = {}

    def _remember(self, name: str, role: TokenRole) -> None:
        if name not in self._cache:
            make_room(self._cache, self.cache_size)
        self._cache[name] = role

    async def get(self, name: str) -> TokenRole | None:
        name = name.lower()
        role = self._cache.get(name)
        if role is not None:
            return role
        raw = await self.storage.get("roles/" + name)
        if raw is None:
            return None
        role = TokenRole.from_json(raw)
        self._remember(name, role)
        return role

    async def put(self, role: TokenRole) -> None:
        role.name = role.name.lower()
        await self.storage.put("roles/" + role.name, role.to_json())
        self._remember(role.name, role)

    async def delete(self, name: str) -> None:
        name = name.lower()
        await self.storage.delete("roles/" + name)
        self._cache.pop(name, None)

    async def list(self) -> list[str]:
        return [k for k in await self.storage.list("roles/") if not k.endswith("/")]

    def invalidate(self, name: str | None = None) -> None:
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name.lower(), None)


# --- policy-list helpers (Vault's policyutil / strutil) ------------------------------


def sanitize_policies(policies: list[str], add_default: bool) -> list[str]:
    """policyutil.SanitizePolicies: `root` swallows everything else; maybe add `default`."""
    cleaned = [p.strip().lower() for p in policies]
    if "root" in cleaned:
        return ["root"]
    if add_default and "default" not in cleaned:
        cleaned.append("default")
    return remove_duplicates(cleaned)


def go_quote_list(items: list[str]) -> str:
    """Go's `%q` of a []string: ["a" "b"]."""
    return "[" + " ".join(f'"{s}"' for s in items) + "]"


def glob_match(pattern: str, value: str) -> bool:
    """ryanuber/go-glob: `*` is the only wildcard."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def contains_glob(patterns: list[str], value: str) -> bool:
    return any(glob_match(p, value) for p in patterns)
