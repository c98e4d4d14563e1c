"""Spec §6 test vectors, shared by the unit and integration tests of backup/restore."""

from __future__ import annotations

import base64
import json
from typing import Any

K = bytes(range(32))
H = bytes(range(0x20, 0x40))
K_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
H_B64 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
PLAINTEXT_B64 = "aGVsbG8gd29ybGQ="
CONTEXT_B64 = "bXktY29udGV4dA=="

CONVERGENT_AES256 = "vault:v1:qBGVuHYLU/LGxzvYPdKeG35Y6LqCcilxvrQ/jB7ngHXzKAMn7Tt4"
CONVERGENT_CHACHA = "vault:v1:qBGVuHYLU/LGxzvYAntv8Dgfy/8Nos6O8JYssPHcRTOEA7m3bD3M"
CONVERGENT_AES128 = "vault:v1:KIPBYq9R5t+A6uROxT2LDlMPKMnwyEeX00CPYvimeaswKXbBgHtu"
HMAC_SHA256 = "vault:v1:ECy4zZWLwvd1Tm4fQAxVkae32Ewui1hkolrtxs5Pl9Y="
ZERO_NONCE_CT = "vault:v1:AAAAAAAAAAAAAAAAZtnZstoM9NJ6xM3GK8p+SzSJIF/dkpncifRv"


def policy_json(name: str, *, key_type: int = 0, convergent: bool = False,
                key: bytes = K, hmac_key: bytes = H) -> dict[str, Any]:
    """The minimal policy of spec §6 item 3 (convergent v3, or a plain key)."""
    entry: dict[str, Any] = {
        "key": base64.b64encode(key).decode(), "hmac_key": base64.b64encode(hmac_key).decode(),
        "time": "2024-01-01T00:00:00Z", "creation_time": 1704067200,
    }
    if convergent:
        entry["convergent_version"] = 3
    return {
        "name": name, "type": key_type, "derived": convergent, "kdf": 1 if convergent else 0,
        "convergent_encryption": convergent, "convergent_version": -1 if convergent else 0,
        "exportable": True, "allow_plaintext_backup": True, "deletion_allowed": True,
        "min_decryption_version": 1, "min_encryption_version": 0, "min_available_version": 0,
        "latest_version": 1, "archive_version": 1, "archive_min_version": 0,
        "auto_rotate_period": 0, "keys": {"1": entry},
    }


def backup_blob(policy: dict[str, Any], with_archive: bool = True) -> str:
    archived = None
    if with_archive:
        placeholder = {"key": None, "hmac_key": None, "time": "0001-01-01T00:00:00Z"}
        archived = {"keys": [placeholder, policy["keys"]["1"]]}
    raw = json.dumps({"policy": policy, "archived_keys": archived}).encode()
    return base64.b64encode(raw).decode()
