"""Unit tests: BYOK (spec §4.20): wrapping key, import, import_version, byok-export.

RSA-4096 generation is slow, so one wrapping-key policy is generated per test session and
seeded into each fresh backend (policies in the store are immutable, so sharing is safe).
"""

from __future__ import annotations

import asyncio
import base64
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from tests import vectors as v
from tests.unit.engines.transit.ops_helpers import (
    b64,
    call,
    fails,
    new_backend,
    read,
    snapshot,
    write,
)
from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.engines.transit.byok import WRAPPING_KEY_NAME
from transit.errors import InternalError, UserError
from transit.logical import LIST, READ

_WRAPPING: list[Policy] = []
_HASHES = {"SHA1": hashes.SHA1, "SHA256": hashes.SHA256, "SHA512": hashes.SHA512}


def wrapping_policy() -> Policy:
    if not _WRAPPING:
        _WRAPPING.append(Policy.create(WRAPPING_KEY_NAME, KeyType.RSA4096))
    return _WRAPPING[0]


async def seeded(b):
    p = wrapping_policy()
    await b.policies.modify(p.name, lambda _: (p, None))
    return b


def wrap(target: bytes, pem: str, hash_name: str = "SHA256", eph: bytes | None = None) -> str:
    pub = serialization.load_pem_public_key(pem.encode())
    h = _HASHES[hash_name.upper()]()
    eph = eph if eph is not None else os.urandom(32)
    oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
    kwp_key = eph if len(eph) == 32 else os.urandom(32)  # a bad eph fails before KWP anyway
    return base64.b64encode(pub.encrypt(eph, oaep) + aes_key_wrap_with_padding(kwp_key, target)
                            ).decode()


def run_seeded(fn):
    async def go(b):
        await seeded(b)
        return await fn(b)

    return asyncio.run(go(new_backend()))


async def wrapping_pem(b) -> str:
    return (await read(b, "wrapping_key"))["public_key"]


def test_wrapping_key_created_lazily_once() -> None:
    async def go(b):
        assert await b.policies.get(WRAPPING_KEY_NAME) is None
        pem = await wrapping_pem(b)
        assert pem.startswith("-----BEGIN PUBLIC KEY-----") and pem.endswith("-----\n")
        pub = serialization.load_pem_public_key(pem.encode())
        assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 4096
        assert await wrapping_pem(b) == pem
        assert (await call(b, "keys", op=LIST)).data == {"keys": ["import/"]}

    asyncio.run(go(new_backend()))


def test_import_aes256_known_key_decrypts_offline_ciphertext() -> None:
    async def go(b):
        pem = await wrapping_pem(b)
        assert await write(b, "keys/k/import", {"ciphertext": wrap(v.K, pem),
                                                "exportable": True}) is None
        info = await read(b, "keys/k")
        assert info["imported_key"] is True and info["type"] == "aes256-gcm96"
        assert (await write(b, "decrypt/k", {"ciphertext": v.ZERO_NONCE_CT}))["plaintext"] == (
            v.PLAINTEXT_B64)
        nonce = os.urandom(12)
        ct = nonce + AESGCM(v.K).encrypt(nonce, b"offline", None)
        got = await write(b, "decrypt/k", {"ciphertext": "vault:v1:" + b64(ct)})
        assert got["plaintext"] == b64("offline")
        assert (await read(b, "export/encryption-key/k"))["keys"] == {"1": v.K_B64}
        # a fresh hmac_key, not the key itself
        assert (await read(b, "export/hmac-key/k"))["keys"]["1"] != v.K_B64

    run_seeded(go)


def test_import_derived_and_hash_functions() -> None:
    async def go(b):
        pem = await wrapping_pem(b)
        await write(b, "keys/d/import", {"ciphertext": wrap(v.K, pem, "SHA1"),
                                         "hash_function": "sha1", "derived": True})
        ctx = b"my-context"
        dk = HKDF(hashes.SHA256(), 32, salt=None, info=ctx).derive(v.K)
        nonce = os.urandom(12)
        ct = "vault:v1:" + b64(nonce + AESGCM(dk).encrypt(nonce, b"hi", None))
        assert (await write(b, "decrypt/d", {"ciphertext": ct, "context": b64(ctx)}))[
            "plaintext"] == b64("hi")
        await write(b, "keys/s/import", {"ciphertext": wrap(v.K, pem, "SHA512"),
                                         "hash_function": "SHA512", "type": "CHACHA20-POLY1305"})
        assert (await read(b, "keys/s"))["type"] == "chacha20-poly1305"

    run_seeded(go)


def test_import_ed25519_known_seed_signs_like_cryptography() -> None:
    async def go(b):
        seed = bytes(range(100, 132))
        priv = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        der = priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        await write(b, "keys/ed/import", {"type": "ed25519",
                                          "ciphertext": wrap(der, await wrapping_pem(b))})
        sig = (await write(b, "sign/ed", {"input": v.PLAINTEXT_B64}))["signature"]
        assert sig == "vault:v1:" + b64(priv.sign(b"hello world"))
        pub = priv.public_key().public_bytes_raw()
        assert (await read(b, "keys/ed"))["keys"]["1"]["public_key"] == b64(pub)

    run_seeded(go)


def test_import_public_key_only_then_private_half() -> None:
    async def go(b):
        priv = ec.generate_private_key(ec.SECP256R1())
        pub_pem = priv.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        await write(b, "keys/ec/import", {"type": "ecdsa-p256", "public_key": pub_pem})
        sig = priv.sign(b"hello world", ec.ECDSA(hashes.SHA256()))
        assert (await write(b, "verify/ec", {"input": v.PLAINTEXT_B64,
                                             "signature": "vault:v1:" + b64(sig)}))["valid"]
        # From SignWithOptions, returned bare by Vault's single sign: a 500.
        err = await fails(b, "sign/ec", {"input": v.PLAINTEXT_B64}, exc=InternalError)
        assert "private part" in err.message
        der = priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        await write(b, "keys/ec/import_version", {"version": 1,
                                                  "ciphertext": wrap(der, await wrapping_pem(b))})
        sig2 = (await write(b, "sign/ec", {"input": v.PLAINTEXT_B64}))["signature"]
        priv.public_key().verify(base64.b64decode(sig2.split(":")[2]), b"hello world",
                                 ec.ECDSA(hashes.SHA256()))

    run_seeded(go)


def test_import_version_adds_versions() -> None:
    async def go(b):
        pem = await wrapping_pem(b)
        await write(b, "keys/k/import", {"ciphertext": wrap(v.K, pem), "exportable": True})
        k2 = os.urandom(32)
        assert await write(b, "keys/k/import_version", {"ciphertext": wrap(k2, pem)}) is None
        assert (await read(b, "export/encryption-key/k"))["keys"] == {"1": v.K_B64, "2": b64(k2)}
        await write(b, "keys/plain")
        cases = [
            ("keys/nope/import_version",
             "no key found with name nope; to import a new key, use the import/ endpoint"),
            ("keys/plain/import_version",
             "the import_version endpoint can only be used with an imported key"),
        ]
        for path, msg in cases:
            err = await fails(b, path, {"ciphertext": wrap(k2, pem)}, exc=InternalError)
            assert err.message == msg

    run_seeded(go)


def test_import_errors_store_nothing() -> None:
    async def go(b):
        pem = await wrapping_pem(b)
        await write(b, "keys/exists")
        good = wrap(v.K, pem)
        short_eph = wrap(v.K, pem, eph=os.urandom(16))
        blob = base64.b64decode(good)
        bad_kwp = base64.b64encode(blob[:512] + bytes(len(blob) - 512)).decode()
        before = await snapshot(b)
        cases_500 = [
            ({"ciphertext": good, "convergent_encryption": False},
             "import cannot be used on keys with convergent encryption enabled"),
            ({"ciphertext": good, "auto_rotate_period": "2h"},
             "allow_rotation must be set to true if auto-rotation is enabled"),
            ({"ciphertext": "%%%"}, "illegal base64 data at input byte 0"),
            ({"ciphertext": b64(b"x" * 100)}, "provided ciphertext is too short"),
            ({"ciphertext": base64.b64encode(bytes(600)).decode()},
             "crypto/rsa: decryption error"),
            ({"ciphertext": good, "hash_function": "SHA1"}, "crypto/rsa: decryption error"),
            ({"ciphertext": short_eph}, "expected ephemeral AES key to be 256-bit"),
            ({"ciphertext": wrap(v.K[:16], pem)},
             "error importing key: invalid key size 16 bytes for key type aes256-gcm96"),
            ({"public_key": "x"}, "provided type does not support public_key import"),
            ({"type": "ed25519", "ciphertext": wrap(b"not der", pem)}, None),
        ]
        for data, msg in cases_500:
            err = await fails(b, "keys/new/import", data, exc=InternalError)
            if msg is not None:
                assert err.message == msg, data
        err = await fails(b, "keys/new/import", {"ciphertext": bad_kwp}, exc=InternalError)
        assert "unwrap" in err.message
        err = await fails(b, "keys/exists/import", {"ciphertext": good}, exc=InternalError)
        assert err.message.startswith("the import path cannot be used with an existing key")
        cases_400 = [
            ({"ciphertext": good, "type": "rot13"}, "unknown key type: rot13"),
            ({"ciphertext": good, "hash_function": "MD5"}, "unknown hash function: MD5"),
        ]
        for data, msg in cases_400:
            assert (await fails(b, "keys/new/import", data, exc=UserError)).message == msg
        assert await snapshot(b) == before
        assert await b.policies.get("new") is None

    run_seeded(go)


def test_byok_export_round_trip_between_mounts() -> None:
    """Mount B wraps its key for mount A's wrapping key (imported into B as a public key)."""
    async def go(a):
        b = new_backend()
        a_pem = await wrapping_pem(a)
        await write(b, "keys/a-wrap/import", {"type": "rsa-4096", "public_key": a_pem + "\n"})
        await write(b, "keys/src", {"exportable": True})
        await write(b, "keys/src/rotate")
        out = await read(b, "byok-export/a-wrap/src")
        assert out["name"] == "src" and out["type"] == "aes256-gcm96"
        assert sorted(out["keys"]) == ["1", "2"]
        latest = await read(b, "byok-export/a-wrap/src/latest", {"hash": "sha512"})
        assert list(latest["keys"]) == ["2"]
        # A can import what B exported
        await write(a, "keys/moved/import", {"ciphertext": out["keys"]["1"], "exportable": True})
        want = (await read(b, "export/encryption-key/src/1"))["keys"]["1"]
        assert (await read(a, "export/encryption-key/moved"))["keys"]["1"] == want
        await write(a, "keys/moved2/import", {"ciphertext": latest["keys"]["2"],
                                              "hash_function": "SHA512"})
        # and it can unwrap by hand with its private key, as the import format says
        priv = wrapping_policy().keys[1].rsa_private()
        blob = base64.b64decode(out["keys"]["2"])
        h = hashes.SHA256()
        eph = priv.decrypt(blob[:512], padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
        want2 = (await read(b, "export/encryption-key/src/2"))["keys"]["2"]
        assert aes_key_unwrap_with_padding(eph, blob[512:]) == base64.b64decode(want2)

    run_seeded(go)


def test_byok_export_errors() -> None:
    async def go(b):
        await write(b, "keys/aes", {"exportable": True})
        await write(b, "keys/ec", {"type": "ecdsa-p256"})
        await write(b, "keys/rsa", {"type": "rsa-2048"})
        await write(b, "keys/secret")
        cases_500 = [
            ("byok-export/none/aes", "no such destination key to export to"),
            ("byok-export/rsa/none", "no such source key for export"),
            ("byok-export/aes/aes",
             "key wrapping (requring message signing) is not supported for key type aes256-gcm96"),
            ("byok-export/ec/aes", "unsupported key type in use; must be a rsa key"),
        ]
        for path, msg in cases_500:
            assert (await fails(b, path, op=READ, exc=InternalError)).message == msg, path
        err = await fails(b, "byok-export/rsa/aes", {"hash": "md5"}, op=READ, exc=InternalError)
        assert err.message == "unknown hash function: md5"
        cases_400 = [
            ("byok-export/rsa/secret", "key is not exportable"),
            ("byok-export/rsa/aes/x", "invalid key version"),
            ("byok-export/rsa/aes/v3", "version does not exist or cannot be found"),
        ]
        for path, msg in cases_400:
            assert (await fails(b, path, op=READ, exc=UserError)).message == msg, path
        assert list((await read(b, "byok-export/rsa/aes/v1"))["keys"]) == ["1"]

    asyncio.run(go(new_backend()))
