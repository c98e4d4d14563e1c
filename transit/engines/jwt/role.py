"""JWT roles as stored (`role/<name>` in the mount's storage) and the parsing of a role
write (Vault's vault-plugin-auth-jwt `path_role.go`; spec auth-api §5.2).

A write merges into the stored role (fields not sent keep their values), except
`role_type` and `bound_claims_type`, which fall back to their defaults (`oidc`, `string`) on
every write, as in Vault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from transit.engines.jwt.claims import normalize_list
from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType, go_type, go_value, parse_duration
from transit.tokenutil import TokenParams, comma_list, parse_token_fields, token_fields

ROLE_PREFIX = "role/"
ROLE_TYPES = ("jwt", "oidc")
CLAIM_TYPES = ("string", "glob")
# Vault's JWT roles accept every legacy token field name.
LEGACY = ("policies", "num_uses", "ttl", "max_ttl", "period", "bound_cidrs")
VERBOSE_WARNING = ("verbose_oidc_logging has been enabled for this role. This is not "
                   "recommended in production since sensitive information may be present in "
                   "OIDC responses.")

ROLE_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, ""),
    "role_type": Field(FieldType.STRING, ""),
    "bound_audiences": Field(FieldType.ANY),
    "bound_subject": Field(FieldType.STRING, ""),
    "bound_claims_type": Field(FieldType.STRING, "string"),
    "bound_claims": Field(FieldType.ANY),
    "claim_mappings": Field(FieldType.ANY),
    "user_claim": Field(FieldType.STRING, ""),
    "user_claim_json_pointer": Field(FieldType.BOOL, False),
    "groups_claim": Field(FieldType.STRING, ""),
    "clock_skew_leeway": Field(FieldType.ANY),
    "expiration_leeway": Field(FieldType.ANY),
    "not_before_leeway": Field(FieldType.ANY),
    "verbose_oidc_logging": Field(FieldType.BOOL, False),
    # OIDC mode only: stored and shown, never used by a JWT login
    "allowed_redirect_uris": Field(FieldType.ANY),
    "oidc_scopes": Field(FieldType.ANY),
    "max_age": Field(FieldType.DURATION, 0),
    **token_fields(LEGACY),
}


@dataclass(slots=True)
class JWTRole:
    role_type: str = "oidc"
    bound_audiences: list[str] | None = None
    bound_subject: str = ""
    bound_claims_type: str = "string"
    bound_claims: dict[str, Any] | None = None
    claim_mappings: dict[str, str] | None = None
    user_claim: str = ""
    user_claim_json_pointer: bool = False
    groups_claim: str = ""
    clock_skew_leeway: int = 0
    expiration_leeway: int = 0
    not_before_leeway: int = 0
    verbose_oidc_logging: bool = False
    allowed_redirect_uris: list[str] | None = None
    oidc_scopes: list[str] | None = None
    max_age: int = 0
    token: TokenParams = field(default_factory=TokenParams)

    def to_json(self) -> bytes:
        d = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "token"}
        d["token"] = self.token.to_json()
        return orjson.dumps(d)

    @classmethod
    def from_json(cls, raw: bytes) -> JWTRole:
        d: dict[str, Any] = orjson.loads(raw)
        token = TokenParams.from_json(d.pop("token", None))
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(token=token, **known)

    def to_response(self) -> dict[str, Any]:
        """GET role/<name> (Vault's pathRoleRead): unset lists and maps are null."""
        data: dict[str, Any] = {
            "allowed_redirect_uris": self.allowed_redirect_uris,
            "bound_audiences": self.bound_audiences,
            "bound_claims": self.bound_claims,
            "bound_claims_type": self.bound_claims_type,
            "bound_subject": self.bound_subject,
            "claim_mappings": self.claim_mappings,
            "clock_skew_leeway": self.clock_skew_leeway,
            "expiration_leeway": self.expiration_leeway,
            "groups_claim": self.groups_claim,
            "max_age": self.max_age,
            "not_before_leeway": self.not_before_leeway,
            "oidc_scopes": self.oidc_scopes,
            "role_type": self.role_type,
            "user_claim": self.user_claim,
            "user_claim_json_pointer": self.user_claim_json_pointer,
            "verbose_oidc_logging": self.verbose_oidc_logging,
        }
        data.update(self.token.to_response())
        return dict(sorted(data.items()))


def role_key(name: str) -> str:
    return ROLE_PREFIX + name


def _map_error(name: str, value: Any, want: str = "map[string]interface {}") -> UserError:
    return UserError(f'error converting input for field "{name}": \'\' expected type '
                     f"'{want}', got unconvertible type '{go_type(value)}'")


def _leeway(d: FieldData, name: str) -> int | None:
    """A signed duration (Vault's TypeSignedDurationSecond), None when not sent."""
    if name not in d.raw:
        return None
    value = d.raw[name]
    if value is None:
        return 0
    try:
        return parse_duration(value)
    except ValueError:
        raise UserError(f'error converting input for field "{name}": time: invalid duration '
                        f'"{go_value(value)}"') from None


def _claim_mappings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _map_error("claim_mappings", value, "map[string]string")
    out: dict[str, str] = {}
    for key, target in value.items():
        if isinstance(target, bool):
            target = "1" if target else "0"
        elif isinstance(target, int | float):
            target = str(target)
        elif not isinstance(target, str):
            raise UserError(f'error converting input for field "claim_mappings": \'[{key}]\' '
                            f"expected type 'string', got unconvertible type "
                            f"'{go_type(target)}', value: '{go_value(target)}'")
        out[str(key)] = target
    targets: set[str] = set()
    for target in out.values():
        if target == "role":
            raise UserError('metadata key "role" is reserved and may not be a mapping '
                            "destination")
        if target in targets:
            raise UserError(f'multiple keys are mapped to metadata key "{target}"')
        targets.add(target)
    return out


def apply_role_write(d: FieldData, current: JWTRole | None) -> tuple[JWTRole, list[str]]:
    """The role after this write (raises UserError with Vault's texts) and its warnings."""
    role = JWTRole.from_json(current.to_json()) if current is not None else JWTRole()
    raw = d.raw
    role_type = d.get("role_type") or "oidc"
    if role_type not in ROLE_TYPES:
        raise UserError(f"invalid 'role_type': {role_type}")
    role.role_type = role_type
    role.token, warnings = parse_token_fields(d, role.token)

    if "verbose_oidc_logging" in raw:
        role.verbose_oidc_logging = d.get("verbose_oidc_logging")
    if "user_claim_json_pointer" in raw:
        role.user_claim_json_pointer = d.get("user_claim_json_pointer")
    for name in ("clock_skew_leeway", "expiration_leeway", "not_before_leeway"):
        value = _leeway(d, name)
        if value is not None:
            setattr(role, name, value)
    if "bound_audiences" in raw:
        role.bound_audiences = comma_list(raw["bound_audiences"], "bound_audiences")
    if "bound_subject" in raw:
        role.bound_subject = d.get("bound_subject")
    claims_type = d.get("bound_claims_type") or "string"
    if claims_type not in CLAIM_TYPES:
        raise UserError(f"invalid 'bound_claims_type': {claims_type}")
    role.bound_claims_type = claims_type
    if "bound_claims" in raw:
        bound = raw["bound_claims"]
        if bound is None:
            bound = {}
        if not isinstance(bound, dict):
            raise _map_error("bound_claims", bound)
        if claims_type == "glob":
            for values in bound.values():
                items = normalize_list(values)
                if items is None:
                    raise UserError(f"claim is not a string or list: {go_value(values)}")
                for item in items:
                    if not isinstance(item, str):
                        raise UserError(f"claim is not a string: {go_value(item)}")
        role.bound_claims = dict(bound)
    if "claim_mappings" in raw:
        mappings = raw["claim_mappings"]
        role.claim_mappings = _claim_mappings(mappings if mappings is not None else {})
    if "user_claim" in raw:
        role.user_claim = d.get("user_claim")
    if not role.user_claim:
        raise UserError("a user claim must be defined on the role")
    if "groups_claim" in raw:
        role.groups_claim = d.get("groups_claim")
    if "allowed_redirect_uris" in raw:
        role.allowed_redirect_uris = comma_list(raw["allowed_redirect_uris"],
                                                "allowed_redirect_uris")
    if "oidc_scopes" in raw:
        role.oidc_scopes = comma_list(raw["oidc_scopes"], "oidc_scopes")
    if "max_age" in raw:
        role.max_age = d.get("max_age")

    if role.role_type != "oidc" and not (role.bound_audiences or role.token.bound_cidrs
                                         or role.bound_subject or role.bound_claims):
        raise UserError("must have at least one bound constraint when creating/updating a role")
    if role.role_type == "oidc" and not role.allowed_redirect_uris:
        raise UserError("'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or "
                        "unspecified.")
    if role.verbose_oidc_logging:
        warnings.append(VERBOSE_WARNING)
    return role, warnings
