"""Compact JWS parsing and signature verification (what Vault's JWT plugin gets from go-jose
through hashicorp/cap), with `cryptography` only.

Pure functions: `parse(token)` splits and decodes a compact JWS; `verify(keys, jws)` checks
its signature against a list of public keys. RSA verification is CPU work, so the login
handler runs `verify` on the thread pool (`transit.pools.in_thread`; `cryptography` releases
the GIL). Error texts are go-jose's / Go's where a client can see them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from transit.gocompat import json_kind

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

# cap's default when `jwt_supported_algs` is empty (no HMAC: a public key cannot verify it).
SUPPORTED_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
                  "PS256", "PS384", "PS512", "EdDSA")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}


class JWSError(ValueError):
    """A token that cannot be parsed or verified; the message is the client-visible detail."""


@dataclass(frozen=True, slots=True)
class JWS:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header.get("alg", ""))

    @property
    def kid(self) -> str:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else ""


def b64decode(part: str) -> bytes:
    """base64url without padding (Go's RawURLEncoding, with its error text)."""
    for i, ch in enumerate(part):
        if not (ch.isascii() and (ch.isalnum() or ch in "-_")):
            raise JWSError(f"illegal base64 data at input byte {i}")
    if len(part) % 4 == 1:
        raise JWSError(f"illegal base64 data at input byte {len(part) - 1}")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise JWSError("illegal base64 data at input byte 0") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise JWSError("invalid character looking for beginning of value") from None
    except json.JSONDecodeError as exc:
        text = exc.doc[exc.pos:exc.pos + 1] if exc.pos < len(exc.doc) else ""
        if not text:
            raise JWSError("unexpected end of JSON input") from None
        raise JWSError(f"invalid character '{text}' looking for beginning of value") from None
    if not isinstance(value, dict):
        raise JWSError(f"json: cannot unmarshal {json_kind(value)} into Go value of type "
                       f"{what}")
    return value


def parse(token: str) -> JWS:
    """Split and decode a compact JWS (`header.payload.signature`)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JWSError("go-jose/go-jose: compact JWS format must have three parts")
    raw_header = b64decode(parts[0])
    header = _json_object(raw_header, "jose.rawHeader")
    payload = b64decode(parts[1])
    signature = b64decode(parts[2])
    claims = _json_object(payload, "map[string]interface {}")
    return JWS(header=header, claims=claims,
               signing_input=(parts[0] + "." + parts[1]).encode("ascii"),
               signature=signature)


def verify_one(key: PublicKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """Whether `signature` over `signing_input` is valid for `key` under `alg`."""
    try:
        if alg.startswith(("RS", "PS")) and isinstance(key, rsa.RSAPublicKey):
            digest = _HASHES.get(alg[2:])
            if digest is None:
                return False
            pad: padding.AsymmetricPadding = padding.PKCS1v15() if alg[0] == "R" else \
                padding.PSS(mgf=padding.MGF1(digest()), salt_length=padding.PSS.DIGEST_LENGTH)
            key.verify(signature, signing_input, pad, digest())
            return True
        if alg in _EC_SIZES and isinstance(key, ec.EllipticCurvePublicKey):
            size = _EC_SIZES[alg]
            if key.curve.key_size != {32: 256, 48: 384, 66: 521}[size] \
                    or len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(utils.encode_dss_signature(r, s), signing_input,
                       ec.ECDSA(_HASHES[alg[2:]]()))
            return True
        if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signing_input)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def verify(keys: list[PublicKey], jws: JWS) -> bool:
    """Whether any of `keys` validates the token's signature (go-jose's `alg` header)."""
    alg = jws.alg
    if alg not in SUPPORTED_ALGS:
        return False
    return any(verify_one(k, alg, jws.signing_input, jws.signature) for k in keys)


# -- keys -----------------------------------------------------------------------------------


def parse_pem_keys(pem: str) -> list[PublicKey]:
    """The public keys of one `jwt_validation_pubkeys` entry: PKIX `PUBLIC KEY`, PKCS#1
    `RSA PUBLIC KEY` or a certificate; exactly one PEM block (Vault's certutil texts)."""
    data = pem.strip().encode("utf-8", "surrogatepass")
    blocks = _pem_blocks(data)
    if not blocks:
        raise JWSError("data does not contain any valid public keys")
    if len(blocks) > 1:
        raise JWSError("unexpected trailing data after parsed PEM block")
    block = blocks[0]
    key: Any
    try:
        if b"CERTIFICATE" in block.split(b"\n", 1)[0]:
            key = x509.load_pem_x509_certificate(block).public_key()
        else:
            key = serialization.load_pem_public_key(block)
    except (ValueError, TypeError):
        raise JWSError("data does not contain any valid public keys") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
                      | ed25519.Ed25519PublicKey):
        raise JWSError("data does not contain any valid public keys")
    return [key]


def _pem_blocks(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    rest = data
    while True:
        start = rest.find(b"-----BEGIN ")
        if start < 0:
            break
        end_marker = rest.find(b"-----END ", start)
        if end_marker < 0:
            break
        close = rest.find(b"-----", end_marker + 9)
        if close < 0:
            break
        out.append(rest[start:close + 5])
        rest = rest[close + 5:]
    return out


def _b64int(value: Any) -> int:
    if not isinstance(value, str):
        raise JWSError("invalid JWK")
    return int.from_bytes(b64decode(value), "big")


def jwk_key(jwk: dict[str, Any]) -> PublicKey | None:
    """A public key from one JWK (RSA, EC P-256/384/521, OKP Ed25519); None for keys that
    cannot verify signatures (`use: enc`, symmetric, unknown types)."""
    if jwk.get("use") not in (None, "", "sig"):
        return None
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            return rsa.RSAPublicNumbers(_b64int(jwk.get("e")), _b64int(jwk.get("n"))).public_key()
        if kty == "EC":
            curve: ec.EllipticCurve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(),
                                       "P-521": ec.SECP521R1()}[str(jwk.get("crv"))]
            return ec.EllipticCurvePublicNumbers(
                _b64int(jwk.get("x")), _b64int(jwk.get("y")), curve).public_key()
        if kty == "OKP" and jwk.get("crv") == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(b64decode(str(jwk.get("x"))))
    except (KeyError, ValueError, JWSError):
        return None
    return None


def parse_jwks(raw: bytes) -> list[tuple[str, PublicKey]]:
    """(kid, key) pairs of a JWKS document; raises JWSError when it is not one."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise JWSError("failed to decode keys") from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise JWSError("failed to decode keys")
    out: list[tuple[str, PublicKey]] = []
    for jwk in keys:
        if isinstance(jwk, dict):
            key = jwk_key(jwk)
            if key is not None:
                kid = jwk.get("kid")
                out.append((kid if isinstance(kid, str) else "", key))
    return out
