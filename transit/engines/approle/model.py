"""AppRole's stored entries and the pure rules around them (Vault's
`builtin/credential/approle`: path_role.go, validation.go; spec auth-api §2).

Storage layout of a mount (its StorageView, behind the barrier):

    salt                                   the mount's random salt (made once)
    role/<lowercase role name>             a `Role` (JSON)
    role_id/<salted role_id>               {"name": role name}: the login's role_id index
    secret_id/<role HMAC>/<secret HMAC>    a `SecretID` (JSON); `secret_id_local/` for roles
                                           created with local_secret_ids
    accessor/<salted accessor>             {"secret_id_hmac", "role_name_hmac"}
                                           (`accessor_local/` likewise)

A secret ID is never stored: only HMAC-SHA256(role's hmac_key, secret_id) (Vault's
createHMAC), as is the role name in the path. Role IDs and accessors are indexed by
HMAC-SHA256(mount salt, value). Nothing here does I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from transit.errors import UserError
from transit.gocompat import ZERO_TIME, format_time_ns
from transit.tokenutil import TokenParams

ROLE_PREFIX = "role/"
ROLE_ID_PREFIX = "role_id/"
SECRET_ID_PREFIX = "secret_id/"
SECRET_ID_LOCAL_PREFIX = "secret_id_local/"
ACCESSOR_PREFIX = "accessor/"
ACCESSOR_LOCAL_PREFIX = "accessor_local/"
SALT_KEY = "salt"
MAX_HMAC_INPUT = 4096  # Vault's maxHmacInputLength: role names are HMAC'd


def create_hmac(key: str, value: str) -> str:
    """Vault's createHMAC: hex HMAC-SHA256 of `value` under the string `key`."""
    return hmac.new(key.encode(), value.encode("utf-8", "surrogatepass"),
                    hashlib.sha256).hexdigest()


def salted(salt: bytes, value: str) -> str:
    """The index form of a role ID or an accessor (HMAC-SHA256 under the mount's salt)."""
    return hmac.new(salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def role_key(name: str) -> str:
    return ROLE_PREFIX + name.lower()


@dataclass(slots=True)
class Role:
    """A role as stored. `name` is lowercase; `hmac_key` keys the HMACs of its secret IDs."""

    name: str
    role_id: str = ""
    hmac_key: str = ""
    bind_secret_id: bool = True
    secret_id_bound_cidrs: list[str] | None = None  # None: never set (read shows null)
    secret_id_num_uses: int = 0
    secret_id_ttl: int = 0
    local_secret_ids: bool = False
    token: TokenParams = field(default_factory=TokenParams)

    def to_json(self) -> bytes:
        return orjson.dumps({
            "name": self.name, "role_id": self.role_id, "hmac_key": self.hmac_key,
            "bind_secret_id": self.bind_secret_id,
            "secret_id_bound_cidrs": self.secret_id_bound_cidrs,
            "secret_id_num_uses": self.secret_id_num_uses, "secret_id_ttl": self.secret_id_ttl,
            "local_secret_ids": self.local_secret_ids, "token": self.token.to_json(),
        })

    @classmethod
    def from_json(cls, raw: bytes) -> Role:
        d: dict[str, Any] = orjson.loads(raw)
        cidrs = d.get("secret_id_bound_cidrs")
        return cls(
            name=str(d["name"]), role_id=str(d.get("role_id", "")),
            hmac_key=str(d.get("hmac_key", "")), bind_secret_id=bool(d.get("bind_secret_id")),
            secret_id_bound_cidrs=list(cidrs) if cidrs is not None else None,
            secret_id_num_uses=int(d.get("secret_id_num_uses", 0)),
            secret_id_ttl=int(d.get("secret_id_ttl", 0)),
            local_secret_ids=bool(d.get("local_secret_ids", False)),
            token=TokenParams.from_json(d.get("token")),
        )

    def copy(self) -> Role:
        return Role.from_json(self.to_json())

    @property
    def secret_prefix(self) -> str:
        return SECRET_ID_LOCAL_PREFIX if self.local_secret_ids else SECRET_ID_PREFIX

    @property
    def accessor_prefix(self) -> str:
        return ACCESSOR_LOCAL_PREFIX if self.local_secret_ids else ACCESSOR_PREFIX

    @property
    def name_hmac(self) -> str:
        return create_hmac(self.hmac_key, self.name)

    def secret_key(self, secret_hmac: str) -> str:
        return f"{self.secret_prefix}{self.name_hmac}/{secret_hmac}"

    def has_constraint(self) -> bool:
        """Vault's validateRoleConstraints: a role must keep at least one."""
        return bool(self.bind_secret_id or self.secret_id_bound_cidrs or self.token.bound_cidrs)

    def to_response(self) -> dict[str, Any]:
        """`GET role/:name` (Vault's pathRoleRead; legacy `policies`/`period` only when the
        role was last written through those names)."""
        data: dict[str, Any] = {
            "bind_secret_id": self.bind_secret_id,
            "local_secret_ids": self.local_secret_ids,
            "secret_id_bound_cidrs": self.secret_id_bound_cidrs,
            "secret_id_num_uses": self.secret_id_num_uses,
            "secret_id_ttl": self.secret_id_ttl,
        }
        data.update(self.token.to_response())
        if "policies" in data and not self.token.policies:
            del data["policies"]
        if "period" in data and not self.token.period:
            del data["period"]
        return data


@dataclass(slots=True)
class SecretID:
    """A secret ID's properties (Vault's secretIDStorageEntry); times in ns since the epoch,
    expiration 0 = never."""

    accessor: str
    num_uses: int = 0
    ttl: int = 0
    creation_time: int = 0
    expiration_time: int = 0
    last_updated_time: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    cidr_list: list[str] = field(default_factory=list)
    token_bound_cidrs: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps({
            "secret_id_accessor": self.accessor, "secret_id_num_uses": self.num_uses,
            "secret_id_ttl": self.ttl, "creation_time": self.creation_time,
            "expiration_time": self.expiration_time,
            "last_updated_time": self.last_updated_time, "metadata": self.metadata,
            "cidr_list": self.cidr_list, "token_bound_cidrs": self.token_bound_cidrs,
        })

    @classmethod
    def from_json(cls, raw: bytes) -> SecretID:
        d: dict[str, Any] = orjson.loads(raw)
        return cls(
            accessor=str(d["secret_id_accessor"]), num_uses=int(d.get("secret_id_num_uses", 0)),
            ttl=int(d.get("secret_id_ttl", 0)), creation_time=int(d.get("creation_time", 0)),
            expiration_time=int(d.get("expiration_time", 0)),
            last_updated_time=int(d.get("last_updated_time", 0)),
            metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()},
            cidr_list=list(d.get("cidr_list") or []),
            token_bound_cidrs=list(d.get("token_bound_cidrs") or []),
        )

    def expired(self, now_ns: int) -> bool:
        return self.expiration_time != 0 and self.expiration_time <= now_ns

    def to_response(self) -> dict[str, Any]:
        """`secret-id/lookup` and `secret-id-accessor/lookup` (Vault's ToResponseData)."""
        return {
            "cidr_list": list(self.cidr_list),
            "creation_time": format_time_ns(self.creation_time),
            "expiration_time": (format_time_ns(self.expiration_time) if self.expiration_time
                                else ZERO_TIME),
            "last_updated_time": format_time_ns(self.last_updated_time),
            "metadata": dict(self.metadata),
            "secret_id_accessor": self.accessor,
            "secret_id_num_uses": self.num_uses,
            "secret_id_ttl": self.ttl,
            "token_bound_cidrs": list(self.token_bound_cidrs),
        }


def accessor_json(secret_hmac: str, role_name_hmac: str) -> bytes:
    return orjson.dumps({"secret_id_hmac": secret_hmac, "role_name_hmac": role_name_hmac})


def accessor_from_json(raw: bytes) -> tuple[str, str]:
    """(secret_id_hmac, role_name_hmac) of an accessor entry."""
    d: dict[str, Any] = orjson.loads(raw)
    return str(d.get("secret_id_hmac", "")), str(d.get("role_name_hmac", ""))


# -- CIDRs (Vault's cidrutil, with Go's net.ParseCIDR) --------------------------------------

_BITS = re.compile(r"[0-9]+")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, IPNetwork] | None:
    """Go's net.ParseCIDR: an address with a `/bits` suffix (host bits may be set), else
    None. A bare address is not a CIDR."""
    addr, sep, bits = text.partition("/")
    if not sep or not _BITS.fullmatch(bits) or "%" in addr:
        return None
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    n = int(bits)
    if n > ip.max_prefixlen:
        return None
    return ip, ipaddress.ip_network(f"{ip}/{n}", strict=False)


def invalid_cidr(cidrs: list[str]) -> str | None:
    """Vault's ValidateCIDRListSlice: the error of the first block that is not a CIDR."""
    for block in cidrs:
        if parse_cidr(block.strip()) is None:
            return f"invalid CIDR address: {block.strip()}"
    return None


def with_mask(block: str) -> str:
    """A host address as the CIDR Vault prints it in a subset error (`127.0.0.1/32`)."""
    if "/" in block:
        return block
    try:
        return f"{block}/{ipaddress.ip_address(block).max_prefixlen}"
    except ValueError:
        return block


def is_subset(outer: list[str], inner: list[str]) -> bool:
    """Vault's cidrutil.SubsetBlocks: every block of `inner` lies inside one of `outer`."""
    parsed_outer = [p for p in (parse_cidr(with_mask(b)) for b in outer) if p is not None]
    for block in inner:
        parsed = parse_cidr(with_mask(block))
        if parsed is None:
            return False
        ip, net = parsed
        if not any(o_net.prefixlen <= net.prefixlen and o_net.version == ip.version
                   and ip in o_net for _, o_net in parsed_outer):
            return False
    return True


def go_quote_list(items: list[str]) -> str:
    """Go's `%q` of a []string."""
    return "[" + " ".join(json.dumps(s) for s in items) + "]"


def subset_error(role_cidrs: list[str], secret_cidrs: list[str]) -> str | None:
    """Vault's verifyCIDRRoleSecretIDSubset: None when the secret ID's CIDRs are inside the
    role's (or either list is empty), else its error text (a plain error: 500)."""
    if not secret_cidrs or not role_cidrs:
        return None
    outer = [with_mask(b) for b in role_cidrs]
    if is_subset(outer, secret_cidrs):
        return None
    return ("failed to verify subset relationship between CIDR blocks on the role "
            f"{go_quote_list(outer)} and CIDR blocks on the secret ID "
            f"{go_quote_list(secret_cidrs)}: %!w(<nil>)")


# -- secret ID metadata (Vault's strutil.ParseArbitraryKeyValues) ---------------------------


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _key_values(text: str) -> dict[str, str]:
    """strutil.ParseKeyValues over ParseDedupLowercaseAndSortStrings: `k=v,k2=v2`,
    lowercased."""
    out: dict[str, str] = {}
    items = sorted({s.strip().lower() for s in text.split(",")} - {""})
    for item in items:
        shards = item.split("=")
        if len(shards) != 2 or not shards[0].strip() or not shards[1].strip():
            raise UserError("failed to parse metadata: failed to parse the input: "
                            "invalid <key,value> format")
        out[shards[0].strip()] = shards[1].strip()
    return out


def _json_object(text: str) -> dict[str, str] | None:
    """Go's json.Decoder into a map[string]string (first value only): None when it fails."""
    try:
        value, _ = json.JSONDecoder().raw_decode(text.lstrip(" \t\r\n"))
    except ValueError:
        return None
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return None
    return {str(k): v for k, v in value.items()}


def parse_metadata(text: str) -> dict[str, str]:
    """A secret ID's `metadata`: a JSON object of strings (maybe base64-encoded), else
    `k=v,k2=v2`; an empty value is refused. Raises UserError with Vault's texts."""
    text = text.strip()
    if not text:
        return {}
    compact = text.replace("\r", "").replace("\n", "")
    try:
        text = base64.b64decode(compact, validate=True).decode("utf-8", "replace")
    except ValueError:
        pass
    parsed = _json_object(text)
    out = parsed if parsed is not None else _key_values(text)
    for key, value in out.items():
        if key and not value:
            raise UserError(f"failed to parse metadata: invalid value for key {_go_quote(key)}")
    return out
