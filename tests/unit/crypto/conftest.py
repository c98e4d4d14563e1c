"""Shared crypto fixtures: RSA keys are slow to generate, so they are made once per session."""

from __future__ import annotations

import base64
import json

import pytest

from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy

K = bytes(range(32))
H = bytes(range(32, 64))
B64 = lambda b: base64.b64encode(b).decode()  # noqa: E731


def vector_blob(type_int: int = 0, key: bytes = K, *, derived: bool = True,
                convergent: bool = True, archived: str = "null", **extra) -> str:
    """The hand-made backup of spec §6 item 3."""
    entry = {"key": B64(key), "hmac_key": B64(H), "time": "2024-01-01T00:00:00Z",
             "creation_time": 1704067200}
    if convergent:
        entry["convergent_version"] = 3
    pol = {"name": "vec", "type": type_int, "derived": derived, "kdf": 1 if derived else 0,
           "convergent_encryption": convergent, "convergent_version": -1 if convergent else 0,
           "exportable": True, "allow_plaintext_backup": True, "deletion_allowed": True,
           "min_decryption_version": 1, "min_encryption_version": 0,
           "min_available_version": 0, "latest_version": 1, "archive_version": 1,
           "archive_min_version": 0, "auto_rotate_period": 0, "keys": {"1": entry}, **extra}
    if archived == "null":
        arch = None
    else:
        arch = {"keys": [{"key": None, "hmac_key": None, "time": "0001-01-01T00:00:00Z"}, entry]}
    return B64(json.dumps({"policy": pol, "archived_keys": arch}).encode())


@pytest.fixture(scope="session")
def rsa2048() -> Policy:
    return Policy.create("r2", KeyType.RSA2048, exportable=True, allow_plaintext_backup=True)


@pytest.fixture(scope="session")
def rsa3072() -> Policy:
    return Policy.create("r3", KeyType.RSA3072, exportable=True, allow_plaintext_backup=True)


@pytest.fixture(scope="session")
def rsa4096() -> Policy:
    return Policy.create("r4", KeyType.RSA4096, exportable=True, allow_plaintext_backup=True)


@pytest.fixture(scope="session")
def rsa_policies(rsa2048: Policy, rsa3072: Policy, rsa4096: Policy) -> dict[str, Policy]:
    return {"rsa-2048": rsa2048, "rsa-3072": rsa3072, "rsa-4096": rsa4096}


NON_RSA = [t for t in KeyType if not t.is_rsa]


def make(t: KeyType | str, rsa_policies: dict[str, Policy] | None = None, **kw) -> Policy:
    """A fresh policy of type t (RSA: a copy of the session key, to save generation time)."""
    t = KeyType(t)
    if t.is_rsa and rsa_policies is not None:
        import copy
        return copy.deepcopy(rsa_policies[str(t)])
    if t is KeyType.HMAC:
        kw.setdefault("key_size", 32)
    return Policy.create("k", t, **kw)
