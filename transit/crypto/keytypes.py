"""Key types, with Vault's names, backup enum ints and capability flags (spec §2)."""

from __future__ import annotations

from enum import StrEnum

from transit.errors import UserError


class KeyType(StrEnum):
    AES128_GCM96 = "aes128-gcm96"
    AES256_GCM96 = "aes256-gcm96"
    CHACHA20_POLY1305 = "chacha20-poly1305"
    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    ECDSA_P521 = "ecdsa-p521"
    RSA2048 = "rsa-2048"
    RSA3072 = "rsa-3072"
    RSA4096 = "rsa-4096"
    HMAC = "hmac"

    @classmethod
    def parse(cls, s: str) -> KeyType:
        try:
            return cls(s)
        except ValueError:
            raise UserError(f"unknown key type {s}") from None

    @classmethod
    def from_vault_int(cls, n: int) -> KeyType:
        try:
            return _FROM_INT[n]
        except (KeyError, TypeError):
            raise ValueError(f"unsupported key type {n}") from None

    @property
    def vault_int(self) -> int:
        return _TO_INT[self]

    @property
    def is_aead(self) -> bool:
        return self in _AEAD

    @property
    def is_rsa(self) -> bool:
        return self in _RSA

    @property
    def is_ecdsa(self) -> bool:
        return self in _ECDSA

    @property
    def is_asymmetric(self) -> bool:
        return self in _RSA or self in _ECDSA or self is KeyType.ED25519

    @property
    def supports_encryption(self) -> bool:
        return self in _AEAD or self in _RSA

    @property
    def supports_decryption(self) -> bool:
        return self in _AEAD or self in _RSA

    @property
    def supports_signing(self) -> bool:
        return self.is_asymmetric

    @property
    def supports_derivation(self) -> bool:
        return self in _AEAD or self is KeyType.ED25519

    @property
    def supports_import_public_key(self) -> bool:
        return self.is_asymmetric

    @property
    def key_len(self) -> int:
        """Raw symmetric key length in bytes (0 for asymmetric and hmac)."""
        return _KEY_LEN.get(self, 0)

    @property
    def rsa_bits(self) -> int:
        return _RSA.get(self, 0)

    @property
    def curve_name(self) -> str:
        """Go's elliptic curve name (P-256, ...), "" if not ECDSA."""
        return _ECDSA.get(self, "")


_TO_INT: dict[KeyType, int] = {
    KeyType.AES256_GCM96: 0,
    KeyType.ECDSA_P256: 1,
    KeyType.ED25519: 2,
    KeyType.RSA2048: 3,
    KeyType.RSA4096: 4,
    KeyType.CHACHA20_POLY1305: 5,
    KeyType.ECDSA_P384: 6,
    KeyType.ECDSA_P521: 7,
    KeyType.AES128_GCM96: 8,
    KeyType.RSA3072: 9,
    KeyType.HMAC: 11,
}
_FROM_INT = {v: k for k, v in _TO_INT.items()}
_AEAD = frozenset({KeyType.AES128_GCM96, KeyType.AES256_GCM96, KeyType.CHACHA20_POLY1305})
_RSA = {KeyType.RSA2048: 2048, KeyType.RSA3072: 3072, KeyType.RSA4096: 4096}
_ECDSA = {KeyType.ECDSA_P256: "P-256", KeyType.ECDSA_P384: "P-384", KeyType.ECDSA_P521: "P-521"}
_KEY_LEN = {KeyType.AES128_GCM96: 16, KeyType.AES256_GCM96: 32, KeyType.CHACHA20_POLY1305: 32}

HMAC_MIN_KEY_SIZE = 32
HMAC_MAX_KEY_SIZE = 512


def check_auto_rotate(period: int) -> None:
    """A policy's `auto_rotate_period` (seconds): 0 (off) or at least an hour."""
    if period != 0 and period < 3600:
        raise UserError("auto rotate period must be 0 to disable or at least an hour")
