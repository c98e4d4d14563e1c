"""Shamir secret sharing over GF(2^8), byte-compatible with Vault's `shamir` package.

Each byte of the secret is the constant term of its own random polynomial of degree
`threshold - 1`; a share is the polynomials' values at one x-coordinate followed by that
x-coordinate (so `len(share) == len(secret) + 1`). The x-coordinates are distinct, non-zero
and random (Vault takes the first `parts` of a random permutation of 1..255). The field is
the AES field, x^8 + x^4 + x^3 + x + 1, so shares from Vault combine here and vice versa.

`split(secret, 1, 1)` is the one exception, as in Vault's init: with a single share the
share *is* the secret (no x-coordinate byte), and `combine([s])` gives `s` back.

Table lookups are not constant-time; the shares only ever pass through here once per unseal.
Pure functions, no I/O. Errors are ValueError (the seal layer turns them into user errors).
"""

from __future__ import annotations

import secrets

SHARE_OVERHEAD = 1
MAX_PARTS = 255


def _tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        # multiply by the generator 3 (x + 1) in the AES field
        x ^= (x << 1) ^ (0x11B if x & 0x80 else 0)
    for i in range(255, 512):
        exp[i] = exp[i - 255]
    return exp, log


_EXP, _LOG = _tables()


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(2^8)")
    if a == 0:
        return 0
    return _EXP[(_LOG[a] - _LOG[b]) % 255]


def _evaluate(coefficients: list[int], x: int) -> int:
    """Horner's rule; coefficients[0] is the constant term."""
    out = 0
    for c in reversed(coefficients):
        out = _mul(out, x) ^ c
    return out


def _random_x_coordinates(parts: int) -> list[int]:
    pool = list(range(1, 256))
    # Fisher-Yates with the CSPRNG, keeping only the first `parts`.
    for i in range(parts):
        j = i + secrets.randbelow(len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:parts]


def split(secret: bytes, parts: int, threshold: int) -> list[bytes]:
    """Split `secret` into `parts` shares, any `threshold` of which recover it."""
    if not secret:
        raise ValueError("cannot split an empty secret")
    if parts < threshold:
        raise ValueError("parts cannot be less than threshold")
    if parts > MAX_PARTS:
        raise ValueError("parts cannot exceed 255")
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if threshold == 1:
        if parts == 1:
            return [bytes(secret)]
        raise ValueError("threshold must be at least 2 when there are several parts")
    xs = _random_x_coordinates(parts)
    out = [bytearray(len(secret) + SHARE_OVERHEAD) for _ in range(parts)]
    for i, x in enumerate(xs):
        out[i][-1] = x
    for pos, byte in enumerate(secret):
        coefficients = [byte, *secrets.token_bytes(threshold - 1)]
        for i, x in enumerate(xs):
            out[i][pos] = _evaluate(coefficients, x)
    return [bytes(s) for s in out]


def combine(shares: list[bytes]) -> bytes:
    """Recover the secret from shares (Lagrange interpolation at x = 0).

    With fewer shares than the threshold the result is a uniformly random-looking value,
    not an error: only the caller's integrity check (the GCM tag of the stored root key)
    can tell.
    """
    if len(shares) == 1:
        return bytes(shares[0])
    if not shares:
        raise ValueError("less than two parts cannot be used to reconstruct the secret")
    length = len(shares[0])
    if length < 2:
        raise ValueError("parts must be at least two bytes")
    if any(len(s) != length for s in shares):
        raise ValueError("all parts must be the same length")
    xs = [s[-1] for s in shares]
    if len(set(xs)) != len(xs):
        raise ValueError("duplicate part detected")
    if 0 in xs:
        raise ValueError("invalid part: x-coordinate 0")
    # Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR.
    basis = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = _mul(num, xj)
                den = _mul(den, xj ^ xi)
        basis.append(_div(num, den))
    secret = bytearray(length - SHARE_OVERHEAD)
    for pos in range(len(secret)):
        acc = 0
        for share, li in zip(shares, basis, strict=True):
            acc ^= _mul(share[pos], li)
        secret[pos] = acc
    return bytes(secret)
