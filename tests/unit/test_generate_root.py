"""Root generation below HTTP (operations-api §2): the root-token encoding
(transit/generate_root.py)."""

from __future__ import annotations

import base64

import pytest

from transit import generate_root as roots


def test_root_token_encoding_round_trip() -> None:
    token, otp = "hvs." + "a" * 24, roots.new_otp()
    assert len(otp) == roots.OTP_LENGTH == 28 and otp.isalnum()
    encoded = roots.encode_token(token, otp)
    assert len(encoded) == 38 and "=" not in encoded  # RawStdEncoding
    assert roots.decode_token(encoded, otp) == token
    raw = base64.b64decode(encoded + "==")
    assert bytes(x ^ y for x, y in zip(raw, otp.encode(), strict=True)) == token.encode()
    with pytest.raises(ValueError):
        roots.encode_token(token, otp[:-1])
