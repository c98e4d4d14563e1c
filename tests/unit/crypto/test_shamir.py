"""Shamir secret sharing over GF(2^8) (Vault's share format)."""

from __future__ import annotations

import itertools
import os

import pytest

from transit.crypto import shamir


def test_field_is_the_aes_field() -> None:
    # FIPS-197 §4.2: {57} • {83} = {c1}; {57} • {13} = {fe}
    assert shamir._mul(0x57, 0x83) == 0xC1
    assert shamir._mul(0x57, 0x13) == 0xFE
    for a in range(1, 256):
        assert shamir._mul(a, shamir._div(1, a)) == 1


@pytest.mark.parametrize(("parts", "threshold"), [(2, 2), (3, 2), (5, 3), (6, 6), (7, 4)])
def test_every_threshold_subset_combines(parts: int, threshold: int) -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, parts, threshold)
    assert len(shares) == parts
    for k in range(threshold, parts + 1):
        for subset in itertools.combinations(shares, k):
            assert shamir.combine(list(subset)) == secret
        # order does not matter
        assert shamir.combine(list(reversed(shares[:k]))) == secret


def test_fewer_than_threshold_does_not_give_the_secret() -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, 5, 3)
    for subset in itertools.combinations(shares, 2):
        assert shamir.combine(list(subset)) != secret


def test_share_format() -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, 5, 3)
    assert all(len(s) == 33 for s in shares)
    xs = [s[-1] for s in shares]
    assert len(set(xs)) == 5 and 0 not in xs
    assert all(secret not in s for s in shares)
    # x-coordinates are random: two splits practically never use the same set
    assert any({s[-1] for s in shamir.split(secret, 5, 3)} != set(xs) for _ in range(5))


def test_known_share_set_combines() -> None:
    """Hand-made shares of the one-byte secret 0x2a with f(x) = 0x2a ^ 0x07·x (degree 1)."""
    f = {x: 0x2A ^ shamir._mul(0x07, x) for x in (1, 2, 200)}
    shares = [bytes([y, x]) for x, y in f.items()]
    assert shamir.combine(shares[:2]) == b"\x2a"
    assert shamir.combine(shares[1:]) == b"\x2a"


def test_one_of_one_share_is_the_key() -> None:
    secret = os.urandom(32)
    assert shamir.split(secret, 1, 1) == [secret]
    assert shamir.combine([secret]) == secret


def test_255_shares_limit() -> None:
    secret = os.urandom(16)
    shares = shamir.split(secret, 255, 2)
    assert sorted(s[-1] for s in shares) == list(range(1, 256))
    assert shamir.combine([shares[0], shares[254]]) == secret
    with pytest.raises(ValueError, match="parts cannot exceed 255"):
        shamir.split(secret, 256, 2)


@pytest.mark.parametrize(
    ("secret", "parts", "threshold", "message"),
    [
        (b"", 3, 2, "empty secret"),
        (b"k" * 32, 2, 3, "parts cannot be less than threshold"),
        (b"k" * 32, 3, 1, "threshold must be at least 2"),
        (b"k" * 32, 3, 0, "threshold must be at least 1"),
    ],
)
def test_split_rejects(secret: bytes, parts: int, threshold: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        shamir.split(secret, parts, threshold)


def test_combine_rejects_bad_sets() -> None:
    shares = shamir.split(os.urandom(32), 3, 2)
    with pytest.raises(ValueError, match="same length"):
        shamir.combine([shares[0], shares[1][:-2] + shares[1][-1:]])
    with pytest.raises(ValueError, match="duplicate"):
        shamir.combine([shares[0], shares[0]])
    with pytest.raises(ValueError, match="two parts"):
        shamir.combine([])
    with pytest.raises(ValueError, match="at least two bytes"):
        shamir.combine([b"\x01", b"\x02"])
