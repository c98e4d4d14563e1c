"""The JWT mount's `config` entry (Vault's `path_config.go`): where the signing keys come
from (exactly one of static PEM keys, a JWKS URL, OIDC discovery), the issuer to require,
the accepted algorithms and the default role. Stored at `config` in the mount's storage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from transit.engines.jwt.jws import SUPPORTED_ALGS, JWSError, parse_pem_keys
from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType, go_value
from transit.tokenutil import comma_list

CONFIG_KEY = "config"

CONFIG_FIELDS: dict[str, Field] = {
    "oidc_discovery_url": Field(FieldType.STRING, ""),
    "oidc_discovery_ca_pem": Field(FieldType.STRING, ""),
    "oidc_client_id": Field(FieldType.STRING, ""),
    "oidc_client_secret": Field(FieldType.STRING, ""),
    "oidc_response_mode": Field(FieldType.STRING, ""),
    "oidc_response_types": Field(FieldType.ANY),
    "jwks_url": Field(FieldType.STRING, ""),
    "jwks_ca_pem": Field(FieldType.STRING, ""),
    "default_role": Field(FieldType.STRING, ""),
    "jwt_validation_pubkeys": Field(FieldType.ANY),
    "jwt_supported_algs": Field(FieldType.ANY),
    "bound_issuer": Field(FieldType.STRING, ""),
    "provider_config": Field(FieldType.ANY),
    "namespace_in_state": Field(FieldType.BOOL, True),
}


@dataclass(slots=True)
class JWTConfig:
    jwt_validation_pubkeys: list[str] = field(default_factory=list)
    jwks_url: str = ""
    jwks_ca_pem: str = ""
    oidc_discovery_url: str = ""
    oidc_discovery_ca_pem: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""  # never shown
    oidc_response_mode: str = ""
    oidc_response_types: list[str] = field(default_factory=list)
    bound_issuer: str = ""
    jwt_supported_algs: list[str] = field(default_factory=list)
    default_role: str = ""
    provider_config: dict[str, Any] = field(default_factory=dict)
    namespace_in_state: bool = True

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> JWTConfig:
        d: dict[str, Any] = orjson.loads(raw)
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_response(self) -> dict[str, Any]:
        """GET config: every field but the client secret (Vault's pathConfigRead)."""
        out = asdict(self)
        del out["oidc_client_secret"]
        return dict(sorted(out.items()))

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self.jwt_supported_algs) or SUPPORTED_ALGS


def _string_list(value: Any, name: str) -> list[str]:
    return comma_list(value, name)


def parse_config(d: FieldData) -> JWTConfig:
    """The config a write describes (writes replace the whole config), with Vault's
    offline checks; the URL checks (network) are `keys.check_config`'s."""
    raw = d.raw
    provider = raw.get("provider_config")
    if provider is not None and not isinstance(provider, dict):
        raise UserError('Field validation failed: error converting input for field '
                        '"provider_config": \'\' expected type \'map[string]interface {}\', '
                        f"got unconvertible type '{_go_type(provider)}'")
    pubkeys_raw = raw.get("jwt_validation_pubkeys")
    pubkeys: list[str] = []
    if pubkeys_raw is not None:
        if isinstance(pubkeys_raw, str):
            pubkeys = [p for p in (s.strip() for s in pubkeys_raw.split(",")) if p]
        elif isinstance(pubkeys_raw, list) and all(isinstance(p, str) for p in pubkeys_raw):
            pubkeys = [p.strip() for p in pubkeys_raw if p.strip()]
        else:
            raise UserError("error parsing public key: data does not contain any valid public "
                            "keys")
    config = JWTConfig(
        jwt_validation_pubkeys=pubkeys,
        jwks_url=d.get("jwks_url"), jwks_ca_pem=d.get("jwks_ca_pem"),
        oidc_discovery_url=d.get("oidc_discovery_url"),
        oidc_discovery_ca_pem=d.get("oidc_discovery_ca_pem"),
        oidc_client_id=d.get("oidc_client_id"), oidc_client_secret=d.get("oidc_client_secret"),
        oidc_response_mode=d.get("oidc_response_mode"),
        oidc_response_types=_string_list(raw.get("oidc_response_types"),
                                         "oidc_response_types"),
        bound_issuer=d.get("bound_issuer"),
        jwt_supported_algs=_string_list(raw.get("jwt_supported_algs"), "jwt_supported_algs"),
        default_role=d.get("default_role"),
        provider_config=dict(provider or {}),
        namespace_in_state=d.get("namespace_in_state"),
    )
    sources = sum(1 for s in (config.jwt_validation_pubkeys, config.jwks_url,
                              config.oidc_discovery_url) if s)
    if sources != 1:
        raise UserError("exactly one of 'jwt_validation_pubkeys', 'jwks_url', 'jwks_pairs' or "
                        "'oidc_discovery_url' must be set")
    if config.oidc_response_mode not in ("", "query", "form_post"):
        raise UserError(f'invalid response_mode: "{config.oidc_response_mode}"')
    for rtype in config.oidc_response_types:
        if rtype not in ("code", "id_token"):
            raise UserError(f'unsupported response_type: "{rtype}"')
    if bool(config.oidc_client_id) != bool(config.oidc_client_secret):
        raise UserError("both 'oidc_client_id' and 'oidc_client_secret' must be set for OIDC")
    for pem in config.jwt_validation_pubkeys:
        try:
            parse_pem_keys(pem)
        except JWSError as exc:
            raise UserError(f"error parsing public key: {exc}") from None
    for alg in config.jwt_supported_algs:
        if alg not in SUPPORTED_ALGS:
            raise UserError(f'invalid jwt_supported_algs: unsupported signing algorithm "{alg}"')
    return config


def _go_type(v: Any) -> str:
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "json.Number"
    if isinstance(v, list):
        return "[]interface {}"
    return go_value(v)
