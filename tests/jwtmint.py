"""Test helpers for the JWT auth method: mint keys and signed JWTs (RS*, PS*, ES*, EdDSA)
with `cryptography`, and serve a JWKS and an OIDC discovery document from a loopback HTTP
server. No network beyond 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def public_pem(key: PrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign(claims: dict[str, Any], key: PrivateKey, alg: str = "RS256", kid: str | None = None,
         header: dict[str, Any] | None = None) -> str:
    """A compact JWS of `claims`."""
    h: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        h["kid"] = kid
    h.update(header or {})
    signing_input = (b64(json.dumps(h).encode()) + "." + b64(json.dumps(claims).encode())
                     ).encode()
    if isinstance(key, rsa.RSAPrivateKey):
        digest = _HASH[alg[2:]]()
        pad: padding.AsymmetricPadding = padding.PKCS1v15() if alg.startswith("RS") else \
            padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
        sig = key.sign(signing_input, pad, digest)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        r, s = utils.decode_dss_signature(key.sign(signing_input, ec.ECDSA(_HASH[alg[2:]]())))
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        sig = key.sign(signing_input)
    return signing_input.decode() + "." + b64(sig)


def k8s_claims(namespace: str, name: str, *, issuer: str = "kubernetes/serviceaccount",
               audience: str = "vault", ttl: int = 600, now: float | None = None
               ) -> dict[str, Any]:
    """A projected Kubernetes service-account token's claims."""
    t = int(now if now is not None else time.time())
    return {
        "aud": [audience], "exp": t + ttl, "iat": t, "nbf": t, "iss": issuer,
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {
            "namespace": namespace,
            "pod": {"name": f"{name}-5d8f7", "uid": "0f9c1c5e-1111-2222-3333-444455556666"},
            "serviceaccount": {"name": name, "uid": "7a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff"},
        },
    }


def jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
                "e": b64(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big"))}
    if isinstance(pub, ec.EllipticCurvePublicKey):
        size = (pub.curve.key_size + 7) // 8
        e = pub.public_numbers()
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[pub.curve.key_size]
        return {"kty": "EC", "kid": kid, "use": "sig", "crv": crv,
                "x": b64(e.x.to_bytes(size, "big")), "y": b64(e.y.to_bytes(size, "big"))}
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(raw)}


class KeyServer:
    """A loopback HTTP server: `/jwks` (the current `keys`) and
    `/.well-known/openid-configuration` (issuer = `url`); counts JWKS fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.jwks_fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/jwks":
                    outer.jwks_fetches += 1
                    body = json.dumps({"keys": outer.keys}).encode()
                elif self.path == "/.well-known/openid-configuration":
                    body = json.dumps({"issuer": outer.url,
                                       "jwks_uri": outer.url + "/jwks"}).encode()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @contextmanager
    def running(self) -> Iterator[KeyServer]:
        self.thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
