"""One key version (`KeyEntry`) and its JSON form, as in Vault's storage and backups.

A KeyEntry is treated as immutable once built: policies share entries between copies, and each
entry caches the objects built from its material (AEAD, private/public key objects, derived
keys). Code that "changes" an entry builds a new one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from transit.crypto.encoding import b64decode, b64encode
from transit.crypto.keytypes import KeyType
from transit.gocompat import ZERO_TIME, format_time, parse_time

CURVES: dict[KeyType, type[ec.EllipticCurve]] = {
    KeyType.ECDSA_P256: ec.SECP256R1,
    KeyType.ECDSA_P384: ec.SECP384R1,
    KeyType.ECDSA_P521: ec.SECP521R1,
}
DERIVED_CACHE_SIZE = 256

_FIELDS = ("key", "hmac_key", "time", "ec_x", "ec_y", "ec_d", "rsa_key", "rsa_public_key",
           "public_key", "convergent_version", "creation_time", "certificate_chain")


def _b(v: Any) -> bytes | None:
    return None if v is None else b64decode(v)


def _bj(v: bytes | None) -> str | None:
    return None if v is None else b64encode(v)


def pem_public(pub: Any) -> str:
    """PKIX PEM with the trailing newline, as Go's pem.EncodeToMemory."""
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class KeyEntry:
    __slots__ = ("key", "hmac_key", "time", "ec_x", "ec_y", "ec_d", "rsa", "rsa_pub",
                 "public_key", "convergent_version", "creation_time", "certificate_chain",
                 "extra", "_cache", "_derived")

    def __init__(self, *, key: bytes | None = None, hmac_key: bytes | None = None,
                 time: str = ZERO_TIME, ec_x: int | None = None, ec_y: int | None = None,
                 ec_d: int | None = None, rsa: rsa.RSAPrivateNumbers | None = None,
                 rsa_pub: rsa.RSAPublicNumbers | None = None, public_key: str = "",
                 convergent_version: int = 0, creation_time: int = 0,
                 certificate_chain: list[bytes] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.key = key
        self.hmac_key = hmac_key
        self.time = time
        self.ec_x, self.ec_y, self.ec_d = ec_x, ec_y, ec_d
        self.rsa = rsa
        self.rsa_pub = rsa_pub
        self.public_key = public_key
        self.convergent_version = convergent_version
        self.creation_time = creation_time
        self.certificate_chain = certificate_chain
        self.extra = extra or {}
        self._cache: dict[str, Any] = {}
        self._derived: dict[tuple, Any] = {}

    def __deepcopy__(self, memo: dict) -> KeyEntry:  # immutable: share (with its caches)
        return self

    def __copy__(self) -> KeyEntry:
        return self

    # --- caches ------------------------------------------------------------------------------
    def cached(self, name: str, build: Callable[[], Any]) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            v = self._cache[name] = build()
            return v

    def derived(self, key: tuple, build: Callable[[], Any]) -> Any:
        """A small bounded FIFO cache for per-context derived material. Batches of
        asymmetric work use it from the CPU thread pool too: a concurrent change while the
        oldest entry is evicted only skips that eviction."""
        d = self._derived
        try:
            return d[key]
        except KeyError:
            pass
        v = build()
        if len(d) >= DERIVED_CACHE_SIZE:
            try:
                d.pop(next(iter(d)), None)
            except (RuntimeError, StopIteration):
                pass
        d[key] = v
        return v

    # --- key objects ---------------------------------------------------------------------------
    def is_private_key_missing(self, key_type: KeyType) -> bool:
        if key_type.is_rsa:
            return self.rsa is None
        if key_type.is_ecdsa:
            return self.ec_d is None
        return not self.key

    def rsa_private(self) -> rsa.RSAPrivateKey:
        assert self.rsa is not None
        return self.cached("rsa_priv", self.rsa.private_key)

    def rsa_public(self) -> rsa.RSAPublicKey:
        def build() -> rsa.RSAPublicKey:
            if self.rsa is not None:
                return self.rsa_private().public_key()
            assert self.rsa_pub is not None
            return self.rsa_pub.public_key()
        return self.cached("rsa_pub", build)

    def ec_private(self, key_type: KeyType) -> ec.EllipticCurvePrivateKey:
        def build() -> ec.EllipticCurvePrivateKey:
            assert self.ec_d is not None and self.ec_x is not None and self.ec_y is not None
            pub = ec.EllipticCurvePublicNumbers(self.ec_x, self.ec_y, CURVES[key_type]())
            return ec.EllipticCurvePrivateNumbers(self.ec_d, pub).private_key()
        return self.cached("ec_priv", build)

    def ec_public(self, key_type: KeyType) -> ec.EllipticCurvePublicKey:
        def build() -> ec.EllipticCurvePublicKey:
            assert self.ec_x is not None and self.ec_y is not None
            nums = ec.EllipticCurvePublicNumbers(self.ec_x, self.ec_y, CURVES[key_type]())
            return nums.public_key()
        return self.cached("ec_pub", build)

    def ed_private(self) -> ed25519.Ed25519PrivateKey:
        key = self.key
        assert key is not None
        return self.cached("ed_priv",
                           lambda: ed25519.Ed25519PrivateKey.from_private_bytes(key[:32]))

    def ed_public(self) -> ed25519.Ed25519PublicKey:
        def build() -> ed25519.Ed25519PublicKey:
            if self.key:
                return self.ed_private().public_key()
            return ed25519.Ed25519PublicKey.from_public_bytes(b64decode(self.public_key))
        return self.cached("ed_pub", build)

    def public_pem(self, key_type: KeyType) -> str:
        """PKIX PEM (trailing newline) for RSA/EC; base64 raw for Ed25519."""
        if key_type.is_rsa:
            return self.cached("rsa_pem", lambda: pem_public(self.rsa_public()))
        if key_type.is_ecdsa:
            return self.public_key or self.cached(
                "ec_pem", lambda: pem_public(self.ec_public(key_type)))
        return self.public_key

    def creation_datetime(self) -> datetime:
        t = parse_time(self.time)
        if t.year == 1:
            t = datetime.fromtimestamp(self.creation_time, UTC)
        return t

    # --- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": _bj(self.key),
            "hmac_key": _bj(self.hmac_key),
            "time": self.time,
            "ec_x": self.ec_x,
            "ec_y": self.ec_y,
            "ec_d": self.ec_d,
            "rsa_key": rsa_to_json(self.rsa) if self.rsa else None,
            "rsa_public_key": ({"N": self.rsa_pub.n, "E": self.rsa_pub.e}
                               if self.rsa_pub else None),
            "public_key": self.public_key,
            "convergent_version": self.convergent_version,
            "creation_time": self.creation_time,
            "certificate_chain": ([b64encode(c) for c in self.certificate_chain]
                                  if self.certificate_chain is not None else None),
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> KeyEntry:
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ValueError("key entry is not an object")
        rsa_pub = None
        if d.get("rsa_public_key"):
            rp = d["rsa_public_key"]
            rsa_pub = rsa.RSAPublicNumbers(int(rp["E"]), int(rp["N"]))
        chain = d.get("certificate_chain")
        return cls(
            key=_b(d.get("key")),
            hmac_key=_b(d.get("hmac_key")),
            time=d.get("time") or ZERO_TIME,
            ec_x=_int(d.get("ec_x")),
            ec_y=_int(d.get("ec_y")),
            ec_d=_int(d.get("ec_d")),
            rsa=rsa_from_json(d["rsa_key"]) if d.get("rsa_key") else None,
            rsa_pub=rsa_pub,
            public_key=d.get("public_key") or "",
            convergent_version=int(d.get("convergent_version") or 0),
            creation_time=int(d.get("creation_time") or 0),
            certificate_chain=[b64decode(c) for c in chain] if chain is not None else None,
            extra={k: v for k, v in d.items() if k not in _FIELDS},
        )

    # --- generation ------------------------------------------------------------------------------
    @classmethod
    def generate(cls, key_type: KeyType, now: datetime, key_size: int = 0) -> KeyEntry:
        """A fresh version: new key material plus an independent 32-byte `hmac_key`."""
        e = cls(hmac_key=os.urandom(32), time=format_time(now),
                creation_time=int(now.timestamp()))
        if key_type.is_aead:
            e.key = os.urandom(key_type.key_len)
        elif key_type is KeyType.HMAC:
            e.key = os.urandom(key_size)
            e.hmac_key = e.key
        elif key_type.is_ecdsa:
            set_ec_private(e, ec.generate_private_key(CURVES[key_type]()))
        elif key_type is KeyType.ED25519:
            set_ed_private(e, ed25519.Ed25519PrivateKey.generate())
        elif key_type.is_rsa:
            e.rsa = rsa.generate_private_key(65537, key_type.rsa_bits).private_numbers()
        return e


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def set_ec_private(e: KeyEntry, k: ec.EllipticCurvePrivateKey) -> None:
    nums = k.private_numbers()
    e.ec_d, e.ec_x, e.ec_y = nums.private_value, nums.public_numbers.x, nums.public_numbers.y
    e.public_key = pem_public(k.public_key())


def set_ec_public(e: KeyEntry, k: ec.EllipticCurvePublicKey) -> None:
    nums = k.public_numbers()
    e.ec_x, e.ec_y = nums.x, nums.y
    e.public_key = pem_public(k)


def set_ed_private(e: KeyEntry, k: ed25519.Ed25519PrivateKey) -> None:
    pub = k.public_key().public_bytes_raw()
    e.key = k.private_bytes_raw() + pub
    e.public_key = b64encode(pub)


def rsa_to_json(n: rsa.RSAPrivateNumbers) -> dict[str, Any]:
    """Go's `rsa.PrivateKey` JSON: N, E, D, Primes, Precomputed."""
    return {
        "N": n.public_numbers.n,
        "E": n.public_numbers.e,
        "D": n.d,
        "Primes": [n.p, n.q],
        "Precomputed": {"Dp": n.dmp1, "Dq": n.dmq1, "Qinv": n.iqmp, "CRTValues": []},
    }


def rsa_from_json(d: dict[str, Any]) -> rsa.RSAPrivateNumbers:
    n, e, dd = int(d["N"]), int(d["E"]), int(d["D"])
    primes = [int(p) for p in d.get("Primes") or []]
    if len(primes) != 2:
        if len(primes) == 0:
            p, q = rsa.rsa_recover_prime_factors(n, e, dd)
        else:
            raise ValueError("multi-prime RSA keys are not supported")
    else:
        p, q = primes
    pre = d.get("Precomputed") or {}
    dp = _int(pre.get("Dp")) or rsa.rsa_crt_dmp1(dd, p)
    dq = _int(pre.get("Dq")) or rsa.rsa_crt_dmq1(dd, q)
    qinv = _int(pre.get("Qinv")) or rsa.rsa_crt_iqmp(p, q)
    return rsa.RSAPrivateNumbers(p, q, dd, dp, dq, qinv, rsa.RSAPublicNumbers(e, n))
