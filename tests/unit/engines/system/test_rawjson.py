"""Unseal and rekey key shares as Go decodes them (transit/engines/system/rawjson.py)."""

from __future__ import annotations

import base64
import os

import pytest

from transit.engines.system.rawjson import decode_share
from transit.errors import UserError


def test_decode_share_is_go_strict_about_hex() -> None:
    key = os.urandom(33)
    assert decode_share(key.hex()) == key
    assert decode_share(base64.b64encode(key).decode()) == key
    with pytest.raises(UserError):  # Python's fromhex would take the spaces
        decode_share(" ".join(key.hex()[i:i + 2] for i in range(0, 66, 2)))
