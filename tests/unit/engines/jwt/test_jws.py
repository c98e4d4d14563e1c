"""Compact JWS parsing, signature verification and key parsing
(transit/engines/jwt/jws.py), with keys and tokens minted here."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.jwtmint import b64, ec_key, jwk, public_pem, rsa_key, sign
from transit.engines.jwt.jws import (
    JWSError,
    parse,
    parse_jwks,
    parse_pem_keys,
    verify,
)

RSA = rsa_key()
CLAIMS = {"sub": "s", "iat": 1}


@pytest.mark.parametrize(("key", "alg"), [
    (RSA, "RS256"), (RSA, "RS384"), (RSA, "RS512"), (RSA, "PS256"), (RSA, "PS512"),
    (ec_key(), "ES256"), (ec_key(ec.SECP384R1()), "ES384"), (ec_key(ec.SECP521R1()), "ES512"),
    (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
])
def test_every_supported_algorithm_verifies(key: object, alg: str) -> None:
    token = parse(sign(CLAIMS, key, alg=alg))  # type: ignore[arg-type]
    assert token.claims == CLAIMS and token.alg == alg
    keys = parse_pem_keys(public_pem(key))  # type: ignore[arg-type]
    assert verify(keys, token)
    assert not verify(parse_pem_keys(public_pem(rsa_key() if alg[0] in "RP" else ec_key())),
                      token)


def test_alg_and_tampering() -> None:
    keys = parse_pem_keys(public_pem(RSA))
    token = sign(CLAIMS, RSA)
    head, _, sig = token.split(".")
    other = b64(json.dumps({"sub": "root", "iat": 1}).encode())
    assert not verify(keys, parse(f"{head}.{other}.{sig}"))
    none_head = b64(json.dumps({"alg": "none"}).encode())
    assert not verify(keys, parse(f"{none_head}.{other}."))
    hs_head = b64(json.dumps({"alg": "HS256"}).encode())
    assert not verify(keys, parse(f"{hs_head}.{other}.{sig}"))


@pytest.mark.parametrize(("token", "message"), [
    ("garbage", "compact JWS format must have three parts"),
    ("a.b.c.d", "compact JWS format must have three parts"),
    ("a.b.c", "illegal base64 data at input byte 0"),
    ("e!.e30.", "illegal base64 data at input byte 1"),
    (b64(b"xyz") + ".e30.", "invalid character 'x' looking for beginning of value"),
    (b64(b"[1]") + ".e30.", "cannot unmarshal array"),
])
def test_malformed_tokens(token: str, message: str) -> None:
    with pytest.raises(JWSError, match=message):
        parse(token)


def test_pem_keys_and_jwks() -> None:
    with pytest.raises(JWSError, match="data does not contain any valid public keys"):
        parse_pem_keys("garbage")
    with pytest.raises(JWSError, match="unexpected trailing data"):
        parse_pem_keys(public_pem(RSA) + public_pem(RSA))
    ec = ec_key()
    keys = parse_jwks(json.dumps({"keys": [jwk(RSA, "r"), jwk(ec, "e"),
                                           {"kty": "oct", "k": "AAAA"},
                                           {**jwk(RSA, "enc"), "use": "enc"}]}).encode())
    assert [kid for kid, _ in keys] == ["r", "e"]
    with pytest.raises(JWSError):
        parse_jwks(b"[]")
