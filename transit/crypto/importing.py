"""BYOK import (spec §4.20): KeyEntries from imported material (raw keys, PKCS#8 DER private
keys and PKIX PEM public keys), and `ImportMixin`, which gives `Policy` its `import_key` and
`import_version`. The entry builders raise `ImportError_` with Vault's plain (500) messages,
without the "error importing key: " prefix that `Policy.import_*` adds."""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import TYPE_CHECKING, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from transit.crypto.encoding import b64encode, now_utc
from transit.crypto.kdf import KDF_HKDF_SHA256
from transit.crypto.keyentry import CURVES, KeyEntry, set_ec_private, set_ec_public, set_ed_private
from transit.crypto.keytypes import (
    HMAC_MAX_KEY_SIZE,
    HMAC_MIN_KEY_SIZE,
    KeyType,
    check_auto_rotate,
)
from transit.errors import InternalError, UserError
from transit.gocompat import format_time


class ImportError_(ValueError):
    """Import failed; the message is Vault's."""


_GO_TYPE = {rsa.RSAPrivateKey: "*rsa.PrivateKey", rsa.RSAPublicKey: "*rsa.PublicKey",
            ec.EllipticCurvePrivateKey: "*ecdsa.PrivateKey",
            ec.EllipticCurvePublicKey: "*ecdsa.PublicKey",
            ed25519.Ed25519PrivateKey: "ed25519.PrivateKey",
            ed25519.Ed25519PublicKey: "ed25519.PublicKey"}


def _go_type(k: object) -> str:
    for cls, name in _GO_TYPE.items():
        if isinstance(k, cls):
            return name
    return type(k).__name__


def _new_entry(key_type: KeyType, now: datetime) -> KeyEntry:
    e = KeyEntry(time=format_time(now), creation_time=int(now.timestamp()))
    if key_type is not KeyType.HMAC:
        e.hmac_key = os.urandom(32)
    return e


def _wrong_type(key_type: KeyType, k: object) -> ImportError_:
    return ImportError_(f"invalid key type: expected {key_type}, got {_go_type(k)}")


def _apply(key_type: KeyType, e: KeyEntry, k: object) -> None:
    """Copy a parsed private or public key object into `e`, with Vault's checks."""
    if isinstance(k, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not key_type.is_ecdsa:
            raise _wrong_type(key_type, k)
        want = CURVES[key_type]()
        if k.curve.name != want.name:
            got = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
            raise ImportError_(f"invalid curve: expected {key_type.curve_name}, got "
                               f"{got.get(k.curve.name, k.curve.name)}")
        if isinstance(k, ec.EllipticCurvePrivateKey):
            set_ec_private(e, k)
        else:
            set_ec_public(e, k)
    elif isinstance(k, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        if key_type is not KeyType.ED25519:
            raise _wrong_type(key_type, k)
        if isinstance(k, ed25519.Ed25519PrivateKey):
            set_ed_private(e, k)
        else:
            e.public_key = b64encode(k.public_bytes_raw())
    elif isinstance(k, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if not key_type.is_rsa:
            raise _wrong_type(key_type, k)
        want_bytes = key_type.rsa_bits // 8
        got_bytes = (k.key_size + 7) // 8
        if got_bytes != want_bytes:
            raise ImportError_(f"invalid key size: expected {want_bytes} bytes, got {got_bytes} "
                               "bytes")
        if isinstance(k, rsa.RSAPrivateKey):
            e.rsa = k.private_numbers()
        else:
            e.rsa_pub = k.public_numbers()
    else:
        raise _wrong_type(key_type, k)


def entry_from_key(key_type: KeyType, key: bytes, now: datetime) -> KeyEntry:
    """Raw bytes (symmetric, hmac) or PKCS#8 DER (asymmetric) -> a new KeyEntry."""
    e = _new_entry(key_type, now)
    n = len(key)
    if key_type.is_aead or key_type is KeyType.HMAC:
        if (key_type.is_aead and n != key_type.key_len) or (
                key_type is KeyType.HMAC and not HMAC_MIN_KEY_SIZE <= n <= HMAC_MAX_KEY_SIZE):
            raise ImportError_(f"invalid key size {n} bytes for key type {key_type}")
        e.key = bytes(key)
        if key_type is KeyType.HMAC:
            e.hmac_key = e.key
        return e
    try:
        k = serialization.load_der_private_key(key, password=None)
    except (ValueError, TypeError) as err:
        raise ImportError_(f"error parsing asymmetric key: {err}") from None
    _apply(key_type, e, k)
    return e


_PEM_BLOCK = re.compile(r"-----BEGIN [^\n]*-----\r?\n.*?-----END [^\n]*-----", re.S)


def entry_from_public_pem(key_type: KeyType, pem: str, now: datetime) -> KeyEntry:
    if not key_type.supports_import_public_key:
        raise ImportError_(f"public key import is not supported for key type {key_type}")
    e = _new_entry(key_type, now)
    if not _PEM_BLOCK.search(pem):  # Go's pem.Decode found no block
        raise ImportError_("error parsing public key: not in PEM format")
    try:
        k = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as err:
        raise ImportError_(f"error parsing public key: {err}") from None
    _apply(key_type, e, k)
    return e


def fill_private(key_type: KeyType, old: KeyEntry, key: bytes) -> KeyEntry:
    """A copy of public-only `old` with the private half from PKCS#8 `key` (same key pair)."""
    try:
        k = serialization.load_der_private_key(key, password=None)
    except (ValueError, TypeError) as err:
        raise ImportError_(f"error parsing asymmetric key: {err}") from None
    new = KeyEntry.from_json(old.to_json())
    _apply(key_type, new, k)
    if key_type.is_rsa:
        ok = old.rsa_pub is not None and new.rsa is not None and (
            new.rsa.public_numbers == old.rsa_pub)
        if ok:
            new.rsa_pub = None
    elif key_type.is_ecdsa:
        ok = (new.ec_x, new.ec_y) == (old.ec_x, old.ec_y)
    else:
        ok = new.public_key == old.public_key
    if not ok:
        raise ImportError_("cannot import key, key pair does not match")
    return new


# --- the Policy side: `Policy.import_key` / `Policy.import_version` ----------------------------


class ImportMixin:
    """BYOK import (mixed into `Policy`); errors get Vault's "error importing key: " prefix.
    Relies on the Policy attributes and methods declared below (it does not import `Policy`,
    which mixes it in)."""

    type: KeyType
    derived: bool
    kdf: int
    exportable: bool
    allow_plaintext_backup: bool
    auto_rotate_period: int
    key_size: int
    imported: bool
    allow_imported_key_rotation: bool
    convergent_encryption: bool
    min_available_version: int
    keys: dict[int, KeyEntry]
    archive: list[KeyEntry]

    if TYPE_CHECKING:
        def __init__(self, name: str, key_type: KeyType) -> None: ...
        def _add_version(self, e: KeyEntry) -> None: ...
        def _entry(self, ver: int) -> KeyEntry: ...

    @classmethod
    def import_key(cls, name: str, key_type: KeyType | str, *, key: bytes | None = None,
                   public_key_pem: str | None = None, derived: bool = False,
                   exportable: bool = False, allow_plaintext_backup: bool = False,
                   allow_rotation: bool = False, auto_rotate_period: int = 0,
                   now: datetime | None = None) -> Self:
        """A new imported key from raw/PKCS#8 `key` or a public `public_key_pem` (§4.20)."""
        t = key_type if isinstance(key_type, KeyType) else KeyType.parse(key_type)
        check_auto_rotate(auto_rotate_period)
        if auto_rotate_period and not allow_rotation:
            raise InternalError("allow_rotation must be set to true if auto-rotation is enabled")
        p = cls(name, t)
        p.derived = derived
        if derived:
            p.kdf = KDF_HKDF_SHA256
        p.exportable = exportable
        p.allow_plaintext_backup = allow_plaintext_backup
        p.auto_rotate_period = auto_rotate_period
        p.allow_imported_key_rotation = allow_rotation
        p.imported = True
        p._add_version(cls._imported_entry(t, key, public_key_pem, now))
        if t is KeyType.HMAC:
            p.key_size = len(p.keys[1].key or b"")
        return p

    @staticmethod
    def _imported_entry(t: KeyType, key: bytes | None, pem: str | None,
                        now: datetime | None) -> KeyEntry:
        try:
            if key is not None:
                return entry_from_key(t, key, now or now_utc())
            if pem:
                return entry_from_public_pem(t, pem, now or now_utc())
        except ImportError_ as e:
            raise InternalError(f"error importing key: {e}") from None
        raise UserError("one of 'ciphertext' or 'public_key' must be provided")

    def import_version(self, *, key: bytes | None = None, public_key_pem: str | None = None,
                       version: int = 0, now: datetime | None = None) -> None:
        """A new imported version, or (`version` N) the private half of a public-only N."""
        if not self.imported:
            raise UserError("the import_version endpoint can only be used with an imported key")
        if self.convergent_encryption:
            raise UserError("import_version cannot be used on keys with convergent encryption "
                            "enabled")
        if not version:
            self._add_version(self._imported_entry(self.type, key, public_key_pem, now))
            return
        old = self._entry(version)
        if not self.type.supports_import_public_key:
            raise InternalError("provided type does not support importing key versions")
        missing = old.is_private_key_missing(self.type)
        if missing and key is None:
            raise InternalError("cannot add a public key to a key version that already has a "
                                "public key set")
        if not missing:
            raise InternalError("private key imported, key version cannot be updated")
        try:
            new = fill_private(self.type, old, key or b"")
        except ImportError_ as e:
            raise InternalError(str(e)) from None
        self.keys[version] = new
        idx = version - self.min_available_version
        if 0 <= idx < len(self.archive):
            self.archive[idx] = new
