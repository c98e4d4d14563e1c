"""RSA encryption (OAEP SHA-256 / PKCS#1 v1.5) and raw PKCS#1 v1.5 signatures.

`cryptography` releases the GIL for its RSA operations, so callers run them on a thread pool
(`transit.engines.transit.batch`). The raw PKCS#1 v1.5 signature (no DigestInfo) has no
`cryptography` API and is Python big-integer arithmetic, which holds the GIL (~90 ms for
RSA-4096): called off the main thread, it runs in the process pool of `transit.pools`
instead, so that the event loop's thread keeps the GIL.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from transit import pools
from transit.errors import InternalError

PADDING_SCHEMES = ("oaep", "pkcs1v15")


def _padding(scheme: str | None) -> padding.AsymmetricPadding:
    if scheme == "pkcs1v15":
        return padding.PKCS1v15()
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


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
    args = (m, nums.p, nums.q, nums.dmp1, nums.dmq1, nums.iqmp, nums.public_numbers.e, n)
    s = pools.in_process_sync(_private_op, *args)
    if s < 0:
        raise InternalError("crypto/rsa: internal error")
    return s.to_bytes(k, "big")


def _private_op(m: int, p: int, q: int, dmp1: int, dmq1: int, iqmp: int, e: int, n: int) -> int:
    """m^d mod n by the CRT, with Go's fault check (-1 when it fails)."""
    s1 = pow(m % p, dmp1, p)
    s2 = pow(m % q, dmq1, q)
    h = (iqmp * (s1 - s2)) % p
    s = s2 + h * q
    return s if pow(s, e, n) == m else -1


def verify_pkcs1v15_raw(pub: rsa.RSAPublicKey, data: bytes, sig: bytes) -> bool:
    try:
        recovered = pub.recover_data_from_signature(sig, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    return recovered == data
