"""Key read (`KeyInfo`, spec §4.2) and export (§4.17), mixed into `Policy`."""

from __future__ import annotations

import base64
import textwrap
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization

from transit.crypto.encoding import b64encode
from transit.crypto.keytypes import KeyType
from transit.errors import InternalError, UserError
from transit.gocompat import atoi, format_time

if TYPE_CHECKING:
    from transit.crypto.keyentry import KeyEntry

EXPORT_TYPES = ("encryption-key", "signing-key", "hmac-key", "public-key", "certificate-chain")


def _pem_private(key: Any, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             serialization.NoEncryption()).decode()


def _pem_chain(chain: list[bytes]) -> str:
    out = []
    for der in chain:
        body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
        out.append(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    return "".join(out)


class KeyInfoMixin:
    name: str
    type: KeyType
    derived: bool
    kdf: int
    convergent_encryption: bool
    convergent_version: int
    exportable: bool
    allow_plaintext_backup: bool
    deletion_allowed: bool
    min_decryption_version: int
    min_encryption_version: int
    min_available_version: int
    latest_version: int
    auto_rotate_period: int
    key_size: int
    imported: bool
    allow_imported_key_rotation: bool
    backup_info: dict | None
    restore_info: dict | None
    keys: dict[int, KeyEntry]

    def key_info(self, context: bytes | None = None) -> dict[str, Any]:
        """The `data` of `GET keys/:name` (§4.2). `context` is the decoded context."""
        t = self.type
        d: dict[str, Any] = {
            "name": self.name,
            "type": str(t),
            "derived": self.derived,
            "deletion_allowed": self.deletion_allowed,
            "min_available_version": self.min_available_version,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "latest_version": self.latest_version,
            "exportable": self.exportable,
            "allow_plaintext_backup": self.allow_plaintext_backup,
            "supports_encryption": t.supports_encryption,
            "supports_decryption": t.supports_decryption,
            "supports_signing": t.supports_signing,
            "supports_derivation": t.supports_derivation,
            "auto_rotate_period": self.auto_rotate_period,
            "imported_key": self.imported,
        }
        if self.key_size:
            d["key_size"] = self.key_size
        if self.imported:
            d["imported_key_allow_rotation"] = self.allow_imported_key_rotation
        if self.backup_info is not None:
            d["backup_info"] = dict(self.backup_info)
        if self.restore_info is not None:
            d["restore_info"] = dict(self.restore_info)
        if self.derived:
            if self.kdf == 0:
                d["kdf"] = "hmac-sha256-counter"
                d["kdf_mode"] = "hmac-sha256-counter"
            else:
                d["kdf"] = "hkdf_sha256"
            d["convergent_encryption"] = self.convergent_encryption
            if self.convergent_encryption:
                d["convergent_encryption_version"] = self.convergent_version
        if t.is_aead:
            d["keys"] = {str(v): e.creation_time for v, e in sorted(self.keys.items())}
        elif t.is_asymmetric:
            d["keys"] = {str(v): self._asym_info(v, e, context)
                         for v, e in sorted(self.keys.items())}
        return d

    def _asym_info(self, ver: int, e: KeyEntry, context: bytes | None) -> dict[str, Any]:
        t = self.type
        if t.is_ecdsa:
            name, pub = t.curve_name, e.public_pem(t)
        elif t.is_rsa:
            name, pub = str(t), e.public_pem(t)
        else:
            name = "ed25519"
            pub = e.public_key
            if self.derived:
                if not context:
                    pub = ""
                else:
                    try:
                        key = self._ed25519_derived(e, context)  # type: ignore[attr-defined]
                    except InternalError as err:
                        raise InternalError(
                            f"failed to derive key to return public component: {err}") from None
                    pub = b64encode(key.public_key().public_bytes_raw())
        chain = _pem_chain(e.certificate_chain) if e.certificate_chain else ""
        return {"certificate_chain": chain, "creation_time": format_time(e.creation_datetime()),
                "name": name, "public_key": pub}

    def public_key_pem(self, version: int = 0) -> str:
        """PKIX PEM (RSA/EC) or base64 (Ed25519) public key of a version (0 = latest)."""
        ver = version or self.latest_version
        e = self.keys.get(ver)
        if e is None or not self.type.is_asymmetric:
            raise UserError("no such key version")
        return e.public_pem(self.type)

    # --- export ---------------------------------------------------------------------------------
    def export(self, export_type: str, version: str | None) -> dict[str, Any]:
        """`GET export/:type/:name[/:version]` data: {"name", "type", "keys"} (§4.17)."""
        t = self.type
        if export_type not in EXPORT_TYPES:
            raise UserError(f"invalid export type: {export_type}")
        if not self.exportable and export_type not in ("public-key", "certificate-chain"):
            raise UserError("private key material is not exportable")
        if export_type == "encryption-key" and not t.supports_encryption:
            raise UserError("encryption not supported for the key")
        if export_type == "signing-key" and not t.supports_signing:
            raise UserError("signing not supported for the key")
        if export_type == "certificate-chain" and not t.supports_signing:
            raise UserError("certificate chain not supported for keys that do not support signing")
        keys = {str(v): self._export_one(self.keys[v], export_type)
                for v in self.export_versions(version)}
        return {"name": self.name, "type": str(t), "keys": keys}

    def export_versions(self, version: str | None) -> list[int]:
        """The versions an export (plain or BYOK) covers: every one when `version` is empty,
        else the one it names ("latest", "3", "v3"), with Vault's errors."""
        if not version:
            return sorted(self.keys)
        if version == "latest":
            v = self.latest_version
        else:
            try:
                v = atoi(version.removeprefix("v"))
            except ValueError:
                raise UserError("invalid key version") from None
        if v < self.min_decryption_version:
            raise UserError("version for export is below minimum decryption version")
        if v not in self.keys:
            raise UserError("version does not exist or cannot be found")
        return [v]

    def _export_one(self, e: KeyEntry, export_type: str) -> str:
        t = self.type
        if export_type == "hmac-key":
            src = e.key if t is KeyType.HMAC else e.hmac_key
            return b64encode(src or b"")
        if export_type in ("encryption-key", "signing-key"):
            if t.is_aead:
                return b64encode(e.key or b"")
            if t.is_rsa:
                if e.rsa is None:
                    return ""
                return _pem_private(e.rsa_private(), serialization.PrivateFormat.TraditionalOpenSSL)
            if t.is_ecdsa:
                if e.ec_d is None:
                    return ""
                return _pem_private(e.ec_private(t),
                                    serialization.PrivateFormat.TraditionalOpenSSL).strip()
            if t is KeyType.ED25519:
                return b64encode(e.key) if e.key else ""
        if export_type == "public-key":
            if t.is_rsa:
                return e.public_pem(t)
            if t.is_ecdsa:
                return e.public_pem(t).strip()
            if t is KeyType.ED25519:
                return e.public_key.strip()
        if export_type == "certificate-chain":
            if not e.certificate_chain:
                raise InternalError("selected key version does not have a certificate chain "
                                    "imported")
            return _pem_chain(e.certificate_chain)
        raise InternalError(f"unknown key type {t} for export type {export_type}")
