"""Signatures for ECDSA, Ed25519 and RSA keys, in Vault's encodings (spec §3.5).

The callers pass the bytes Vault's `SignWithOptions` gets: for ECDSA and RSA the digest (or the
input itself when prehashed); for Ed25519 the raw input.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from transit.crypto import rsa_cipher
from transit.crypto.hashing import crypto_hash
from transit.errors import CryptoError, InternalError, UserError
from transit.gocompat import atoi

MARSHALING = ("asn1", "jws")
SALT_AUTO = 0  # Go rsa.PSSSaltLengthAuto
SALT_EQUALS_HASH = -1  # Go rsa.PSSSaltLengthEqualsHash
_HASH_SIZE = {"sha1": 20, "sha2-224": 28, "sha2-256": 32, "sha2-384": 48, "sha2-512": 64,
              "sha3-224": 28, "sha3-256": 32, "sha3-384": 48, "sha3-512": 64, "none": 0}


@dataclass
class SignResult:
    signature: str
    key_version: int
    public_key: str | None = None  # b64 derived Ed25519 public key


def parse_salt_length(raw: str | int | None) -> int:
    """Vault's getSaltLength: "auto" -> 0, "hash" -> -1, else an int >= -1."""
    if raw is None:
        return SALT_AUTO
    if isinstance(raw, bool):
        raw = str(raw).lower()
    if isinstance(raw, int):
        n = raw
    else:
        low = raw.lower()
        if low == "auto":
            return SALT_AUTO
        if low == "hash":
            return SALT_EQUALS_HASH
        try:
            n = atoi(low)
        except ValueError:
            raise UserError(f"salt length neither 'auto', 'hash', nor an int: {raw}") from None
    if n < SALT_EQUALS_HASH:
        raise UserError(f"salt length is invalid: {n}")
    return n


class _AnyDigest(hashes.HashAlgorithm):
    """Lets OpenSSL sign an ECDSA "digest" of any length, as Go's ecdsa.Sign does."""

    name = "sha256"
    block_size = 64

    def __init__(self, size: int) -> None:
        self._size = size

    @property
    def digest_size(self) -> int:
        return self._size


def _ecdsa_alg(data: bytes) -> tuple[bytes, ec.ECDSA]:
    if not data:
        data = b"\x00"  # the same integer (0) as Go's empty hash
    return data, ec.ECDSA(utils.Prehashed(_AnyDigest(len(data))))


def curve_bytes(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> int:
    return (key.curve.key_size + 7) // 8


# --- ECDSA -----------------------------------------------------------------------------------


def ecdsa_sign(key: ec.EllipticCurvePrivateKey, digest: bytes, marshaling: str) -> bytes:
    data, alg = _ecdsa_alg(digest)
    der = key.sign(data, alg)
    if marshaling == "asn1":
        return der
    r, s = utils.decode_dss_signature(der)
    n = curve_bytes(key)
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def _der_len(buf: bytes, i: int) -> tuple[int, int]:
    if i >= len(buf):
        raise ValueError
    b = buf[i]
    i += 1
    if b < 0x80:
        return b, i
    nb = b & 0x7F
    if nb == 0 or nb > 4 or i + nb > len(buf) or buf[i] == 0:
        raise ValueError
    ln = int.from_bytes(buf[i:i + nb], "big")
    if ln < 0x80:
        raise ValueError
    return ln, i + nb


def parse_asn1_signature(sig: bytes) -> tuple[int, int]:
    """Go `asn1.Unmarshal(sig, &struct{R, S *big.Int})` with Vault's error messages."""
    try:
        if not sig or sig[0] != 0x30:
            raise ValueError
        ln, i = _der_len(sig, 1)
        end = i + ln
        if end > len(sig):
            raise ValueError
        vals = []
        for _ in range(2):
            if i >= end or sig[i] != 0x02:
                raise ValueError
            il, i = _der_len(sig, i + 1)
            if il == 0 or i + il > end:
                raise ValueError
            b = sig[i:i + il]
            if il > 1 and ((b[0] == 0 and b[1] < 0x80) or (b[0] == 0xFF and b[1] >= 0x80)):
                raise ValueError
            vals.append(int.from_bytes(b, "big", signed=True))
            i += il
        if i != end:
            raise ValueError
    except (ValueError, IndexError):
        raise CryptoError("supplied signature is invalid") from None
    if end != len(sig):
        raise CryptoError("supplied signature contains extra data")
    return vals[0], vals[1]


def ecdsa_verify(key: ec.EllipticCurvePublicKey, digest: bytes, sig: bytes,
                 marshaling: str) -> bool:
    if marshaling == "asn1":
        r, s = parse_asn1_signature(sig)
    else:
        half = len(sig) // 2
        r, s = int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")
    if r <= 0 or s <= 0:
        return False
    data, alg = _ecdsa_alg(digest)
    try:
        key.verify(utils.encode_dss_signature(r, s), data, alg)
        return True
    except (InvalidSignature, ValueError):
        return False


# --- Ed25519 ---------------------------------------------------------------------------------


def ed25519_check_hash(hash_algorithm: str) -> None:
    if hash_algorithm == "sha2-512":
        raise UserError("error generating Ed25519 options: hash algorithm of SHA2 512 is not "
                        "supported feature")


def ed25519_verify(key: ed25519.Ed25519PublicKey, data: bytes, sig: bytes) -> bool:
    try:
        key.verify(sig, data)
        return True
    except (InvalidSignature, ValueError):
        return False


# --- RSA -------------------------------------------------------------------------------------


def _check_pss_salt(key_bits: int, hash_algorithm: str, salt: int) -> None:
    max_salt = (key_bits - 1 + 7) // 8 - 2 - _HASH_SIZE[hash_algorithm]
    if not (SALT_EQUALS_HASH <= salt <= max_salt):
        raise UserError(f"requested salt length {salt} is invalid")


def _pss(hash_algorithm: str, salt: int, signing: bool) -> padding.PSS:
    mgf = padding.MGF1(crypto_hash(hash_algorithm))
    if salt == SALT_AUTO:
        return padding.PSS(mgf=mgf, salt_length=padding.PSS.MAX_LENGTH if signing
                           else padding.PSS.AUTO)
    if salt == SALT_EQUALS_HASH:
        return padding.PSS(mgf=mgf, salt_length=padding.PSS.DIGEST_LENGTH)
    return padding.PSS(mgf=mgf, salt_length=salt)


def rsa_sign(key: rsa.RSAPrivateKey, digest: bytes, hash_algorithm: str, sig_algorithm: str,
             salt: int) -> bytes:
    if sig_algorithm == "pkcs1v15" and hash_algorithm == "none":
        return rsa_cipher.sign_pkcs1v15_raw(key, digest)
    if hash_algorithm == "none":
        raise InternalError("unsupported hash algorithm")
    if len(digest) != _HASH_SIZE[hash_algorithm]:
        # Go's crypto/rsa words this differently for PSS and PKCS#1 v1.5.
        if sig_algorithm == "pss":
            raise InternalError("crypto/rsa: input must be hashed with given hash")
        raise InternalError("crypto/rsa: input must be hashed message")
    alg = utils.Prehashed(crypto_hash(hash_algorithm))
    if sig_algorithm == "pss":
        _check_pss_salt(key.key_size, hash_algorithm, salt)
        return key.sign(digest, _pss(hash_algorithm, salt, True), alg)
    if sig_algorithm == "pkcs1v15":
        return key.sign(digest, padding.PKCS1v15(), alg)
    raise InternalError(f"unsupported rsa signature algorithm {sig_algorithm}")


def rsa_verify(key: rsa.RSAPublicKey, digest: bytes, sig: bytes, hash_algorithm: str,
               sig_algorithm: str, salt: int) -> bool:
    if sig_algorithm == "pkcs1v15" and hash_algorithm == "none":
        return rsa_cipher.verify_pkcs1v15_raw(key, digest, sig)
    if hash_algorithm == "none":
        raise InternalError("unsupported hash algorithm")
    if sig_algorithm == "pss":
        _check_pss_salt(key.key_size, hash_algorithm, salt)
        pad: padding.AsymmetricPadding = _pss(hash_algorithm, salt, False)
    elif sig_algorithm == "pkcs1v15":
        pad = padding.PKCS1v15()
    else:
        raise InternalError(f"unsupported rsa signature algorithm {sig_algorithm}")
    if len(digest) != _HASH_SIZE[hash_algorithm]:
        return False
    try:
        key.verify(sig, digest, pad, utils.Prehashed(crypto_hash(hash_algorithm)))
        return True
    except (InvalidSignature, ValueError):
        return False
