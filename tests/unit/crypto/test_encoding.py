import base64
import binascii
import os
import random

import pytest

from transit.crypto.encoding import (
    b64decode,
    b64decode_rawurl,
)
from transit.errors import CryptoError


@pytest.mark.parametrize("s,off", [
    ("a", 0), ("ab", 0), ("abc", 0), ("abcde", 4), ("ab=", 3), ("ab=c", 2), ("a===", 1),
    ("====", 0), ("YWJj!", 4), ("YQ==YQ==", 4), ("YQ== ", 4), ("Y Q==", 1), ("é", 0),
    ("YWJjé", 4), ("YQ=\n", 4), ("YWJjZA=", 7), ("YWJ=ZA==", 4),
])
def test_go_errors(s, off):
    with pytest.raises(CryptoError) as ei:
        b64decode(s)
    assert ei.value.message == f"illegal base64 data at input byte {off}"


@pytest.mark.parametrize("s,out", [
    ("", b""), ("aGVsbG8gd29ybGQ=", b"hello world"), ("YQ\n==", b"a"), ("Y\r\nQ==\n", b"a"),
    ("YR==", b"a"),  # non-zero trailing bits are accepted (StdEncoding is not Strict)
    ("YWJj\nZA==", b"abcd"),
])
def test_go_accepts(s, out):
    assert b64decode(s) == out


def test_fuzz_matches_python_on_valid_and_never_accepts_invalid():
    rnd = random.Random(7)
    alphabet = "ABCDEFab01+/=-_\n! "
    for _ in range(3000):
        data = os.urandom(rnd.randrange(0, 20))
        good = base64.b64encode(data).decode()
        assert b64decode(good) == data
        bad = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 12)))
        try:
            got = b64decode(bad)
        except CryptoError:
            continue
        cleaned = bad.replace("\n", "")
        assert binascii.a2b_base64(cleaned, strict_mode=True) == got


def test_rawurl():
    assert b64decode_rawurl("_-8") == b"\xff\xef"
    with pytest.raises(CryptoError):
        b64decode_rawurl("YQ==")
    with pytest.raises(CryptoError):
        b64decode_rawurl("a")


