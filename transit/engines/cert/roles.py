"""Cert roles as stored (`cert/<lowercase name>` in the mount's storage, behind the barrier)
and the mount's `config` (Vault's CertEntry and config; spec auth-api §4.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from transit.errors import UserError
from transit.tokenutil import TokenParams

ROLE_PREFIX = "cert/"
CONFIG_KEY = "config"

# the list fields of a role, in Vault's read order
LIST_FIELDS = ("allowed_names", "allowed_common_names", "allowed_dns_sans",
               "allowed_email_sans", "allowed_uri_sans", "allowed_organizational_units",
               "required_extensions", "allowed_metadata_extensions", "ocsp_servers_override")
BOOL_FIELDS = ("ocsp_enabled", "ocsp_fail_open", "ocsp_query_all_servers")


@dataclass(slots=True)
class CertRole:
    name: str
    certificate: str = ""
    display_name: str = ""
    # None: never set (read back as null); [] set empty
    lists: dict[str, list[str] | None] = field(
        default_factory=lambda: dict.fromkeys(LIST_FIELDS))
    flags: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(BOOL_FIELDS, False))
    ocsp_ca_certificates: str = ""
    token: TokenParams = field(default_factory=TokenParams)

    def to_json(self) -> bytes:
        return orjson.dumps({
            "name": self.name, "certificate": self.certificate,
            "display_name": self.display_name, "lists": self.lists, "flags": self.flags,
            "ocsp_ca_certificates": self.ocsp_ca_certificates, "token": self.token.to_json(),
        })

    @classmethod
    def from_json(cls, raw: bytes) -> CertRole:
        d: dict[str, Any] = orjson.loads(raw)
        role = cls(name=str(d.get("name", "")), certificate=str(d.get("certificate", "")),
                   display_name=str(d.get("display_name", "")),
                   ocsp_ca_certificates=str(d.get("ocsp_ca_certificates", "")),
                   token=TokenParams.from_json(d.get("token")))
        role.lists.update({k: (list(v) if v is not None else None)
                           for k, v in (d.get("lists") or {}).items() if k in LIST_FIELDS})
        role.flags.update({k: bool(v) for k, v in (d.get("flags") or {}).items()
                           if k in BOOL_FIELDS})
        return role

    def values(self, name: str) -> list[str]:
        return self.lists.get(name) or []

    def to_response(self) -> dict[str, Any]:
        data: dict[str, Any] = {"certificate": self.certificate,
                                "display_name": self.display_name}
        data.update(self.lists)
        data.update(self.flags)
        data["ocsp_ca_certificates"] = self.ocsp_ca_certificates
        data.update(self.token.to_response())
        return dict(sorted(data.items()))

    def parsed(self) -> list[x509.Certificate]:
        return parse_pem(self.certificate)


@dataclass(slots=True)
class CertConfig:
    disable_binding: bool = False
    enable_identity_alias_metadata: bool = False
    ocsp_cache_size: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_response())

    def to_response(self) -> dict[str, Any]:
        return {"disable_binding": self.disable_binding,
                "enable_identity_alias_metadata": self.enable_identity_alias_metadata,
                "ocsp_cache_size": self.ocsp_cache_size}

    @classmethod
    def from_json(cls, raw: bytes | None) -> CertConfig:
        d: dict[str, Any] = orjson.loads(raw) if raw else {}
        return cls(disable_binding=bool(d.get("disable_binding", False)),
                   enable_identity_alias_metadata=bool(
                       d.get("enable_identity_alias_metadata", False)),
                   ocsp_cache_size=int(d.get("ocsp_cache_size", 0)))


def role_key(name: str) -> str:
    return ROLE_PREFIX + name.lower()


def parse_pem(text: str) -> list[x509.Certificate]:
    """Every certificate of a PEM text (Vault's parsePEM: other blocks and garbage are
    skipped; [] when there is none)."""
    if not isinstance(text, str) or "-----BEGIN" not in text:
        return []
    try:
        return x509.load_pem_x509_certificates(text.encode("utf-8", "surrogatepass"))
    except ValueError:
        return _parse_pem_blocks(text)


def _parse_pem_blocks(text: str) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    rest = text
    while begin in rest:
        start = rest.index(begin)
        stop = rest.find(end, start)
        if stop < 0:
            break
        block = rest[start:stop + len(end)]
        rest = rest[stop + len(end):]
        try:
            out.append(x509.load_pem_x509_certificate(block.encode("utf-8", "surrogatepass")))
        except ValueError:
            continue
    return out


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def client_auth_allowed(cert: x509.Certificate) -> bool:
    """Go's rule for a leaf: no EKU extension, or one with clientAuth (or any)."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    except ValueError:
        return False
    return (ExtendedKeyUsageOID.CLIENT_AUTH in eku
            or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku)


def check_role_certificate(text: Any) -> list[x509.Certificate]:
    """The certificates of a role write, with Vault's errors."""
    certs = parse_pem(text) if isinstance(text, str) else []
    if not certs:
        raise UserError("failed to parse certificate")
    if not is_ca(certs[0]) and not client_auth_allowed(certs[0]):
        raise UserError("nonCA certificates should have TLS client authentication set as an "
                        "extended key usage")
    return certs
