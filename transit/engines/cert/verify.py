"""Which cert role a client certificate logs in with (Vault's `verifyCredentials` and
`matchesConstraints`, builtin/credential/cert/path_login.go; spec auth-api §4.2). Pure: the
backend loads the roles and turns the outcome into a login.

Chains are built with `cryptography`'s X.509 verifier: roots = the CA certificates of the CA
roles, the client's leaf (Python's ssl gives only the leaf, so intermediates must be in a
role's PEM), EKU checked afterwards as Go's `x509.Verify` does (clientAuth, or no EKU).
The verifier's web-PKI extension rules are relaxed where Go's are looser (SAN, EKU and AKI
optional on the leaf). A role whose certificate is not a CA trusts that exact certificate
(whole-certificate equality; Vault compares serial and AuthorityKeyId only).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from transit.engines.cert.roles import CertRole, client_auth_allowed, is_ca
from transit.errors import InternalError, UserError

NO_CHAIN = "invalid certificate or no client certificate supplied"
NO_MATCH = "no chain matching all constraints could be found for this login certificate"
# cryptography's text when no path to a root exists (Go's x509.UnknownAuthorityError)
_UNKNOWN_AUTHORITY = "all candidates exhausted with no interior errors"

_EE_POLICY = (ExtensionPolicy.webpki_defaults_ee()
              .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
              .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
              .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None))
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


@dataclass(slots=True)
class Candidate:
    role: CertRole
    certs: list[x509.Certificate]


def verify_chain(leaf: x509.Certificate, roots: list[x509.Certificate],
                 now: datetime.datetime | None = None) -> list[x509.Certificate] | None:
    """The verified chain (leaf first) to one of `roots`, None when no path exists;
    InternalError (500 on login) `failed to verify client's certificate: …` for a leaf that
    chains but is invalid (expired, wrong key usage), as Go's Verify."""
    now = now or datetime.datetime.now(datetime.UTC)
    if now < leaf.not_valid_before_utc or now > leaf.not_valid_after_utc:
        raise InternalError(
            "failed to verify client's certificate: x509: certificate has expired or is not "
            f"yet valid: current time {now.strftime('%Y-%m-%dT%H:%M:%SZ')} is "
            + (f"after {leaf.not_valid_after_utc.strftime('%Y-%m-%dT%H:%M:%SZ')}"
               if now > leaf.not_valid_after_utc
               else f"before {leaf.not_valid_before_utc.strftime('%Y-%m-%dT%H:%M:%SZ')}"))
    if not roots:
        return None
    verifier = (PolicyBuilder().store(Store(roots)).time(now)
                .extension_policies(ee_policy=_EE_POLICY, ca_policy=_CA_POLICY)
                .build_client_verifier())
    try:
        chain = list(verifier.verify(leaf, []).chain)
    except (VerificationError, ValueError) as exc:
        if _UNKNOWN_AUTHORITY in str(exc):
            return None
        raise InternalError(f"failed to verify client's certificate: x509: {exc}") from None
    if not client_auth_allowed(leaf):
        raise InternalError("failed to verify client's certificate: x509: certificate "
                            "specifies an incompatible key usage")
    return chain


def match_role(leaf: x509.Certificate, candidates: list[Candidate],
               now: datetime.datetime | None = None,
               revoked: frozenset[int] | set[int] = frozenset()) -> CertRole:
    """The first role (in `candidates` order) the leaf logs in with; UserError with Vault's
    texts when none. `revoked`: serial numbers of the mount's CRLs (a chain holding one
    matches no role)."""
    trusted_leaves = [c for c in candidates if c.certs and not is_ca(c.certs[0])]
    for c in trusted_leaves:
        if (c.certs[0] == leaf and leaf.serial_number not in revoked
                and matches_constraints(leaf, c.role)):
            return c.role
    roots = [cert for c in candidates if c.certs and is_ca(c.certs[0])
             for cert in c.certs if is_ca(cert)]
    chain = verify_chain(leaf, roots, now)
    if chain is None:
        raise UserError(NO_CHAIN)
    if any(cert.serial_number in revoked for cert in chain):
        raise UserError(NO_MATCH)
    for c in candidates:
        if not c.certs or not is_ca(c.certs[0]):
            continue
        if any(t == cc for t in c.certs for cc in chain) and matches_constraints(leaf, c.role):
            return c.role
    raise UserError(NO_MATCH)


# -- constraints (Vault's matchesNames ... matchesCertificateExtensions) ----------------------

def glob(pattern: str, value: str) -> bool:
    """ryanuber/go-glob: `*` matches any run of characters, nothing else is special."""
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value,
                        re.DOTALL) is not None


def _attrs(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def common_name(cert: x509.Certificate) -> str:
    cns = _attrs(cert.subject, NameOID.COMMON_NAME)
    return cns[0] if cns else ""


def _sans(cert: x509.Certificate, kind: type[x509.GeneralName]) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [str(v) for v in ext.get_values_for_type(kind)]  # type: ignore[arg-type]


def matches_constraints(leaf: x509.Certificate, role: CertRole) -> bool:
    cn = common_name(leaf)
    dns = _sans(leaf, x509.DNSName)
    emails = _sans(leaf, x509.RFC822Name)
    uris = _sans(leaf, x509.UniformResourceIdentifier)
    ous = _attrs(leaf.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)

    def any_of(field: str, values: list[str]) -> bool:
        allowed = role.values(field)
        return not allowed or any(glob(a, v) for a in allowed for v in values)

    return (any_of("allowed_names", [cn, *dns, *emails])
            and any_of("allowed_common_names", [cn])
            and any_of("allowed_dns_sans", dns)
            and any_of("allowed_email_sans", emails)
            and any_of("allowed_uri_sans", uris)
            and any_of("allowed_organizational_units", ous)
            and _extensions_match(leaf, role.values("required_extensions")))


def asn1_string(der: bytes) -> str | None:
    """The value of a DER string (what Go's asn1.Unmarshal into a string accepts:
    UTF8String, PrintableString, IA5String, T61String, NumericString, BMPString), else None."""
    if len(der) < 2 or der[0] not in (0x0C, 0x12, 0x13, 0x14, 0x16, 0x1E):
        return None
    length, at = der[1], 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or len(der) < 2 + n:
            return None
        length, at = int.from_bytes(der[2:2 + n], "big"), 2 + n
    body = der[at:at + length]
    if len(body) != length:
        return None
    try:
        if der[0] == 0x1E:
            return body.decode("utf-16-be")
        return body.decode("utf-8" if der[0] == 0x0C else "latin-1")
    except UnicodeDecodeError:
        return None


def _raw_extensions(cert: x509.Certificate) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        for ext in cert.extensions:
            value = ext.value
            raw = value.value if isinstance(value, x509.UnrecognizedExtension) else \
                value.public_bytes()
            out[ext.oid.dotted_string] = raw
    except (ValueError, NotImplementedError):
        pass
    return out


def _extensions_match(leaf: x509.Certificate, required: list[str]) -> bool:
    if not required:
        return True
    exts = _raw_extensions(leaf)
    if not exts:
        return False
    for req in required:
        parts = req.split(":", 1)
        if len(parts) != 2:
            return False
        if parts[0] == "hex":
            hex_parts = parts[1].split(":", 1)
            if len(hex_parts) != 2 or hex_parts[0] not in exts:
                return False
            if not glob(hex_parts[1].lower(), exts[hex_parts[0]].hex()):
                return False
        else:
            if parts[0] not in exts:
                return False
            if not glob(parts[1], asn1_string(exts[parts[0]]) or ""):
                return False
    return True


def metadata_extensions(leaf: x509.Certificate, oids: list[str]) -> dict[str, str]:
    """`allowed_metadata_extensions` values of the leaf, keyed `1-2-3` (dots to dashes)."""
    exts = _raw_extensions(leaf)
    out: dict[str, str] = {}
    for oid in oids:
        raw = exts.get(oid.strip())
        value = asn1_string(raw) if raw is not None else None
        if value is not None:
            out[oid.strip().replace(".", "-")] = value
    return out


def key_id_hex(value: bytes | None) -> str:
    """certutil.GetHexFormatted(…, ":")."""
    return ":".join(f"{b:02x}" for b in (value or b""))


__all__ = ["Candidate", "NO_CHAIN", "NO_MATCH", "match_role", "verify_chain"]
