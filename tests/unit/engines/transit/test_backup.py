"""Unit tests: `export`, `backup` and `restore` (spec §4.17-4.19) and the §6 restore vectors."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tests import vectors as v
from tests.unit.engines.transit.ops_helpers import call, fails, new_backend, read, snapshot, write
from transit.errors import InternalError, UserError
from transit.logical import READ


def test_export_types_versions_and_errors() -> None:
    async def go(b):
        await write(b, "keys/k", {"exportable": True})
        await write(b, "keys/k/rotate")
        both = await read(b, "export/encryption-key/k")
        assert both["name"] == "k" and both["type"] == "aes256-gcm96"
        assert sorted(both["keys"]) == ["1", "2"]
        assert all(len(base64.b64decode(x)) == 32 for x in both["keys"].values())
        assert (await read(b, "export/encryption-key/k/latest"))["keys"] == {
            "2": both["keys"]["2"]}
        assert (await read(b, "export/encryption-key/k/v1"))["keys"] == {"1": both["keys"]["1"]}
        assert (await read(b, "export/hmac-key/k/1"))["keys"]["1"] != both["keys"]["1"]
        # a missing key reads as nothing (the API answers 404 {"errors":[]})
        assert await call(b, "export/encryption-key/nope", op=READ) is None
        cases = [
            ("export/bogus-key/k", "invalid export type: bogus-key"),
            ("export/bogus-key/nope", "invalid export type: bogus-key"),
            ("export/signing-key/k", "signing not supported for the key"),
            ("export/encryption-key/k/vx", "invalid key version"),
            ("export/encryption-key/k/7", "version does not exist or cannot be found"),
        ]
        for path, msg in cases:
            assert (await fails(b, path, op=READ, exc=UserError)).message == msg, path
        await write(b, "keys/k/config", {"min_decryption_version": 2})
        assert list((await read(b, "export/encryption-key/k"))["keys"]) == ["2"]
        assert (await fails(b, "export/encryption-key/k/1", op=READ, exc=UserError)).message == (
            "version for export is below minimum decryption version")
        await write(b, "keys/private")
        assert (await fails(b, "export/encryption-key/private", op=READ,
                            exc=UserError)).message == "private key material is not exportable"

    asyncio.run(go(new_backend()))


def test_backup_restore_round_trip() -> None:
    async def go(b):
        await write(b, "keys/k", {"exportable": True, "allow_plaintext_backup": True})
        await write(b, "keys/k/rotate")
        ct = (await write(b, "encrypt/k", {"plaintext": v.PLAINTEXT_B64}))["ciphertext"]
        blob = (await read(b, "backup/k"))["backup"]
        decoded = json.loads(base64.b64decode(blob))
        assert decoded["policy"]["type"] == 0 and decoded["policy"]["latest_version"] == 2
        assert decoded["policy"]["backup_info"]["version"] == 2
        assert (await read(b, "keys/k"))["backup_info"]["version"] == 2

        assert await write(b, "restore/copy", {"backup": blob}) is None
        info = await read(b, "keys/copy")
        assert info["name"] == "copy" and info["latest_version"] == 2
        assert info["restore_info"]["version"] == 2
        assert (await write(b, "decrypt/copy", {"ciphertext": ct}))["plaintext"] == (
            v.PLAINTEXT_B64)
        assert (await read(b, "export/encryption-key/copy"))["keys"] == (
            await read(b, "export/encryption-key/k"))["keys"]
        # restoring without a name uses the one in the backup, which exists
        err = await fails(b, "restore", {"backup": blob}, exc=InternalError)
        assert err.message == 'key "k" already exists'
        err = await fails(b, "restore/copy", {"backup": blob}, exc=InternalError)
        assert err.message == 'key "copy" already exists'
        await write(b, "keys/k/rotate")
        assert await write(b, "restore", {"backup": blob, "force": "true"}) is None
        assert (await read(b, "keys/k"))["latest_version"] == 2

    asyncio.run(go(new_backend()))


def test_backup_errors_are_500_and_write_nothing() -> None:
    async def go(b):
        await write(b, "keys/noexp")
        await write(b, "keys/nobak", {"exportable": True})
        before = await snapshot(b)
        for path, msg in (("backup/missing", 'key "missing" not found'),
                          ("backup/noexp", "exporting is disallowed on the policy"),
                          ("backup/nobak", "plaintext backup is disallowed on the policy")):
            assert (await fails(b, path, op=READ, exc=InternalError)).message == msg
        assert await snapshot(b) == before
        assert "backup_info" not in (await read(b, "keys/nobak"))

    asyncio.run(go(new_backend()))


@pytest.mark.parametrize("blob", [
    "!!!not base64!!!",
    base64.b64encode(b"not json").decode(),
    base64.b64encode(b"{}").decode(),
    base64.b64encode(b"[1, 2]").decode(),
    base64.b64encode(b'{"policy": {"name": "x", "type": 99, "keys": {}}}').decode(),
    base64.b64encode(b'{"policy": {"name": "x", "type": 0, "latest_version": 1, '
                     b'"keys": {"1": {"key": "%%%"}}}}').decode(),
])
def test_restore_bad_backups(blob: str) -> None:
    async def go(b):
        before = await snapshot(b)
        await fails(b, "restore/x", {"backup": blob}, exc=InternalError)
        assert await snapshot(b) == before
        assert await b.policies.get("x") is None

    asyncio.run(go(new_backend()))


def test_restore_request_errors() -> None:
    async def go(b):
        assert (await fails(b, "restore/x", {}, exc=UserError)).message == (
            "'backup' must be supplied")
        blob = v.backup_blob(v.policy_json("vec"))
        assert (await fails(b, "restore/a/b", {"backup": blob}, exc=InternalError)).message == (
            "key names cannot be paths")
        err = await fails(b, "restore/x", {"backup": blob, "force": "maybe"}, exc=UserError)
        assert err.message.startswith("Field validation failed")
        assert await snapshot(b) == {}

    asyncio.run(go(new_backend()))


def test_restore_vectors_convergent_and_hmac() -> None:
    """Spec §6 items 3-4: hand-made backups give byte-exact ciphertexts and HMACs."""
    async def go(b):
        enc = {"plaintext": v.PLAINTEXT_B64, "context": v.CONTEXT_B64}
        await write(b, "restore/vec", {"backup": v.backup_blob(v.policy_json(
            "vec", convergent=True))})
        assert (await write(b, "encrypt/vec", enc))["ciphertext"] == v.CONVERGENT_AES256
        await write(b, "restore/cha", {"backup": v.backup_blob(v.policy_json(
            "cha", key_type=5, convergent=True), with_archive=False)})
        assert (await write(b, "encrypt/cha", enc))["ciphertext"] == v.CONVERGENT_CHACHA
        await write(b, "restore/a128", {"backup": v.backup_blob(v.policy_json(
            "a128", key_type=8, convergent=True, key=v.K[:16]))})
        assert (await write(b, "encrypt/a128", enc))["ciphertext"] == v.CONVERGENT_AES128
        await write(b, "restore/plain", {"backup": v.backup_blob(v.policy_json("plain"))})
        assert (await write(b, "hmac/plain", {"input": v.PLAINTEXT_B64}))["hmac"] == (
            v.HMAC_SHA256)
        assert (await write(b, "verify/plain", {"input": v.PLAINTEXT_B64,
                                                "hmac": v.HMAC_SHA256}))["valid"] is True
        assert (await write(b, "decrypt/plain", {"ciphertext": v.ZERO_NONCE_CT}))[
            "plaintext"] == v.PLAINTEXT_B64
        assert (await read(b, "export/hmac-key/plain"))["keys"] == {"1": v.H_B64}

    asyncio.run(go(new_backend()))


def test_backup_of_restored_vector_round_trips() -> None:
    async def go(b):
        await write(b, "restore/vec", {"backup": v.backup_blob(v.policy_json(
            "vec", convergent=True))})
        blob = (await read(b, "backup/vec"))["backup"]
        await write(b, "restore/vec2", {"backup": blob})
        enc = {"plaintext": v.PLAINTEXT_B64, "context": v.CONTEXT_B64}
        assert (await write(b, "encrypt/vec2", enc))["ciphertext"] == v.CONVERGENT_AES256

    asyncio.run(go(new_backend()))
