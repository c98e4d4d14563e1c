"""encrypt / decrypt / rewrap / datakey and the §5 batch rules, driven through the route table."""

from __future__ import annotations

import asyncio
import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.unit.engines.transit.tx import Env
from transit.crypto.encoding import b64decode
from transit.crypto.policy import Policy
from transit.engines.transit.batch import decode_items
from transit.engines.transit.policies import PolicyStore
from transit.errors import CryptoError, InternalError, UserError
from transit.fields import FieldData
from transit.logical import CREATE, UPDATE, Request

HELLO = "aGVsbG8gd29ybGQ="  # "hello world"
CTX = "bXktY29udGV4dA=="  # "my-context"
K = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
H = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="


async def env() -> Env:
    return await Env().setup()


def vector_policy(name: str, *, convergent: bool, key_type: int = 0) -> Policy:
    """The spec §6.3 hand-made backup, restored into a Policy."""
    import json

    entry: dict = {"key": K, "hmac_key": H, "time": "2024-01-01T00:00:00Z",
                   "creation_time": 1704067200}
    if convergent:
        entry["convergent_version"] = 3
    policy = {
        "name": name, "type": key_type, "derived": convergent, "kdf": 1 if convergent else 0,
        "convergent_encryption": convergent, "convergent_version": -1 if convergent else 0,
        "exportable": True, "allow_plaintext_backup": True, "deletion_allowed": True,
        "min_decryption_version": 1, "min_encryption_version": 0, "min_available_version": 0,
        "latest_version": 1, "archive_version": 1, "archive_min_version": 0,
        "auto_rotate_period": 0, "keys": {"1": entry},
    }
    blob = base64.b64encode(json.dumps({"policy": policy, "archived_keys": None}).encode())
    return Policy.restore(blob.decode())


# --- single encrypt / decrypt ---------------------------------------------------------------

def test_encrypt_upserts_then_roundtrips() -> None:
    async def go() -> None:
        e = await env()
        resp = await e.write("encrypt/k", {"plaintext": HELLO})
        assert resp.warnings is None and resp.status is None
        assert set(resp.data) == {"ciphertext", "key_version"}
        assert resp.data["ciphertext"].startswith("vault:v1:")
        assert resp.data["key_version"] == 1
        assert (await e.read("keys/k")).data["type"] == "aes256-gcm96"
        dec = await e.write("decrypt/k", {"ciphertext": resp.data["ciphertext"]})
        assert dec.data == {"plaintext": HELLO}
    asyncio.run(go())


def test_empty_plaintext_is_valid() -> None:
    async def go() -> None:
        e = await env()
        ct = (await e.write("encrypt/k", {"plaintext": ""})).data["ciphertext"]
        assert (await e.write("decrypt/k", {"ciphertext": ct})).data == {"plaintext": ""}
    asyncio.run(go())


def test_ciphertext_layout_is_nonce_ct_tag_under_exported_key() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k", {"exportable": True})
        p = await e.b.policies.get("k")
        raw_key = p.keys[1].key
        ct = (await e.write("encrypt/k", {"plaintext": HELLO})).data["ciphertext"]
        payload = base64.b64decode(ct.split(":", 2)[2])
        assert AESGCM(raw_key).decrypt(payload[:12], payload[12:], None) == b"hello world"
    asyncio.run(go())


def test_known_vector_decrypts_and_convergent_vector_encrypts() -> None:
    async def go() -> None:
        e = await env()
        p = vector_policy("plain", convergent=False)
        await e.b.policies.modify(p.name, lambda _: (p, None))
        ct = "vault:v1:AAAAAAAAAAAAAAAAZtnZstoM9NJ6xM3GK8p+SzSJIF/dkpncifRv"
        assert (await e.write("decrypt/plain", {"ciphertext": ct})).data == {"plaintext": HELLO}
        p = vector_policy("conv", convergent=True)
        await e.b.policies.modify(p.name, lambda _: (p, None))
        resp = await e.write("encrypt/conv", {"plaintext": HELLO, "context": CTX})
        assert resp.data["ciphertext"] == (
            "vault:v1:qBGVuHYLU/LGxzvYPdKeG35Y6LqCcilxvrQ/jB7ngHXzKAMn7Tt4"
        )
    asyncio.run(go())


def test_upsert_with_context_creates_derived_key_and_convergent() -> None:
    async def go() -> None:
        e = await env()
        await e.write("encrypt/d", {"plaintext": HELLO, "context": CTX})
        info = (await e.read("keys/d")).data
        assert info["derived"] is True and info["convergent_encryption"] is False
        await e.write("encrypt/c", {"plaintext": HELLO, "context": CTX,
                                    "convergent_encryption": True, "type": "chacha20-poly1305"})
        info = (await e.read("keys/c")).data
        assert info["type"] == "chacha20-poly1305" and info["convergent_encryption"] is True
        a = await e.write("encrypt/c", {"plaintext": HELLO, "context": CTX})
        b = await e.write("encrypt/c", {"plaintext": HELLO, "context": CTX})
        assert a.data["ciphertext"] == b.data["ciphertext"]
    asyncio.run(go())


@pytest.mark.parametrize(
    ("data", "exc", "message"),
    [
        ({"plaintext": HELLO, "type": "ecdsa-p256"}, UserError,
         "key type ecdsa-p256 not supported for this operation"),
        ({"plaintext": HELLO, "type": "ed25519"}, UserError, "unknown key type ed25519"),
        ({"plaintext": HELLO, "type": "nope"}, UserError, "unknown key type nope"),
        ({"plaintext": HELLO, "convergent_encryption": True}, UserError,
         "convergent encryption requires derivation to be enabled, so context is required"),
        ({"plaintext": HELLO, "context": CTX, "type": "rsa-2048"}, InternalError,
         "key derivation and convergent encryption not supported for keys of type rsa-2048"),
        ({}, UserError, "missing plaintext to encrypt"),
        ({"plaintext": None}, UserError, "missing plaintext to encrypt"),
        ({"plaintext": HELLO, "key_version": "one"}, UserError,
         'error converting input one for field "key_version"'),
    ],
)
def test_failed_upsert_stores_nothing(data: dict, exc: type, message: str) -> None:
    async def go() -> None:
        e = await env()
        with pytest.raises(exc) as info:
            await e.write("encrypt/k", data)
        assert str(info.value).startswith(message)
        assert await e.stored() == []

    asyncio.run(go())


def test_disable_upsert() -> None:
    async def go() -> None:
        e = await env()
        await e.write("config/keys", {"disable_upsert": True})
        with pytest.raises(UserError, match="^encryption key not found$"):
            await e.write("encrypt/k", {"plaintext": HELLO})
        assert await e.stored() == ["config/keys"]
        # Bad plaintext on a missing key: the key lookup answers first, as in Vault.
        with pytest.raises(UserError, match="^encryption key not found$"):
            await e.write("encrypt/k", {"plaintext": "@@@@"})
        await e.write("keys/k")
        assert (await e.write("encrypt/k", {"plaintext": HELLO})).data["key_version"] == 1
    asyncio.run(go())


def test_create_operation_on_existing_key_warns() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        # The existence check said "create", but the key exists by the time the handler runs.
        resp = await e.b.handle(Request(CREATE, "encrypt/k", {"plaintext": HELLO}, e.storage))
        assert resp.warnings == [
            "Attempted creation of the key during the encrypt operation, but it was created beforehand"
        ]
        assert resp.data["key_version"] == 1
        assert (await e.write("encrypt/k", {"plaintext": HELLO})).warnings is None
    asyncio.run(go())


def test_concurrent_creation_warning() -> None:
    async def go() -> None:
        e = await env()

        class RacingStore(PolicyStore):
            """The first lookup misses, and meanwhile another request creates the key."""

            raced = False

            async def get(self, name: str) -> Policy | None:
                if not self.raced:
                    self.raced = True
                    await e.write("keys/k")
                    return None
                return await super().get(name)

        e.b.policies = RacingStore(e.storage)
        resp = await e.write("encrypt/k", {"plaintext": HELLO})
        assert resp.warnings == [
            "Attempted creation of the key during the encrypt operation, but it was created beforehand"
        ]
        assert resp.data["key_version"] == 1
    asyncio.run(go())


@pytest.mark.parametrize(
    ("key", "data", "message"),
    [
        ({"type": "ed25519"}, {"plaintext": HELLO},
         "message encryption not supported for key type ed25519"),
        ({}, {"plaintext": HELLO, "key_version": -1}, "requested version for encryption is negative"),
        ({}, {"plaintext": HELLO, "key_version": 2},
         "requested version for encryption is higher than the latest key version"),
        ({}, {"plaintext": HELLO, "nonce": "AAAAAAAAAAAAAAAA"}, "provided nonce not allowed for this key"),
        ({"derived": True}, {"plaintext": HELLO},
         "missing 'context' for key derivation; the key was created using a derived key, which "
         "means additional, per-request information must be included in order to perform "
         "operations with the key"),
        ({}, {"plaintext": HELLO, "padding_scheme": "oaep"},
         "'[0].padding_scheme' invalid: unsupported key type aes256-gcm96 for padding scheme"),
    ],
)
def test_single_encrypt_errors(key: dict, data: dict, message: str) -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k", key)
        with pytest.raises(UserError) as info:
            await e.write("encrypt/k", data)
        assert info.value.message == message

    asyncio.run(go())


def test_min_encryption_version() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        await e.write("keys/k/rotate")
        await e.write("keys/k/config", {"min_encryption_version": 2})
        with pytest.raises(UserError, match="less than the minimum encryption key version"):
            await e.write("encrypt/k", {"plaintext": HELLO, "key_version": 1})
        assert (await e.write("encrypt/k", {"plaintext": HELLO})).data["key_version"] == 2
    asyncio.run(go())


def test_associated_data() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        ad = "aGVhZGVy"
        ct = (await e.write("encrypt/k", {"plaintext": HELLO, "associated_data": ad})).data["ciphertext"]
        dec = await e.write("decrypt/k", {"ciphertext": ct, "associated_data": ad})
        assert dec.data == {"plaintext": HELLO}
        for bad in ({}, {"associated_data": "b3RoZXI="}):
            with pytest.raises(CryptoError, match="^cipher: message authentication failed$"):
                await e.write("decrypt/k", {"ciphertext": ct, **bad})
    asyncio.run(go())


def test_rsa_key_encrypts_and_rejects_associated_data() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/r", {"type": "rsa-2048"})
        ct = (await e.write("encrypt/r", {"plaintext": HELLO})).data["ciphertext"]
        assert (await e.write("decrypt/r", {"ciphertext": ct})).data == {"plaintext": HELLO}
        ct2 = (await e.write("encrypt/r", {"plaintext": HELLO, "padding_scheme": "pkcs1v15"})).data
        dec = await e.write("decrypt/r", {"ciphertext": ct2["ciphertext"], "padding_scheme": "pkcs1v15"})
        assert dec.data == {"plaintext": HELLO}
        with pytest.raises(UserError) as info:
            await e.write("encrypt/r", {"plaintext": HELLO, "associated_data": "YQ=="})
        assert info.value.message == (
            "'[0].associated_data' provided for non-AEAD cipher suite rsa-2048"
        )
        with pytest.raises(UserError, match="unknown padding scheme: zzz"):
            await e.write("encrypt/r", {"plaintext": HELLO, "padding_scheme": "zzz"})
    asyncio.run(go())


def test_decrypt_negative_vectors() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        ct = (await e.write("encrypt/k", {"plaintext": HELLO})).data["ciphertext"]
        body = ct[len("vault:v1:"):]
        raw = bytearray(base64.b64decode(body))
        raw[-1] ^= 1
        tampered = "vault:v1:" + base64.b64encode(bytes(raw)).decode()
        truncated = "vault:v1:" + base64.b64encode(bytes(raw[:8])).decode()
        cases = [
            ("nope", "invalid ciphertext: no prefix"),
            ("vault:v1", "invalid ciphertext: wrong number of fields"),
            ("vault:vX:" + body, "invalid ciphertext: version number could not be decoded"),
            # a digit to str.isdigit() that int() refuses: was a 500 (ValueError)
            ("vault:v\u00b2:" + body, "invalid ciphertext: version number could not be decoded"),
            ("vault:v9:" + body, "invalid ciphertext: version is too new"),
            ("vault:v1:@@@@", "invalid ciphertext: could not decode base64"),
            (tampered, "cipher: message authentication failed"),
            (truncated, "invalid ciphertext length"),
        ]
        for bad, message in cases:
            with pytest.raises(UserError) as info:
                await e.write("decrypt/k", {"ciphertext": bad})
            assert info.value.message == message, bad
        for data in ({}, {"ciphertext": ""}):
            with pytest.raises(UserError, match="^missing ciphertext to decrypt$"):
                await e.write("decrypt/k", data)
        with pytest.raises(UserError, match="^encryption key not found$"):
            await e.write("decrypt/other", {"ciphertext": ct})
        assert await e.read("keys/other") is None
    asyncio.run(go())


def test_too_old_after_min_decryption_version() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        v1 = (await e.write("encrypt/k", {"plaintext": HELLO})).data["ciphertext"]
        await e.write("keys/k/rotate")
        await e.write("keys/k/config", {"min_decryption_version": 2})
        assert "1" not in (await e.read("keys/k")).data["keys"]
        with pytest.raises(CryptoError) as info:
            await e.write("decrypt/k", {"ciphertext": v1})
        assert info.value.message == "ciphertext or signature version is disallowed by policy (too old)"
        await e.write("keys/k/config", {"min_decryption_version": 1})
        assert (await e.write("decrypt/k", {"ciphertext": v1})).data == {"plaintext": HELLO}
    asyncio.run(go())


def test_hot_path_touches_no_storage() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        ct = (await e.write("encrypt/k", {"plaintext": HELLO})).data["ciphertext"]
        e.counting.calls.clear()
        for _ in range(5):
            await e.write("encrypt/k", {"plaintext": HELLO})
            await e.write("decrypt/k", {"ciphertext": ct})
            await e.write("encrypt/k", {"batch_input": [{"plaintext": HELLO}]})
        assert e.counting.calls == []
    asyncio.run(go())


# --- batches --------------------------------------------------------------------------------

def test_batch_encrypt_decrypt_order_and_references() -> None:
    async def go() -> None:
        e = await env()
        items = [{"plaintext": base64.b64encode(bytes([i])).decode(), "reference": f"r{i}"}
                 for i in range(20)]
        resp = await e.write("encrypt/k", {"batch_input": items, "plaintext": None})
        assert resp.status is None
        results = resp.data["batch_results"]
        assert [r["reference"] for r in results] == [f"r{i}" for i in range(20)]
        assert all(set(r) == {"ciphertext", "key_version", "reference"} for r in results)
        dec = await e.write("decrypt/k", {"batch_input": [
            {"ciphertext": r["ciphertext"], "reference": r["reference"]} for r in results
        ]})
        assert dec.status is None
        assert dec.data["batch_results"] == [
            {"plaintext": it["plaintext"], "reference": it["reference"]} for it in items
        ]
    asyncio.run(go())


def test_batch_partial_failure_statuses() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        items = [{"plaintext": HELLO, "reference": "good"}, {"plaintext": "***", "reference": "bad"}]
        resp = await e.write("encrypt/k", {"batch_input": items})
        assert resp.status == 400 and resp.warnings is None
        good, bad = resp.data["batch_results"]
        assert set(good) == {"ciphertext", "key_version", "reference"}
        assert bad == {"error": "illegal base64 data at input byte 0", "reference": "bad"}

        resp = await e.write("encrypt/k", {"batch_input": items, "partial_failure_response_code": 207})
        assert resp.status == 207
        for code in (0, 600, -1):
            resp = await e.write("encrypt/k",
                                 {"batch_input": items, "partial_failure_response_code": code})
            assert resp.status == 400
            assert resp.warnings == [
                "invalid HTTP response code override from partial_failure_response_code, "
                "reverting to 400"
            ]
        # Every item failed: the override is ignored, and so is its range check.
        resp = await e.write("encrypt/k", {"batch_input": [items[1]],
                                           "partial_failure_response_code": 207})
        assert resp.status == 400 and resp.warnings is None
    asyncio.run(go())


def test_batch_decrypt_items_always_have_plaintext() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        ct = (await e.write("encrypt/k", {"plaintext": HELLO})).data["ciphertext"]
        resp = await e.write("decrypt/k", {"batch_input": [
            {"ciphertext": ct}, {"ciphertext": ""}, {"ciphertext": "vault:v7:AAAA"},
        ], "partial_failure_response_code": "299"})
        assert resp.status == 299
        assert resp.data["batch_results"] == [
            {"plaintext": HELLO, "reference": ""},
            {"plaintext": "", "error": "missing ciphertext to decrypt", "reference": ""},
            {"plaintext": "", "error": "invalid ciphertext: version is too new", "reference": ""},
        ]
    asyncio.run(go())


def test_batch_internal_only_errors_give_500() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/r", {"type": "rsa-2048"})
        ct = (await e.write("encrypt/r", {"plaintext": HELLO})).data["ciphertext"]
        garbage = "vault:v1:" + base64.b64encode(b"\x01" * 256).decode()
        resp = await e.write("decrypt/r", {"batch_input": [{"ciphertext": ct}, {"ciphertext": garbage}]})
        assert resp.status == 500
        ok, bad = resp.data["batch_results"]
        assert ok["plaintext"] == HELLO and bad["plaintext"] == "" and bad["error"]
        with pytest.raises(InternalError):
            await e.write("decrypt/r", {"ciphertext": garbage})
    asyncio.run(go())


def test_batch_context_rule_and_empty_batch() -> None:
    async def go() -> None:
        e = await env()
        with pytest.raises(UserError, match="^missing batch input to process$"):
            await e.write("encrypt/k", {"batch_input": []})
        with pytest.raises(UserError) as info:
            await e.write("encrypt/k", {"batch_input": [{"plaintext": HELLO, "context": CTX},
                                                        {"plaintext": HELLO}]})
        assert info.value.message == "context should be set either in all the request blocks or in none"
        assert await e.stored() == []
        resp = await e.write("encrypt/d", {"batch_input": [{"plaintext": HELLO, "context": CTX},
                                                           {"plaintext": HELLO, "context": "YQ=="}]})
        assert resp.status is None
        assert (await e.read("keys/d")).data["derived"] is True
    asyncio.run(go())


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ("abc", "failed to parse batch input: source data must be an array or slice, got string"),
        ([1], "failed to parse batch input: [0] expected a map, got 'json.Number'"),
        ([{"plaintext": HELLO}, "x"], "failed to parse batch input: [1] expected a map, got 'string'"),
        ([{"context": CTX}], "failed to parse batch input: 1 error(s) decoding:\n\n"
                             "* '[0].plaintext' missing plaintext to encrypt"),
        ([{"plaintext": 5, "key_version": "1"}],
         "failed to parse batch input: 2 error(s) decoding:\n\n"
         "* '[0].key_version' expected type 'int', got unconvertible type 'string'\n"
         "* '[0].plaintext' expected type 'string', got unconvertible type 'json.Number'"),
        ([{"plaintext": None}], "failed to parse batch input: 1 error(s) decoding:\n\n"
                                "* '[0].plaintext' expected type 'string', got unconvertible "
                                "type '<nil>'"),
        ([{"plaintext": HELLO, "key_version": 1.5}],
         "failed to parse batch input: 1 error(s) decoding:\n\n* error decoding json.Number into "
         '[0].key_version: strconv.ParseInt: parsing "1.5": invalid syntax'),
    ],
)
def test_batch_strict_decoding_is_500(batch: object, message: str) -> None:
    async def go() -> None:
        e = await env()
        with pytest.raises(InternalError) as info:
            await e.write("encrypt/k", {"batch_input": batch})
        assert info.value.message == message
        assert await e.stored() == []

    asyncio.run(go())


def test_batch_all_items_bad_still_creates_the_key() -> None:
    async def go() -> None:
        # Vault upserts after the base64 pre-pass whatever it found (OpenBao 2.7.2 agrees).
        e = await env()
        resp = await e.write("encrypt/k", {"batch_input": [{"plaintext": "!"}, {"plaintext": "?"}]})
        assert resp.status == 400
        assert [r["error"] for r in resp.data["batch_results"]] == [
            "illegal base64 data at input byte 0"] * 2
        assert await e.stored() == ["archive/k", "policy/k"]
    asyncio.run(go())


def test_bad_associated_data_base64_is_internal() -> None:
    async def go() -> None:
        # Vault decodes associated_data lazily in the policy's factory: an InternalError.
        e = await env()
        await e.write("keys/k")
        msg = "unable to get associated_data/additional_data from factory[0]: " \
              "illegal base64 data at input byte 0"
        for path, body in (("encrypt/k", {"plaintext": HELLO}), ("decrypt/k", {"ciphertext": "x"}),
                           ("datakey/wrapped/k", {})):
            if path == "decrypt/k":
                body = {"ciphertext": (await e.write("encrypt/k", {"plaintext": HELLO})
                                       ).data["ciphertext"]}
            with pytest.raises(InternalError) as info:
                await e.write(path, {**body, "associated_data": "!"})
            assert info.value.message == msg, path
        resp = await e.write("encrypt/k", {"batch_input": [{"plaintext": HELLO,
                                                            "associated_data": "!"}]})
        assert resp.status == 500 and resp.data["batch_results"][0]["error"] == msg
    asyncio.run(go())


def test_decrypt_batch_missing_ciphertext_field_is_500() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        with pytest.raises(InternalError) as info:
            await e.write("decrypt/k", {"batch_input": [{"reference": "x"}]})
        assert info.value.message == (
            "failed to parse batch input: 1 error(s) decoding:\n\n"
            "* '[0].ciphertext' missing ciphertext to decrypt"
        )
    asyncio.run(go())


# --- rewrap ---------------------------------------------------------------------------------

def test_rewrap_single_and_batch() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        v1 = (await e.write("encrypt/k", {"plaintext": HELLO})).data["ciphertext"]
        same = await e.write("rewrap/k", {"ciphertext": v1})
        assert same.data["key_version"] == 1 and same.data["ciphertext"] != v1  # fresh nonce
        await e.write("keys/k/rotate")
        resp = await e.write("rewrap/k", {"ciphertext": v1})
        assert resp.data["key_version"] == 2 and resp.data["ciphertext"].startswith("vault:v2:")
        assert (await e.write("decrypt/k", {"ciphertext": resp.data["ciphertext"]})).data == {
            "plaintext": HELLO}

        batch = await e.write("rewrap/k", {"batch_input": [
            {"ciphertext": v1, "reference": "a"}, {"ciphertext": "junk", "reference": "b"},
            {"reference": "c"},
        ], "partial_failure_response_code": 299})
        assert batch.status is None
        a, b, c = batch.data["batch_results"]
        assert a["key_version"] == 2 and a["reference"] == "a"
        assert b == {"error": "invalid ciphertext: no prefix", "reference": "b"}
        assert c == {"error": "missing ciphertext to decrypt", "reference": "c"}
        with pytest.raises(UserError, match="^missing ciphertext to decrypt$"):
            await e.write("rewrap/k", {})
        with pytest.raises(UserError, match="^encryption key not found$"):
            await e.write("rewrap/nope", {"ciphertext": v1})
        with pytest.raises(UserError, match="^invalid ciphertext: no prefix$"):
            await e.write("rewrap/k", {"ciphertext": "junk"})
    asyncio.run(go())


# --- datakey --------------------------------------------------------------------------------

def test_datakey() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        resp = await e.write("datakey/plaintext/k", {"bits": 512})
        assert set(resp.data) == {"ciphertext", "key_version", "plaintext"}
        assert len(base64.b64decode(resp.data["plaintext"])) == 64
        dec = await e.write("decrypt/k", {"ciphertext": resp.data["ciphertext"]})
        assert dec.data["plaintext"] == resp.data["plaintext"]
        wrapped = await e.write("datakey/wrapped/k", {"bits": "128"})
        assert set(wrapped.data) == {"ciphertext", "key_version"}
        dec = await e.write("decrypt/k", {"ciphertext": wrapped.data["ciphertext"]})
        assert len(base64.b64decode(dec.data["plaintext"])) == 16
    asyncio.run(go())


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("datakey/other/k", {}, "Invalid path, must be 'plaintext' or 'wrapped'"),
        ("datakey/plaintext/nope", {}, "encryption key not found"),
        ("datakey/plaintext/k", {"bits": 64}, "invalid bit length"),
        ("datakey/plaintext/k", {"context": "!!"}, "failed to base64-decode context"),
        ("datakey/plaintext/k", {"nonce": "!!"}, "failed to base64-decode nonce"),
        ("datakey/plaintext/k", {"bits": "lots"}, "Field validation failed"),
    ],
)
def test_datakey_errors(path: str, data: dict, message: str) -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        with pytest.raises(UserError) as info:
            await e.write(path, data)
        assert str(info.value).startswith(message)
        assert await e.read("keys/nope") is None

    asyncio.run(go())


# --- helpers --------------------------------------------------------------------------------

def test_b64decode_matches_go() -> None:
    assert b64decode("") == b""
    assert b64decode(HELLO) == b"hello world"
    assert b64decode("aGVs\nbG8=") == b"hello"  # Go skips CR/LF
    for bad, offset in (("YQ", 0), ("YWJj=", 4), ("YQ==YQ==", 4), ("AAAA====", 4), ("é", 0)):
        with pytest.raises(CryptoError) as info:
            b64decode(bad)
        assert info.value.message == f"illegal base64 data at input byte {offset}", bad


def test_decode_items_defaults_and_ignores_unknown_fields() -> None:
    items = decode_items([{"plaintext": "", "extra": 1, "context": None}],
                         {"plaintext": "string", "context": "string", "key_version": "int"})
    assert items == [{"plaintext": "", "context": "", "key_version": 0}]


def test_key_exists_and_datakey_associated_data() -> None:
    async def go() -> None:
        e = await env()
        route = next(r for r in e.b.routes if r.pattern.startswith("encrypt/"))
        assert route.existence_check is not None
        fd_missing = FieldData({"name": "k"}, route.fields)
        assert await route.existence_check(Request(UPDATE, "encrypt/k", {}, e.storage), fd_missing) is False
        await e.write("keys/k")
        assert await route.existence_check(Request(UPDATE, "encrypt/k", {}, e.storage), fd_missing) is True
        ad = "Y29udGV4dA=="
        resp = await e.write("datakey/plaintext/k", {"associated_data": ad})
        with pytest.raises(CryptoError, match="message authentication failed"):
            await e.write("decrypt/k", {"ciphertext": resp.data["ciphertext"]})
        dec = await e.write("decrypt/k", {"ciphertext": resp.data["ciphertext"], "associated_data": ad})
        assert dec.data["plaintext"] == resp.data["plaintext"]
    asyncio.run(go())


# --- the plain batch path answers as the per-item path ------------------------------------------

_BAD_B64 = ["aGVsbG8", "a===", "!!!!", "aGVs\nbG8=", "aGVsbG8=\n", "ab=c"]


def _without_ciphertexts(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "ciphertext"} for r in results]


@pytest.mark.parametrize("key_type", ["aes256-gcm96", "aes128-gcm96", "chacha20-poly1305"])
def test_plain_batches_answer_as_the_per_item_path(key_type: str) -> None:
    """Items holding only plaintext/ciphertext (+ reference) take the plain path; the same
    items with an empty `nonce` (a no-op) take the per-item path. Both answer alike: the same
    statuses, errors, references and versions, for good and bad items mixed."""
    async def go() -> None:
        e = await env()
        await e.write("keys/k", {"type": key_type})
        await e.write("keys/k/rotate", {})
        await e.write("keys/k/rotate", {})
        plain = [{"plaintext": HELLO, "reference": "a"}, {"plaintext": ""}]
        plain += [{"plaintext": b, "reference": f"bad{i}"} for i, b in enumerate(_BAD_B64)]
        slow = [{**item, "nonce": ""} for item in plain]
        for code in (None, 207):
            extra = {} if code is None else {"partial_failure_response_code": code}
            fast_resp = await e.write("encrypt/k", {"batch_input": plain, **extra})
            slow_resp = await e.write("encrypt/k", {"batch_input": slow, **extra})
            assert fast_resp.status == slow_resp.status == (400 if code is None else 207)
            fast, slowr = fast_resp.data["batch_results"], slow_resp.data["batch_results"]
            assert _without_ciphertexts(fast) == _without_ciphertexts(slowr)
            assert fast[0]["ciphertext"].startswith("vault:v3:") and fast[0]["key_version"] == 3
        good = (await e.write("encrypt/k", {"batch_input": plain[:2]})).data["batch_results"]
        v1 = (await e.write("encrypt/k", {"batch_input": [{"plaintext": HELLO, "key_version": 1}]})
              ).data["batch_results"][0]["ciphertext"]
        await e.write("keys/k/config", {"min_decryption_version": 2})
        tampered = good[0]["ciphertext"][:-4] + ("AAAA" if not good[0]["ciphertext"].endswith(
            "AAAA") else "BBBB")
        cts = [good[0]["ciphertext"], good[1]["ciphertext"], v1, tampered, "vault:v9:AAAA",
               "vault:v0:" + good[0]["ciphertext"][9:], "vault:v3:", "vault:v3:AAAA",
               "vault:v3:!!!!", "vault:vx:AAAA", "nope", "vault:v3" , "vault:v03:" +
               good[0]["ciphertext"][9:], "vault:v3:" + good[0]["ciphertext"][9:] + "\n"]
        plain_d = [{"ciphertext": c, "reference": str(i)} for i, c in enumerate(cts)]
        slow_d = [{**item, "nonce": ""} for item in plain_d]
        fast_resp = await e.write("decrypt/k", {"batch_input": plain_d})
        slow_resp = await e.write("decrypt/k", {"batch_input": slow_d})
        assert fast_resp.status == slow_resp.status == 400
        assert fast_resp.data == slow_resp.data
        results = fast_resp.data["batch_results"]
        assert [r["plaintext"] for r in results[:2]] == [HELLO, ""]
        assert results[2]["error"] and results[3]["error"] and results[12]["plaintext"] == HELLO
        # all good: 200 on both paths
        ok = await e.write("decrypt/k", {"batch_input": plain_d[:2]})
        assert ok.status is None and [r["plaintext"] for r in ok.data["batch_results"]] == [
            HELLO, ""]
    asyncio.run(go())


def test_plain_batches_span_slices() -> None:
    """More items than one slice of the plain path (it yields between slices): order and
    references hold."""
    async def go() -> None:
        from transit.engines.transit.encrypt import _PLAIN_SLICE

        e = await env()
        n = _PLAIN_SLICE * 2 + 3
        items = [{"plaintext": base64.b64encode(str(i).encode()).decode(), "reference": str(i)}
                 for i in range(n)]
        items[_PLAIN_SLICE + 1]["plaintext"] = "!!"
        resp = await e.write("encrypt/k", {"batch_input": items})
        results = resp.data["batch_results"]
        assert resp.status == 400 and [r["reference"] for r in results] == [str(i) for i in range(n)]
        assert "error" in results[_PLAIN_SLICE + 1]
        good = [{"ciphertext": r["ciphertext"], "reference": r["reference"]}
                for r in results if "ciphertext" in r]
        dec = (await e.write("decrypt/k", {"batch_input": good})).data["batch_results"]
        assert [b64decode(r["plaintext"]).decode() for r in dec] == [
            r["reference"] for r in good]
    asyncio.run(go())
