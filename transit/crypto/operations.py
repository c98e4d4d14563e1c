"""Encrypt, decrypt, HMAC, sign and verify on a Policy (mixed into `Policy`).

Encrypt/decrypt of a cached policy is the hot path: the AEAD object of each version (and of each
derived (version, context) pair, in a bounded cache) lives on the immutable KeyEntry, so a hot
non-derived encrypt is one `os.urandom`, one AEAD call and one base64 encode.
"""

from __future__ import annotations

import binascii
import hmac as _hmac
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ed25519

from transit.crypto import aead as _aead
from transit.crypto import rsa_cipher, signing
from transit.crypto.ciphertext import header, open_many, split
from transit.crypto.encoding import (
    b64decode,
    b64decode_rawurl,
    b64encode,
    b64encode_rawurl,
)
from transit.crypto.hashing import (
    HMAC_ALGORITHMS,
    SIGN_HASH_ALGORITHMS,
    digest,
    hmac_digest,
)
from transit.crypto.kdf import KDF_HKDF_SHA256, derive
from transit.crypto.keytypes import KeyType
from transit.crypto.signing import SignResult
from transit.errors import CryptoError, InternalError, OptionError, TransitError, UserError

if TYPE_CHECKING:
    from transit.crypto.keyentry import KeyEntry

ERR_TOO_OLD = "ciphertext or signature version is disallowed by policy (too old)"
NONCE_NOT_ALLOWED = "provided nonce not allowed for this key"
_urandom = os.urandom
_b2a = binascii.b2a_base64


class Operations:
    """Cryptographic operations; relies on the Policy attributes declared below."""

    type: KeyType
    derived: bool
    kdf: int
    convergent_encryption: bool
    convergent_version: int
    latest_version: int
    min_decryption_version: int
    min_encryption_version: int
    keys: dict[int, KeyEntry]

    # --- helpers ------------------------------------------------------------------------------
    def _entry(self, ver: int) -> KeyEntry:
        e = self.keys.get(ver)
        if e is None:
            raise UserError("no such key version")
        return e

    def _convergent_ver(self, ver: int) -> int:
        if not self.convergent_encryption:
            return 0
        cv = self.convergent_version or 1
        e = self.keys.get(ver)
        if e is not None and e.convergent_version:
            cv = e.convergent_version
        return cv

    # --- per-item request checks (Vault's messages; the engine calls them in Vault's order) ---
    def nonce_allowed(self) -> bool:
        """Vault's nonceAllowed: a user nonce is only used by convergent v1 keys."""
        return self.type.is_aead and self.convergent_encryption and self.convergent_version == 1

    def check_nonce(self) -> None:
        """The caller sent a nonce: UserError unless the key takes one."""
        if not self.nonce_allowed():
            raise UserError(NONCE_NOT_ALLOWED)

    def check_padding(self, scheme: str | None, index: int = 0,
                      field: str = "padding_scheme") -> str | None:
        """Vault's parsePaddingSchemeArg: the scheme (None when not given), or OptionError."""
        if not scheme:
            return None
        if scheme not in rsa_cipher.PADDING_SCHEMES:
            raise OptionError(f"'[{index}].{field}' invalid: unknown padding scheme: {scheme}")
        if not self.type.is_rsa:
            raise OptionError(f"'[{index}].{field}' invalid: unsupported key type {self.type} "
                              "for padding scheme")
        return scheme

    def check_associated_data(self, index: int = 0) -> None:
        """Associated data was given: OptionError unless the key is an AEAD cipher."""
        if not self.type.is_aead:
            raise OptionError(
                f"'[{index}].associated_data' provided for non-AEAD cipher suite {self.type}")

    def _derived_aead(self, entry: KeyEntry, context: bytes | None, with_mac: bool):
        """(AEAD, mac key or None) for a derived key; cached per (kdf, context, with_mac)."""
        kdf, t = self.kdf, self.type
        if not context:
            derive(kdf, b"", context, 0)  # raises the missing-context error

        def build():
            keylen = t.key_len
            want = keylen + (32 if with_mac else 0)
            okm = derive(kdf, entry.key or b"", context, want)
            if len(okm) < want:
                raise InternalError("could not derive key, length too small")
            return _aead.new_aead(t, okm[:keylen]), (okm[keylen:want] if with_mac else None)

        return entry.derived(("aead", kdf, context, with_mac), build)

    def _base_aead(self, entry: KeyEntry):
        a = entry._cache.get("aead")
        if a is None:
            a = entry.cached("aead", lambda: _aead.new_aead(self.type, entry.key or b""))
        return a

    def _precheck(self, associated_data: bytes | None, padding_scheme: str | None,
                  index: int) -> None:
        self.check_padding(padding_scheme, index)
        if associated_data:
            self.check_associated_data(index)

    # --- encrypt / decrypt --------------------------------------------------------------------
    def encrypt(self, plaintext: bytes, *, version: int = 0, context: bytes | None = None,
                nonce: bytes | None = None, associated_data: bytes | None = None,
                padding_scheme: str | None = None, index: int = 0) -> tuple[str, int]:
        """Encrypt; returns (ciphertext "vault:vN:…", version). `index` only formats messages."""
        t = self.type
        if nonce:  # (an empty nonce counts as absent)
            self.check_nonce()
        if associated_data or padding_scheme:
            self._precheck(associated_data, padding_scheme, index)
        if not t.supports_encryption:
            raise UserError(f"message encryption not supported for key type {t}")
        ver = version
        if ver == 0:
            ver = self.latest_version
        elif ver < 0:
            raise UserError("requested version for encryption is negative")
        elif ver > self.latest_version:
            raise UserError("requested version for encryption is higher than the latest key version")
        elif ver < self.min_encryption_version:
            raise UserError(
                "requested version for encryption is less than the minimum encryption key version")
        entry = self.keys.get(ver)
        if entry is None:
            raise UserError("no such key version")

        if not self.derived:
            if t.is_rsa:
                ct = rsa_cipher.encrypt(entry.rsa_public(), plaintext, padding_scheme)
                return header(ver) + b64encode(ct), ver
            aead = entry._cache.get("aead") or self._base_aead(entry)
            n = _urandom(12)
            ct = n + aead.encrypt(n, plaintext, associated_data or None)
            return header(ver) + _b2a(ct, newline=False).decode(), ver

        cv = self._convergent_ver(ver)
        aead, mac = self._derived_aead(entry, context, cv >= 3)
        include_nonce = True
        if cv == 0:
            n = _urandom(12)
        elif cv == 1:
            if nonce is None or len(nonce) != 12:
                raise UserError("base64-decoded nonce must be 12 bytes long when using "
                                "convergent encryption with this key")
            n, include_nonce = nonce, False
        elif cv == 2:
            n = _aead.convergent_nonce(context or b"", plaintext)
        elif cv == 3:
            n = _aead.convergent_nonce(mac, plaintext)
        else:
            raise InternalError(f"unhandled convergent version {cv}")
        ct = _aead.seal(aead, n, plaintext, associated_data, include_nonce)
        return header(ver) + b64encode(ct), ver

    # --- batches of plain items (the batch fast path) ----------------------------------------
    def plain_batches(self) -> bool:
        """Whether `encrypt_many` / `decrypt_many` apply: a non-derived AEAD key (so no
        context, no convergence, no nonce of the caller's)."""
        return self.type.is_aead and not self.derived

    def encrypt_many(self, plaintexts: list[bytes]) -> tuple[list[str], int]:
        """What `encrypt(pt)` returns for each plaintext (latest version, no associated
        data), with one `os.urandom` call for every nonce and no per-item checks: the
        ciphertexts and their version. Only for `plain_batches` keys."""
        ver = self.latest_version
        entry = self._entry(ver)
        aead = entry._cache.get("aead") or self._base_aead(entry)
        seal, b2a, prefix = aead.encrypt, _b2a, header(ver)
        nonces = _urandom(12 * len(plaintexts))
        out: list[str] = []
        append = out.append
        at = 0
        for pt in plaintexts:
            n = nonces[at:at + 12]
            at += 12
            append(prefix + b2a(n + seal(n, pt, None), newline=False).decode())
        return out, ver

    def decrypt_many(self, ciphertexts: list[str]) -> list[bytes | TransitError]:
        """What `decrypt(ct)` returns (or raises, as the value) for each ciphertext, without
        associated data. A well-formed ciphertext of a usable version takes a short path;
        anything else goes through `decrypt` itself, so errors are word for word the same.
        Only for `plain_batches` keys."""
        usable: dict[int, _aead.AEADCipher] = {}
        for ver in range(max(1, self.min_decryption_version), self.latest_version + 1):
            entry = self.keys.get(ver)
            if entry is not None:
                usable[ver] = entry._cache.get("aead") or self._base_aead(entry)

        def slow(ct: str) -> bytes | TransitError:
            try:
                return self.decrypt(ct)
            except TransitError as exc:
                return exc

        return open_many(ciphertexts, usable, slow)

    def decrypt(self, ciphertext: str, *, context: bytes | None = None,
                nonce: bytes | None = None, associated_data: bytes | None = None,
                padding_scheme: str | None = None, index: int = 0) -> bytes:
        """Decrypt a "vault:vN:…" string; parse errors in Vault's order (spec §3.1)."""
        t = self.type
        if associated_data or padding_scheme:
            self._precheck(associated_data, padding_scheme, index)
        if not t.supports_decryption:
            raise UserError(f"message decryption not supported for key type {t}")
        ver, b64 = split(ciphertext, "ciphertext")
        if ver == 0:
            ver = 1
        if ver > self.latest_version:
            raise CryptoError("invalid ciphertext: version is too new")
        if ver < self.min_decryption_version:
            raise CryptoError(ERR_TOO_OLD)
        cv = self._convergent_ver(ver) if self.convergent_encryption else 0
        if cv == 1 and not nonce:
            raise CryptoError("invalid convergent nonce supplied")
        try:
            payload = b64decode(b64)
        except TransitError:
            raise CryptoError("invalid ciphertext: could not decode base64") from None
        entry = self._entry(ver)
        if t.is_rsa:
            if entry.rsa is None:
                raise UserError("requested version for decryption does not contain a private part")
            return rsa_cipher.decrypt(entry.rsa_private(), payload, padding_scheme)
        if self.derived:
            aead, _ = self._derived_aead(entry, context, False)
        else:
            aead = entry._cache.get("aead") or self._base_aead(entry)
        return _aead.open_payload(aead, payload, associated_data, nonce if cv == 1 else None)

    # --- HMAC ---------------------------------------------------------------------------------
    # The one HMAC implementation (Vault's path_hmac.go order); the engine calls it. Each
    # request's checks run once, in `hmac_signer` / `hmac_verifier`, whose function is then
    # applied to every item of a batch.
    def hmac_key(self, ver: int) -> bytes:
        """keysutil Policy.HMACKey: the version's `hmac_key` (the key itself for type hmac)."""
        if ver < 0:
            raise UserError("key version does not exist (cannot be negative)")
        if ver > self.latest_version:
            raise UserError(
                f"key version does not exist; latest key version is {self.latest_version}")
        e = self._entry(ver)
        key = e.key if self.type is KeyType.HMAC else e.hmac_key
        if not key:
            raise UserError("no HMAC key exists for that key version")
        return bytes(key)

    def hmac_signer(self, version: int = 0,
                    algorithm: str = "sha2-256") -> Callable[[bytes], str]:
        """Check the version, key and algorithm; returns data -> `vault:vN:` HMAC."""
        ver = version
        if ver == 0:
            ver = self.latest_version
        elif ver != self.latest_version and 0 < self.min_encryption_version > ver:
            raise UserError("cannot generate HMAC: version is too old (disallowed by policy)")
        key = self.hmac_key(ver)
        _check_hmac_algorithm(algorithm)
        prefix = header(ver)

        def sign(data: bytes) -> str:
            return prefix + b64encode(hmac_digest(key, data, algorithm))
        return sign

    def hmac(self, data: bytes, *, version: int = 0, algorithm: str = "sha2-256") -> str:
        return self.hmac_signer(version, algorithm)(data)

    def hmac_verifier(self, algorithm: str = "sha2-256") -> Callable[[bytes, str], bool]:
        """Check the algorithm; returns (data, `vault:vN:` HMAC) -> whether it matches, raising
        CryptoError/UserError for a malformed HMAC or an unusable version."""
        _check_hmac_algorithm(algorithm)

        def verify(data: bytes, mac: str) -> bool:
            ver, b64 = split(mac, "HMAC", no_prefix="invalid HMAC to verify: no prefix")
            try:
                expected = b64decode(b64)
            except TransitError as e:
                raise CryptoError(f"unable to decode verification HMAC as base64: {e}") from None
            if ver > self.latest_version:
                raise CryptoError("invalid HMAC: version is too new")
            if 0 < self.min_decryption_version > ver:
                raise CryptoError("cannot verify HMAC: version is too old (disallowed by policy)")
            key = self.hmac_key(ver)
            return _hmac.compare_digest(hmac_digest(key, data, algorithm), expected)
        return verify

    def verify_hmac(self, data: bytes, mac: str, *, algorithm: str = "sha2-256") -> bool:
        return self.hmac_verifier(algorithm)(data, mac)

    # --- sign / verify ------------------------------------------------------------------------
    def _sign_checks(self, hash_algorithm: str, prehashed: bool, signature_algorithm: str,
                     marshaling_algorithm: str, salt_length: str | int | None,
                     verb: str) -> int:
        if hash_algorithm not in SIGN_HASH_ALGORITHMS:
            raise UserError(f'invalid hash algorithm "{hash_algorithm}"')
        if marshaling_algorithm not in signing.MARSHALING:
            raise UserError(f'invalid marshaling type "{marshaling_algorithm}"')
        salt = signing.parse_salt_length(salt_length)
        if not self.type.supports_signing:
            raise UserError(f"key type {self.type} does not support {verb}")
        if hash_algorithm == "none" and (not prehashed or signature_algorithm != "pkcs1v15"):
            raise UserError("hash_algorithm=none requires both prehashed=true and "
                            "signature_algorithm=pkcs1v15")
        return salt

    def _signing_input(self, data: bytes, hash_algorithm: str, prehashed: bool) -> bytes:
        if self.type is KeyType.ED25519 or prehashed or hash_algorithm == "none":
            return data
        return digest(data, hash_algorithm)

    def _ed25519_derived(self, entry: KeyEntry, context: bytes | None):
        try:
            return entry.derived(("ed25519", self.kdf, context),
                                 lambda: _derive_ed25519(self.kdf, entry.key or b"", context))
        except UserError as e:
            raise InternalError(f"error deriving key: {e}") from None

    def sign(self, data: bytes, *, version: int = 0, context: bytes | None = None,
             hash_algorithm: str = "sha2-256", prehashed: bool = False,
             signature_algorithm: str = "pss", marshaling_algorithm: str = "asn1",
             salt_length: str | int | None = "auto") -> SignResult:
        hash_algorithm = hash_algorithm or "sha2-256"
        marshaling_algorithm = marshaling_algorithm or "asn1"
        salt = self._sign_checks(hash_algorithm, prehashed, signature_algorithm,
                                 marshaling_algorithm, salt_length, "signing")
        ver = version
        if ver == 0:
            ver = self.latest_version
        elif ver < 0:
            raise UserError("requested version for signing is negative")
        elif ver > self.latest_version:
            raise UserError("requested version for signing is higher than the latest key version")
        elif 0 < self.min_encryption_version > ver:
            raise UserError(
                "requested version for signing is less than the minimum encryption key version")
        entry = self._entry(ver)
        t = self.type
        if entry.is_private_key_missing(t):
            raise UserError("requested version for signing does not contain a private part")
        msg = self._signing_input(data, hash_algorithm, prehashed)
        pub: str | None = None
        if t.is_ecdsa:
            sig = signing.ecdsa_sign(entry.ec_private(t), msg, marshaling_algorithm)
        elif t is KeyType.ED25519:
            signing.ed25519_check_hash(hash_algorithm)
            if self.derived:
                key = self._ed25519_derived(entry, context)
                pub = b64encode(key.public_key().public_bytes_raw())
            else:
                key = entry.ed_private()
            sig = key.sign(msg)
        else:
            sig = signing.rsa_sign(entry.rsa_private(), msg, hash_algorithm,
                                   signature_algorithm or "pss", salt)
        enc = b64encode(sig) if marshaling_algorithm == "asn1" else b64encode_rawurl(sig)
        return SignResult(header(ver) + enc, ver, pub)

    def verify(self, data: bytes, signature: str, *, context: bytes | None = None,
               hash_algorithm: str = "sha2-256", prehashed: bool = False,
               signature_algorithm: str = "pss", marshaling_algorithm: str = "asn1",
               salt_length: str | int | None = "auto") -> bool:
        hash_algorithm = hash_algorithm or "sha2-256"
        marshaling_algorithm = marshaling_algorithm or "asn1"
        salt = self._sign_checks(hash_algorithm, prehashed, signature_algorithm,
                                 marshaling_algorithm, salt_length, "verification")
        ver, b64 = split(signature, "signature")
        if ver > self.latest_version:
            raise CryptoError("invalid signature: version is too new")
        if ver < self.min_decryption_version:
            raise CryptoError(ERR_TOO_OLD)
        try:
            sig = b64decode(b64) if marshaling_algorithm == "asn1" else b64decode_rawurl(b64)
        except TransitError:
            raise CryptoError("invalid base64 signature value") from None
        entry = self._entry(ver)
        t = self.type
        msg = self._signing_input(data, hash_algorithm, prehashed)
        if t.is_ecdsa:
            return signing.ecdsa_verify(entry.ec_public(t), msg, sig, marshaling_algorithm)
        if t is KeyType.ED25519:
            signing.ed25519_check_hash(hash_algorithm)
            if self.derived:
                pubkey = self._ed25519_derived(entry, context).public_key()
            else:
                pubkey = entry.ed_public()
            return signing.ed25519_verify(pubkey, msg, sig)
        return signing.rsa_verify(entry.rsa_public(), msg, sig, hash_algorithm,
                                  signature_algorithm or "pss", salt)


def _check_hmac_algorithm(algorithm: str) -> None:
    if algorithm not in HMAC_ALGORITHMS:
        # Vault formats the zero HashType with %q, which Go renders as '\x00'.
        raise UserError("unsupported algorithm '\\x00'")


def _derive_ed25519(kdf: int, key: bytes, context: bytes | None):
    """Derived Ed25519: the first 32 HKDF(IKM = 64-byte stored key, info = context) bytes are
    the seed (Go feeds the HKDF stream to ed25519.GenerateKey)."""
    seed = derive(kdf if kdf else KDF_HKDF_SHA256, key, context, 32)[:32]
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
