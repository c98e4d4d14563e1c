"""Unit tests: `sign`, `verify` and `hmac` (spec §3.4-3.5, §4.14-4.16)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac as _hmac

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.unit.engines.transit.ops_helpers import b64, fails, new_backend, read, snapshot, write
from transit.errors import InternalError, UserError

MSG = b64("hello world")


async def _key(b, name: str, **params) -> None:
    await write(b, f"keys/{name}", params)


async def _export(b, kind: str, name: str) -> dict:
    return (await read(b, f"export/{kind}/{name}"))["keys"]


def _tamper(mac: str) -> str:
    """The same HMAC with one significant base64 character changed."""
    c = "B" if mac[-5] == "A" else "A"
    return mac[:-5] + c + mac[-4:]


def test_sign_verify_ed25519_matches_cryptography() -> None:
    async def go(b):
        await _key(b, "ed", type="ed25519", exportable=True)
        out = await write(b, "sign/ed", {"input": MSG})
        assert out["key_version"] == 1 and out["signature"].startswith("vault:v1:")
        raw = base64.b64decode((await _export(b, "signing-key", "ed"))["1"])
        priv = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
        want = priv.sign(b"hello world")
        assert out["signature"] == "vault:v1:" + base64.b64encode(want).decode()
        assert (await write(b, "verify/ed", {"input": MSG, "signature": out["signature"]})) == {
            "valid": True}
        assert (await write(b, "verify/ed", {"input": b64("other"),
                                             "signature": out["signature"]})) == {"valid": False}

    asyncio.run(go(new_backend()))


def test_sign_ecdsa_sha384_url_algorithm_and_jws() -> None:
    async def go(b):
        await _key(b, "ec", type="ecdsa-p256", exportable=True)
        pem = (await _export(b, "signing-key", "ec"))["1"]
        pub = serialization.load_pem_private_key(pem.encode(), None).public_key()
        sig = (await write(b, "sign/ec/sha2-384", {"input": MSG}))["signature"]
        pub.verify(base64.b64decode(sig.split(":")[2]), b"hello world", ec.ECDSA(hashes.SHA384()))
        assert (await write(b, "verify/ec/sha2-384", {"input": MSG, "signature": sig}))["valid"]
        # the URL algorithm wins over the body
        assert (await write(b, "verify/ec/sha2-384", {"input": MSG, "signature": sig,
                                                      "hash_algorithm": "sha2-256"}))["valid"]
        assert not (await write(b, "verify/ec", {"input": MSG, "signature": sig}))["valid"]
        jws = (await write(b, "sign/ec", {"input": MSG, "marshaling_algorithm": "jws"}))
        body = jws["signature"].split(":")[2]
        assert "=" not in body and len(base64.urlsafe_b64decode(body + "==")) == 64
        assert (await write(b, "verify/ec", {"input": MSG, "signature": jws["signature"],
                                             "marshaling_algorithm": "jws"}))["valid"]
        # prehashed input
        digest = hashlib.sha256(b"hello world").digest()
        pre = await write(b, "sign/ec", {"input": b64(digest), "prehashed": True})
        assert (await write(b, "verify/ec", {"input": MSG, "signature": pre["signature"]}))[
            "valid"]

    asyncio.run(go(new_backend()))


def test_derived_ed25519_single_and_batch_field_names() -> None:
    async def go(b):
        await _key(b, "d", type="ed25519", derived=True)
        ctx = b64("ctx")
        single = await write(b, "sign/d", {"input": MSG, "context": ctx})
        assert set(single) == {"signature", "key_version", "public_key"}
        batch = (await write(b, "sign/d", {"batch_input": [
            {"input": MSG, "context": ctx, "reference": "r1"}]}))["batch_results"]
        assert set(batch[0]) == {"signature", "key_version", "publickey", "reference"}
        assert batch[0]["publickey"] == single["public_key"]
        assert batch[0]["signature"] == single["signature"]  # ed25519 is deterministic
        pub = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(single["public_key"]))
        pub.verify(base64.b64decode(single["signature"].split(":")[2]), b"hello world")
        assert (await write(b, "verify/d", {"input": MSG, "signature": single["signature"],
                                            "context": ctx}))["valid"]
        assert not (await write(b, "verify/d", {"input": MSG, "signature": single["signature"],
                                                "context": b64("other")}))["valid"]

    asyncio.run(go(new_backend()))


def test_sign_batch_items_and_errors() -> None:
    async def go(b):
        await _key(b, "ed", type="ed25519")
        res = (await write(b, "sign/ed", {"input": None, "batch_input": [
            {"input": MSG, "reference": "a"},
            {"input": "%%%", "reference": "b"},
            {"reference": "c"},
            {"input": MSG, "context": "%%"},
        ]}))["batch_results"]
        assert res[0]["key_version"] == 1 and res[0]["reference"] == "a"
        assert res[1] == {"error": "unable to decode input as base64: illegal base64 data at "
                                   "input byte 0", "key_version": 0, "reference": "b"}
        assert res[2] == {"error": "missing input", "key_version": 0, "reference": "c"}
        assert res[3] == {"error": "failed to base64-decode context", "key_version": 0,
                          "reference": ""}
        # verify batch: tampered signature is valid false, not an error
        sig = res[0]["signature"]
        bad = sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")
        vres = (await write(b, "verify/ed", {"batch_input": [
            {"input": MSG, "signature": sig, "reference": "x"},
            {"input": MSG, "signature": bad},
            {"input": MSG, "signature": "nope"},
        ]}))["batch_results"]
        assert vres[0] == {"valid": True, "reference": "x"}
        assert vres[1] == {"valid": False, "reference": ""}
        assert vres[2] == {"valid": False, "error": "invalid signature: no prefix",
                           "reference": ""}

    asyncio.run(go(new_backend()))


def test_sign_request_errors() -> None:
    async def go(b):
        await _key(b, "aes")
        await _key(b, "ed", type="ed25519")
        cases = [
            ("sign/missing", {"input": MSG}, "signing key not found"),
            ("sign/aes", {"input": MSG}, "key type aes256-gcm96 does not support signing"),
            ("sign/ed", {"input": MSG, "hash_algorithm": "md5"}, 'invalid hash algorithm "md5"'),
            ("sign/ed/sha9", {"input": MSG}, 'invalid hash algorithm "sha9"'),
            ("sign/ed", {"input": MSG, "marshaling_algorithm": "der"},
             'invalid marshaling type "der"'),
            ("sign/ed", {"input": MSG, "salt_length": "lots"},
             "salt length neither 'auto', 'hash', nor an int: lots"),
            ("sign/ed", {"input": MSG, "salt_length": "-2"}, "salt length is invalid: -2"),
            ("sign/ed", {"input": "***"},
             "unable to decode input as base64: illegal base64 data at input byte 0"),
            ("sign/ed", {"input": MSG, "context": "***"}, "failed to base64-decode context"),
            ("sign/ed", {"input": MSG, "hash_algorithm": "none"},
             "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15"),
            ("sign/ed", {"input": MSG, "hash_algorithm": "sha2-512"},
             "error generating Ed25519 options: hash algorithm of SHA2 512 is not supported "
             "feature"),
            ("sign/ed", {"batch_input": []}, "missing batch input to process"),
            ("verify/missing", {"input": MSG, "signature": "vault:v1:AA=="},
             "signature verification key not found"),
            ("verify/aes", {"input": MSG, "signature": "vault:v1:AA=="},
             "key type aes256-gcm96 does not support verification"),
            ("verify/ed", {"input": MSG, "signature": "vault:v9:AA=="},
             "invalid signature: version is too new"),
            ("verify/ed", {"input": MSG, "signature": "vault:v1"},
             "invalid signature: wrong number of fields"),
            ("verify/ed", {"input": MSG, "signature": "vault:vx:AA"},
             "invalid signature: version number could not be decoded"),
        ]
        before = await snapshot(b)
        for path, data, msg in cases:
            assert (await fails(b, path, data, exc=UserError)).message == msg, (path, data)
        # SignWithOptions' own errors are returned bare by a single sign: 500s.
        err = await fails(b, "sign/ed", {"input": MSG, "key_version": 2}, exc=InternalError)
        assert err.message == "requested version for signing is higher than the latest key version"
        for data in ({"batch_input": "nope"}, {"batch_input": [{"input": True}]},
                     {"batch_input": [3]}):
            err = await fails(b, "sign/ed", data, exc=InternalError)
            assert err.message.startswith("failed to parse batch input: ")
        assert await snapshot(b) == before

    asyncio.run(go(new_backend()))


def test_verify_shape_errors() -> None:
    async def go(b):
        await _key(b, "ed", type="ed25519")
        cases = [
            ({"input": MSG}, "neither a 'signature' nor an 'hmac' were given to verify"),
            ({"batch_input": [{"input": MSG, "signature": "s"}, {"input": MSG, "hmac": "h"}]},
             "elements of batch_input must all provide 'signature' or all provide 'hmac'"),
            ({"batch_input": [{"input": MSG, "signature": "s"}, {"input": MSG}]},
             "some elements of batch_input are missing 'signature'"),
            ({"batch_input": [{"input": MSG, "hmac": "h"}, {"input": MSG}]},
             "some elements of batch_input are missing 'hmac'"),
            ({"batch_input": [{"input": MSG}]},
             "no batch_input elements have 'signature' or 'hmac'"),
            ({"batch_input": []}, "missing batch input to process"),
        ]
        for data, msg in cases:
            assert (await fails(b, "verify/ed", data, exc=UserError)).message == msg, data
        # Vault's "provide one of 'signature' or 'hmac'" is dead code: an item with both
        # counts as a signature item (its `if/else if`), so the signature is checked.
        both = {"input": MSG, "signature": "vault:v1:AA==", "hmac": "vault:v1:AA=="}
        assert await write(b, "verify/ed", both) == {"valid": False}

    asyncio.run(go(new_backend()))


def test_hmac_generate_and_verify() -> None:
    async def go(b):
        await _key(b, "k", exportable=True)
        key = base64.b64decode((await _export(b, "hmac-key", "k"))["1"])
        want = _hmac.new(key, b"hello world", hashlib.sha256).digest()
        out = await write(b, "hmac/k", {"input": MSG})
        assert out == {"hmac": "vault:v1:" + base64.b64encode(want).decode()}
        want512 = _hmac.new(key, b"hello world", hashlib.sha3_512).digest()
        assert (await write(b, "hmac/k/sha3-512", {"input": MSG, "algorithm": "sha2-224"}))[
            "hmac"] == "vault:v1:" + base64.b64encode(want512).decode()
        mac = out["hmac"]
        assert (await write(b, "verify/k", {"input": MSG, "hmac": mac})) == {"valid": True}
        assert (await write(b, "verify/k", {"input": b64("x"), "hmac": mac})) == {"valid": False}
        # HMAC verification uses `algorithm`, not `hash_algorithm` (Vault quirk)
        mac384 = (await write(b, "hmac/k", {"input": MSG, "algorithm": "sha2-384"}))["hmac"]
        assert (await write(b, "verify/k/sha2-384", {"input": MSG, "hmac": mac384}))["valid"]
        assert (await write(b, "verify/k", {"input": MSG, "hmac": mac384,
                                            "algorithm": "sha2-384"}))["valid"]
        # batch: always 200; a false `valid` is omitted
        res = (await write(b, "verify/k", {"batch_input": [
            {"input": MSG, "hmac": mac, "reference": "ok"},
            {"input": MSG, "hmac": _tamper(mac)},
            {"input": MSG, "hmac": "bogus", "reference": "e"},
        ]}))["batch_results"]
        assert res == [{"valid": True, "reference": "ok"}, {"reference": ""},
                       {"error": "invalid HMAC to verify: no prefix", "reference": "e"}]
        gen = (await write(b, "hmac/k", {"batch_input": [
            {"input": MSG, "reference": "1"}, {"input": "@@"}, {"reference": "3"}]}))
        assert gen["batch_results"] == [
            {"hmac": mac, "reference": "1"},
            {"error": "unable to decode input as base64: illegal base64 data at input byte 0",
             "reference": ""},
            {"error": "missing input for HMAC", "reference": "3"},
        ]

    asyncio.run(go(new_backend()))


def test_hmac_versions_and_errors() -> None:
    async def go(b):
        await _key(b, "k")
        await write(b, "keys/k/rotate")
        await write(b, "keys/k/rotate")
        v1 = (await write(b, "hmac/k", {"input": MSG, "key_version": 1}))["hmac"]
        assert v1.startswith("vault:v1:")
        await write(b, "keys/k/config", {"min_decryption_version": 2,
                                         "min_encryption_version": 3})
        cases = [
            ("hmac/nokey", {"input": MSG}, "encryption key not found"),
            ("hmac/k", {"input": MSG, "key_version": 2},
             "cannot generate HMAC: version is too old (disallowed by policy)"),
            ("hmac/k", {"input": MSG, "key_version": 9},
             "key version does not exist; latest key version is 3"),
            ("hmac/k", {}, "missing input for HMAC"),
            ("hmac/k", {"input": "?"},
             "unable to decode input as base64: illegal base64 data at input byte 0"),
            ("hmac/k", {"input": MSG, "algorithm": "md5"}, "unsupported algorithm '\\x00'"),
            ("hmac/k", {"batch_input": []}, "missing batch input to process"),
            ("verify/k", {"input": MSG, "hmac": v1},
             "cannot verify HMAC: version is too old (disallowed by policy)"),
            ("verify/k", {"input": MSG, "hmac": "vault:v7:AA=="}, "invalid HMAC: version is too new"),
            ("verify/k", {"input": MSG, "hmac": "vault:v3"}, "invalid HMAC: wrong number of fields"),
            ("verify/k", {"input": MSG, "hmac": "vault:vX:AA=="},
             "invalid HMAC: version number could not be decoded"),
            ("verify/k", {"input": MSG, "hmac": "vault:v3:!"},
             "unable to decode verification HMAC as base64: illegal base64 data at input byte 0"),
            ("verify/k", {"input": MSG, "hmac": "vault:v3:AA==", "algorithm": "md5"},
             "unsupported algorithm '\\x00'"),
            ("verify/nokey", {"input": MSG, "hmac": "vault:v3:AA=="}, "encryption key not found"),
        ]
        for path, data, msg in cases:
            assert (await fails(b, path, data, exc=UserError)).message == msg, (path, data)
        # the latest version is always allowed, whatever min_encryption_version says
        assert (await write(b, "hmac/k", {"input": MSG, "key_version": 3}))["hmac"].startswith(
            "vault:v3:")

    asyncio.run(go(new_backend()))


def test_hmac_key_type_uses_key_itself() -> None:
    async def go(b):
        await _key(b, "h", type="hmac", key_size=48, exportable=True)
        key = base64.b64decode((await _export(b, "hmac-key", "h"))["1"])
        assert len(key) == 48
        want = _hmac.new(key, b"hello world", hashlib.sha256).digest()
        assert (await write(b, "hmac/h", {"input": MSG}))["hmac"] == (
            "vault:v1:" + base64.b64encode(want).decode())

    asyncio.run(go(new_backend()))
