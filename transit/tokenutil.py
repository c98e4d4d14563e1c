"""The `token_*` fields every auth method's role (or user) carries (Vault's
`sdk/helper/tokenutil`): declare them, parse and validate a write, store them, show them.

An auth method adds `token_fields(legacy=...)` to its role route's fields, calls
`parse_token_fields(d, current)` in its write handler (it raises UserError with Vault's text
and returns warnings), stores `params.to_json()`, shows `params.to_response()` on read, and
hands the params to the core in its `Login` (transit/engines/authmethod.py), which does the
TTL arithmetic, token type and policy rules once for every method.

Legacy names Vault still accepts (`policies`, `ttl`, `max_ttl`, `period`, `bound_cidrs`,
`num_uses`) are per method: a method lists the ones it accepts. As in Vault's `UpgradeValue`,
a legacy name sets the token field too and is shown back on read under its old name until the
new name is written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType, coerce, go_value, remove_duplicates

# token_type values a role may hold ("default": the mount's type decides).
DEFAULT = "default"
SERVICE = "service"
BATCH = "batch"

# legacy name -> token_* name
LEGACY: dict[str, str] = {
    "policies": "token_policies",
    "ttl": "token_ttl",
    "max_ttl": "token_max_ttl",
    "period": "token_period",
    "bound_cidrs": "token_bound_cidrs",
    "num_uses": "token_num_uses",
}

def token_fields(legacy: Iterable[str] = ()) -> dict[str, Field]:
    """The route fields: every `token_*` field plus the legacy names the method accepts.
    Values are parsed by `parse_token_fields` (ANY here), so the error texts are Vault's."""
    out = {
        "token_bound_cidrs": Field(FieldType.ANY),
        "token_explicit_max_ttl": Field(FieldType.ANY),
        "token_max_ttl": Field(FieldType.ANY),
        "token_no_default_policy": Field(FieldType.ANY),
        "token_num_uses": Field(FieldType.ANY),
        "token_period": Field(FieldType.ANY),
        "token_policies": Field(FieldType.ANY),
        "token_type": Field(FieldType.ANY),
        "token_ttl": Field(FieldType.ANY),
    }
    for name in legacy:
        if name not in LEGACY:
            raise ValueError(f"unknown legacy token field {name!r}")
        out[name] = Field(FieldType.ANY)
    return out


@dataclass(slots=True)
class TokenParams:
    """A role's token settings (seconds for durations; `type` is default/service/batch)."""

    bound_cidrs: list[str] = field(default_factory=list)
    explicit_max_ttl: int = 0
    max_ttl: int = 0
    no_default_policy: bool = False
    num_uses: int = 0
    period: int = 0
    policies: list[str] = field(default_factory=list)
    type: str = DEFAULT
    ttl: int = 0
    legacy: list[str] = field(default_factory=list)  # legacy names last written (shown on read)

    def to_json(self) -> dict[str, Any]:
        return {
            "bound_cidrs": self.bound_cidrs, "explicit_max_ttl": self.explicit_max_ttl,
            "max_ttl": self.max_ttl, "no_default_policy": self.no_default_policy,
            "num_uses": self.num_uses, "period": self.period, "policies": self.policies,
            "type": self.type, "ttl": self.ttl, "legacy": self.legacy,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> TokenParams:
        d = d or {}
        return cls(
            bound_cidrs=list(d.get("bound_cidrs") or []),
            explicit_max_ttl=int(d.get("explicit_max_ttl", 0)), max_ttl=int(d.get("max_ttl", 0)),
            no_default_policy=bool(d.get("no_default_policy", False)),
            num_uses=int(d.get("num_uses", 0)), period=int(d.get("period", 0)),
            policies=list(d.get("policies") or []), type=str(d.get("type") or DEFAULT),
            ttl=int(d.get("ttl", 0)), legacy=list(d.get("legacy") or []),
        )

    def to_response(self) -> dict[str, Any]:
        """The `token_*` keys of a role read (Vault's PopulateTokenData), plus the legacy keys
        the role was last written with."""
        data: dict[str, Any] = {
            "token_bound_cidrs": list(self.bound_cidrs),
            "token_explicit_max_ttl": self.explicit_max_ttl,
            "token_max_ttl": self.max_ttl,
            "token_no_default_policy": self.no_default_policy,
            "token_num_uses": self.num_uses,
            "token_period": self.period,
            "token_policies": list(self.policies),
            "token_type": self.type,
            "token_ttl": self.ttl,
        }
        for old in self.legacy:
            data[old] = data[LEGACY[old]]
        return data

    def copy(self) -> TokenParams:
        return TokenParams.from_json(self.to_json())


# -- parsing --------------------------------------------------------------------------------


def parse_cidrs(value: Any, name: str = "token_bound_cidrs") -> list[str]:
    """A comma list (or JSON list) of CIDRs or addresses, as Vault shows them back
    (a host address without its /32 or /128)."""
    out: list[str] = []
    for item in comma_list(value, name):
        try:
            net = ipaddress.ip_network(item, strict=False)
            addr = ipaddress.ip_address(item.split("/", 1)[0])
        except ValueError:
            raise UserError(
                f'error parsing address "{item}": Unable to convert "{item}" to an IPv4 or '
                "IPv6 address, or a UNIX Socket") from None
        full = net.max_prefixlen
        out.append(str(addr) if net.prefixlen == full else f"{addr}/{net.prefixlen}")
    return out


def comma_list(value: Any, name: str) -> list[str]:
    """Vault's TypeCommaStringSlice: a JSON list or an `"a,b"` string; items trimmed."""
    if value is None:
        return []
    items: list[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise UserError(f'error converting input {go_value(value)} for field "{name}": '
                            "expected a list of strings")
            items.extend(str(v).split(","))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        items = [str(value)]
    else:
        raise UserError(f'error converting input {go_value(value)} for field "{name}": '
                        "expected a list of strings")
    return [s.strip() for s in items if s.strip()]


def _convert(ftype: FieldType, name: str, value: Any) -> Any:
    """The framework's weak coercion, with Vault's error text for a role route (these have
    an existence check, so no "Field validation failed: " prefix)."""
    try:
        return coerce(ftype, value)
    except ValueError as exc:
        raise UserError(
            f'error converting input {go_value(value)} for field "{name}": {exc}') from None


def _token_type(value: Any, warnings: list[str], adjust: bool) -> str:
    text = str(value).strip().lower() if value is not None else ""
    if text in ("", DEFAULT):
        return DEFAULT
    if text in (SERVICE, BATCH):
        return text
    if adjust and text in ("default-service", "default-batch"):
        adjusted = text.removeprefix("default-")
        warnings.append(f"{text} has no useful meaning; adjusting to {adjusted}")
        return adjusted
    raise UserError(f'invalid \'token_type\' value "{value}"')


def _present(d: FieldData, name: str) -> bool:
    return name in d.schema and name in d.raw


def parse_token_fields(d: FieldData, current: TokenParams | None = None, *,
                       adjust_default_types: bool = False) -> tuple[TokenParams, list[str]]:
    """The role's token params after this write (Vault's ParseTokenFields + UpgradeValue):
    fields absent from the request keep `current`'s values. JSON null counts as present with
    the zero value (spec §0). Raises UserError with Vault's texts; returns warnings.

    `token_type` `default-service`/`default-batch` are refused (`invalid 'token_type'
    value`), unless `adjust_default_types` (AppRole): then they become service/batch with
    the warning `default-service has no useful meaning; adjusting to service`."""
    p = current.copy() if current is not None else TokenParams()
    warnings: list[str] = []
    raw = d.raw

    def given(new: str) -> tuple[bool, Any]:
        """(present, value) of a token field, through its legacy name when only that came."""
        if _present(d, new):
            old = next((o for o, n in LEGACY.items() if n == new), None)
            if old is not None and old in p.legacy:
                p.legacy.remove(old)
            return True, raw[new]
        for old, n in LEGACY.items():
            if n == new and _present(d, old):
                if old not in p.legacy:
                    p.legacy.append(old)
                return True, raw[old]
        return False, None

    ok, v = given("token_bound_cidrs")
    if ok:
        p.bound_cidrs = parse_cidrs(v)
    for name, attr in (("token_ttl", "ttl"), ("token_max_ttl", "max_ttl"),
                       ("token_period", "period"), ("token_explicit_max_ttl", "explicit_max_ttl")):
        ok, v = given(name)
        if ok:
            setattr(p, attr, 0 if v is None else _convert(FieldType.DURATION, name, v))
    ok, v = given("token_num_uses")
    if ok:
        p.num_uses = 0 if v is None else _convert(FieldType.INT, "token_num_uses", v)
        if p.num_uses < 0:
            raise UserError("'token_num_uses' cannot be negative")
    ok, v = given("token_no_default_policy")
    if ok:
        p.no_default_policy = False if v is None else _convert(
            FieldType.BOOL, "token_no_default_policy", v)
    ok, v = given("token_policies")
    if ok:
        p.policies = remove_duplicates(comma_list(v, "token_policies"))
    ok, v = given("token_type")
    if ok:
        p.type = _token_type(v, warnings, adjust_default_types)
    validate(p)
    return p, warnings


def validate(p: TokenParams) -> None:
    """The cross-field rules of Vault's ParseTokenFields."""
    if p.max_ttl > 0 and p.ttl > p.max_ttl:
        raise UserError("'token_ttl' cannot be greater than 'token_max_ttl'")
    if p.type == BATCH:
        if p.period:
            raise UserError("'token_type' cannot be 'batch' or 'default_batch' when set to "
                            "generate periodic tokens")
        if p.num_uses:
            raise UserError("'token_type' cannot be 'batch' or 'default_batch' when set to "
                            "generate tokens with limited use count")


def addr_allowed(remote_addr: str, cidrs: list[str]) -> bool:
    """Whether `remote_addr` is inside one of `cidrs` (no CIDRs: always). An unparsable
    address is outside (Vault's cidrutil.RemoteAddrIsOk)."""
    if not cidrs:
        return True
    try:
        addr = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    for cidr in cidrs:
        try:
            if addr in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            continue
    return False
