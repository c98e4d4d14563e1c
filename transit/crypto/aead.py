"""AEAD construction, convergent nonces and the symmetric payload layout (spec §3.1, §3.3)."""

from __future__ import annotations

import hashlib
import hmac as _hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from transit.crypto.keytypes import KeyType
from transit.errors import CryptoError, InternalError

NONCE_SIZE = 12
AEADCipher = AESGCM | ChaCha20Poly1305


def new_aead(key_type: KeyType, key: bytes) -> AEADCipher:
    """The AEAD object for a raw key; build once and cache (construction costs ~1 µs+)."""
    try:
        if key_type is KeyType.CHACHA20_POLY1305:
            return ChaCha20Poly1305(key)
        return AESGCM(key)
    except ValueError as e:
        raise InternalError(str(e)) from None


def convergent_nonce(mac_key: bytes, plaintext: bytes) -> bytes:
    """HMAC-SHA256(mac_key, plaintext)[:12]: v3 uses the derived mac key, v2 the raw context."""
    return _hmac.new(mac_key, plaintext, hashlib.sha256).digest()[:NONCE_SIZE]


def seal(aead: AEADCipher, nonce: bytes, plaintext: bytes, aad: bytes | None,
         include_nonce: bool = True) -> bytes:
    ct = aead.encrypt(nonce, plaintext, aad or None)
    return nonce + ct if include_nonce else ct


def open_payload(aead: AEADCipher, payload: bytes, aad: bytes | None,
                 nonce: bytes | None = None) -> bytes:
    """Decrypt `nonce ‖ ct ‖ tag` (or `ct ‖ tag` with an external v1 `nonce`)."""
    if len(payload) < NONCE_SIZE:
        raise CryptoError("invalid ciphertext length")
    if nonce is None:
        nonce, payload = payload[:NONCE_SIZE], payload[NONCE_SIZE:]
    elif len(nonce) != NONCE_SIZE:
        raise CryptoError("cipher: message authentication failed")
    try:
        return aead.decrypt(nonce, payload, aad or None)
    except InvalidTag:
        # Vault passes the AEAD's own error through: x/crypto's chacha20poly1305 words it
        # differently from crypto/cipher's GCM.
        if isinstance(aead, ChaCha20Poly1305):
            raise CryptoError("chacha20poly1305: message authentication failed") from None
        raise CryptoError("cipher: message authentication failed") from None
