"""Trusted CRLs (`crls/:name`, Vault's path_crls.go): the revoked serial numbers of a CRL,
stored at `crls/<lowercase name>` of the mount's storage. A login whose verified chain holds
a revoked serial (any CRL of the mount, matched by serial number alone, as Vault) matches no
role. Only `crl` (PEM or DER text) is supported, not `url`."""

from __future__ import annotations

from typing import Any

import orjson
from cryptography import x509

from transit.errors import UserError
from transit.gocompat import is_digits

CRL_PREFIX = "crls/"


def crl_key(name: str) -> str:
    return CRL_PREFIX + name.lower()


def parse_crl(value: Any) -> dict[str, dict[str, Any]]:
    """The `serials` map (decimal serial -> {}) of a CRL; UserError with Vault's text."""
    if not isinstance(value, str) or not value:
        raise UserError("failed to parse CRL: asn1: syntax error: truncated tag or length")
    raw = value.encode("utf-8", "surrogatepass")
    try:
        if b"-----BEGIN" in raw:
            crl = x509.load_pem_x509_crl(raw.strip())
        else:
            crl = x509.load_der_x509_crl(raw)
        serials: dict[str, dict[str, Any]] = {str(r.serial_number): {} for r in crl}
    except ValueError as exc:
        raise UserError(f"failed to parse CRL: {exc}") from None
    return serials


def to_json(serials: dict[str, dict[str, Any]]) -> bytes:
    return orjson.dumps({"serials": serials})


def revoked_serials(raw_entries: list[bytes]) -> set[int]:
    out: set[int] = set()
    for raw in raw_entries:
        for serial in (orjson.loads(raw).get("serials") or {}):
            if is_digits(str(serial)):
                out.add(int(serial))
    return out
