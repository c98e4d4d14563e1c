"""RSA encryption (OAEP SHA-256 / PKCS#1 v1.5) and raw PKCS#1 v1.5 signatures."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from transit.errors import InternalError, UserError

PADDING_SCHEMES = ("oaep", "pkcs1v15")


def _padding(scheme: str | None) -> padding.AsymmetricPadding:
    if scheme == "pkcs1v15":
        return padding.PKCS1v15()
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def check_padding_scheme(scheme: str, is_rsa: bool, key_type: str, index: int = 0) -> None:
    """Vault's `'[i].padding_scheme' invalid: …` checks."""
    if scheme not in PADDING_SCHEMES:
        raise UserError(f"'[{index}].padding_scheme' invalid: unknown padding scheme: {scheme}")
    if not is_rsa:
        raise UserError(f"'[{index}].padding_scheme' invalid: unsupported key type {key_type} "
                        "for padding scheme")


def encrypt(pub: rsa.RSAPublicKey, plaintext: bytes, scheme: str | None) -> bytes:
    try:
        return pub.encrypt(plaintext, _padding(scheme))
    except ValueError:
        raise InternalError("failed to RSA encrypt the plaintext: crypto/rsa: message too long "
                            "for RSA key size") from None


def decrypt(priv: rsa.RSAPrivateKey, ciphertext: bytes, scheme: str | None) -> bytes:
    try:
        return priv.decrypt(ciphertext, _padding(scheme))
    except ValueError:
        raise InternalError("failed to RSA decrypt the ciphertext: crypto/rsa: decryption "
                            "error") from None


def sign_pkcs1v15_raw(priv: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """PKCS#1 v1.5 signature over `data` without a DigestInfo (Go's crypto.Hash(0))."""
    nums = priv.private_numbers()
    n = nums.public_numbers.n
    k = (n.bit_length() + 7) // 8
    if len(data) + 11 > k:
        raise InternalError("crypto/rsa: message too long for RSA key size")
    em = b"\x00\x01" + b"\xff" * (k - len(data) - 3) + b"\x00" + data
    m = int.from_bytes(em, "big")
    # CRT private operation
    s1 = pow(m % nums.p, nums.dmp1, nums.p)
    s2 = pow(m % nums.q, nums.dmq1, nums.q)
    h = (nums.iqmp * (s1 - s2)) % nums.p
    s = s2 + h * nums.q
    if pow(s, nums.public_numbers.e, n) != m:  # fault check, as Go does
        raise InternalError("crypto/rsa: internal error")
    return s.to_bytes(k, "big")


def verify_pkcs1v15_raw(pub: rsa.RSAPublicKey, data: bytes, sig: bytes) -> bool:
    try:
        recovered = pub.recover_data_from_signature(sig, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    return recovered == data
