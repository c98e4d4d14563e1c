import base64
import copy

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from tests.unit.crypto.conftest import make
from transit.crypto.kdf import MISSING_CONTEXT, hkdf_sha256
from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.errors import CryptoError, InternalError, UserError

AEAD_TYPES = [KeyType.AES128_GCM96, KeyType.AES256_GCM96, KeyType.CHACHA20_POLY1305]
RSA_TYPES = [KeyType.RSA2048, KeyType.RSA3072, KeyType.RSA4096]


def raw(ct: str) -> bytes:
    return base64.b64decode(ct.split(":", 2)[2])


@pytest.mark.parametrize("t", AEAD_TYPES)
@pytest.mark.parametrize("pt", [b"", b"x", b"hello world" * 100])
def test_aead_roundtrip_and_layout(t, pt):
    p = make(t)
    ct, ver = p.encrypt(pt)
    assert ver == 1 and ct.startswith("vault:v1:")
    assert p.decrypt(ct) == pt
    payload = raw(ct)
    assert len(payload) == 12 + len(pt) + 16
    cls = ChaCha20Poly1305 if t is KeyType.CHACHA20_POLY1305 else AESGCM
    key = p.keys[1].key
    assert len(key) == t.key_len
    assert cls(key).decrypt(payload[:12], payload[12:], None) == pt
    assert p.encrypt(pt)[0] != ct  # random nonce


@pytest.mark.parametrize("t", AEAD_TYPES)
def test_aad(t):
    p = make(t)
    ct, _ = p.encrypt(b"data", associated_data=b"aad")
    assert p.decrypt(ct, associated_data=b"aad") == b"data"
    with pytest.raises(CryptoError, match="message authentication failed"):
        p.decrypt(ct)
    with pytest.raises(CryptoError, match="message authentication failed"):
        p.decrypt(ct, associated_data=b"other")


@pytest.mark.parametrize("t", AEAD_TYPES)
def test_tamper(t):
    p = make(t)
    ct, _ = p.encrypt(b"secret")
    payload = bytearray(raw(ct))
    for i in (0, 12, len(payload) - 1):
        bad = bytearray(payload)
        bad[i] ^= 0x80
        with pytest.raises(CryptoError) as ei:
            p.decrypt("vault:v1:" + base64.b64encode(bytes(bad)).decode())
        # x/crypto's chacha20poly1305 has its own wording, which Vault passes through.
        prefix = "chacha20poly1305" if t is KeyType.CHACHA20_POLY1305 else "cipher"
        assert ei.value.message == f"{prefix}: message authentication failed"


def test_decrypt_parse_errors_in_order():
    p = make(KeyType.AES256_GCM96)
    cases = [
        ("nope", "invalid ciphertext: no prefix"),
        ("vault:v1", "invalid ciphertext: wrong number of fields"),
        ("vault:vX:abc", "invalid ciphertext: version number could not be decoded"),
        ("vault:v2:!!!", "invalid ciphertext: version is too new"),
        ("vault:v1:!!!", "invalid ciphertext: could not decode base64"),
        ("vault:v1:AAAA", "invalid ciphertext length"),
        ("vault:v1:" + "A" * 40, "cipher: message authentication failed"),
    ]
    for value, msg in cases:
        with pytest.raises(CryptoError) as ei:
            p.decrypt(value)
        assert ei.value.message == msg, value
    p.rotate()
    p.update_config(min_decryption_version=2)
    with pytest.raises(CryptoError, match="too old"):
        p.decrypt("vault:v1:!!!")
    with pytest.raises(CryptoError, match="too old"):
        p.decrypt("vault:v-1:AAAA")


def test_encrypt_version_rules():
    p = make(KeyType.AES256_GCM96)
    p.rotate()
    p.rotate()
    assert p.encrypt(b"a", version=1)[1] == 1
    with pytest.raises(UserError, match="^requested version for encryption is negative$"):
        p.encrypt(b"a", version=-1)
    with pytest.raises(UserError, match="is higher than the latest key version$"):
        p.encrypt(b"a", version=4)
    p.update_config(min_encryption_version=2)
    with pytest.raises(UserError, match="is less than the minimum encryption key version$"):
        p.encrypt(b"a", version=1)
    assert p.encrypt(b"a")[1] == 3
    ct, v = p.encrypt(b"a", version=2)
    assert v == 2 and ct.startswith("vault:v2:") and p.decrypt(ct) == b"a"


@pytest.mark.parametrize("t", [KeyType.ED25519, KeyType.ECDSA_P256, KeyType.HMAC])
def test_encryption_not_supported(t):
    p = make(t)
    with pytest.raises(UserError, match=f"^message encryption not supported for key type {t}$"):
        p.encrypt(b"x")
    with pytest.raises(UserError, match=f"^message decryption not supported for key type {t}$"):
        p.decrypt("vault:v1:AAAA")


def test_nonce_rules():
    p = make(KeyType.AES256_GCM96)
    with pytest.raises(UserError, match="^provided nonce not allowed for this key$"):
        p.encrypt(b"x", nonce=b"\0" * 12)
    p.encrypt(b"x", nonce=b"")  # empty counts as absent
    c = make(KeyType.AES256_GCM96, derived=True, convergent=True)
    with pytest.raises(UserError, match="provided nonce not allowed"):
        c.encrypt(b"x", context=b"c", nonce=b"\0" * 12)


def test_aad_on_non_aead(rsa_policies):
    p = rsa_policies["rsa-2048"]
    with pytest.raises(UserError) as ei:
        p.encrypt(b"x", associated_data=b"a")
    assert ei.value.message == "'[0].associated_data' provided for non-AEAD cipher suite rsa-2048"
    with pytest.raises(UserError, match=r"^'\[3\].associated_data' provided for non-AEAD"):
        p.decrypt("vault:v1:AAAA", associated_data=b"a", index=3)
    e = make(KeyType.ED25519)
    with pytest.raises(UserError, match="non-AEAD cipher suite ed25519"):
        e.encrypt(b"x", associated_data=b"a")


def test_derived_requires_context_and_derives_hkdf():
    p = make(KeyType.AES256_GCM96, derived=True)
    for ctx in (None, b""):
        with pytest.raises(UserError) as ei:
            p.encrypt(b"x", context=ctx)
        assert ei.value.message == MISSING_CONTEXT
    ct, _ = p.encrypt(b"x", context=b"ctx")
    with pytest.raises(UserError, match="missing 'context'"):
        p.decrypt(ct)
    assert p.decrypt(ct, context=b"ctx") == b"x"
    with pytest.raises(CryptoError, match="authentication failed"):
        p.decrypt(ct, context=b"other")
    key = hkdf_sha256(p.keys[1].key, b"ctx", 32)
    payload = raw(ct)
    assert AESGCM(key).decrypt(payload[:12], payload[12:], None) == b"x"
    assert p.encrypt(b"x", context=b"ctx")[0] != ct  # not convergent: random nonce


def test_context_ignored_on_non_derived():
    p = make(KeyType.AES256_GCM96)
    ct, _ = p.encrypt(b"x", context=b"whatever")
    assert p.decrypt(ct) == b"x"


@pytest.mark.parametrize("t", AEAD_TYPES)
def test_convergent_determinism(t):
    p = make(t, derived=True, convergent=True)
    assert p.key_info()["convergent_encryption_version"] == -1
    assert p.keys[1].convergent_version == 3
    a, _ = p.encrypt(b"same", context=b"c1")
    assert p.encrypt(b"same", context=b"c1")[0] == a
    assert p.encrypt(b"same", context=b"c2")[0] != a
    assert p.encrypt(b"diff", context=b"c1")[0] != a
    # AAD does not enter the nonce
    b, _ = p.encrypt(b"same", context=b"c1", associated_data=b"aad")
    assert raw(b)[:12] == raw(a)[:12] and b != a
    p.rotate()
    assert p.keys[2].convergent_version == 3
    c, _ = p.encrypt(b"same", context=b"c1")
    assert c.startswith("vault:v2:") and p.decrypt(a, context=b"c1") == b"same"


def test_convergent_v2_and_v1_formats():
    p = make(KeyType.AES256_GCM96, derived=True, convergent=True)
    key = p.keys[1].key
    # v2: nonce = HMAC-SHA256(context, plaintext)[:12]
    import hashlib
    import hmac
    d = p.to_json()
    d["convergent_version"] = 2
    d["keys"]["1"]["convergent_version"] = 0
    v2 = Policy.from_json(d, None)
    ct, _ = v2.encrypt(b"pt", context=b"ctx")
    nonce = hmac.new(b"ctx", b"pt", hashlib.sha256).digest()[:12]
    assert raw(ct)[:12] == nonce
    enc = hkdf_sha256(key, b"ctx", 32)
    assert AESGCM(enc).decrypt(nonce, raw(ct)[12:], None) == b"pt"
    assert v2.decrypt(ct, context=b"ctx") == b"pt"
    # v1: user nonce, not stored in the payload
    d["convergent_version"] = 1
    v1 = Policy.from_json(d, None)
    assert v1.nonce_allowed()
    with pytest.raises(UserError, match="must be 12 bytes long"):
        v1.encrypt(b"pt", context=b"ctx", nonce=b"short")
    n = bytes(range(12))
    ct1, _ = v1.encrypt(b"pt", context=b"ctx", nonce=n)
    assert raw(ct1) == AESGCM(enc).encrypt(n, b"pt", None)
    assert v1.decrypt(ct1, context=b"ctx", nonce=n) == b"pt"
    with pytest.raises(CryptoError, match="^invalid convergent nonce supplied$"):
        v1.decrypt(ct1, context=b"ctx")


@pytest.mark.parametrize("t", RSA_TYPES)
def test_rsa_oaep_default(t, rsa_policies):
    p = rsa_policies[str(t)]
    ct, _ = p.encrypt(b"hello")
    payload = raw(ct)
    assert len(payload) == t.rsa_bits // 8
    priv = p.keys[1].rsa_private()
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert priv.decrypt(payload, oaep) == b"hello"
    assert p.decrypt(ct) == b"hello"


def test_rsa_pkcs1v15_and_padding_errors(rsa2048):
    p = rsa2048
    ct, _ = p.encrypt(b"hello", padding_scheme="pkcs1v15")
    assert p.keys[1].rsa_private().decrypt(raw(ct), padding.PKCS1v15()) == b"hello"
    assert p.decrypt(ct, padding_scheme="pkcs1v15") == b"hello"
    with pytest.raises(InternalError, match="^failed to RSA decrypt the ciphertext"):
        p.decrypt(ct)  # OAEP on a PKCS#1 v1.5 ciphertext
    ct2, _ = p.encrypt(b"hello", padding_scheme="oaep")
    assert p.decrypt(ct2) == b"hello"
    with pytest.raises(UserError, match="unknown padding scheme: nope"):
        p.encrypt(b"x", padding_scheme="nope")
    with pytest.raises(UserError, match="unsupported key type aes256-gcm96 for padding scheme"):
        make(KeyType.AES256_GCM96).encrypt(b"x", padding_scheme="oaep")
    with pytest.raises(InternalError, match="message too long"):
        p.encrypt(b"x" * 300)


def test_rsa_nonce_and_tamper(rsa2048):
    with pytest.raises(UserError, match="provided nonce not allowed"):
        rsa2048.encrypt(b"x", nonce=b"n" * 12)
    ct, _ = rsa2048.encrypt(b"x")
    bad = bytearray(raw(ct))
    bad[5] ^= 1
    with pytest.raises(InternalError):
        rsa2048.decrypt("vault:v1:" + base64.b64encode(bytes(bad)).decode())


def test_rotation_keeps_old_versions_decryptable(rsa2048):
    p = make(KeyType.CHACHA20_POLY1305)
    cts = []
    for _ in range(4):
        cts.append(p.encrypt(b"v")[0])
        p.rotate()
    assert p.latest_version == 5
    assert [c.split(":")[1] for c in cts] == ["v1", "v2", "v3", "v4"]
    assert all(p.decrypt(c) == b"v" for c in cts)
    r = copy.deepcopy(rsa2048)
    r.rotate()
    assert r.encrypt(b"x")[1] == 2 and rsa2048.latest_version == 1


def test_cache_is_bounded():
    from transit.crypto.keyentry import DERIVED_CACHE_SIZE
    p = make(KeyType.AES256_GCM96, derived=True)
    for i in range(DERIVED_CACHE_SIZE + 50):
        p.encrypt(b"x", context=str(i).encode())
    assert len(p.keys[1]._derived) <= DERIVED_CACHE_SIZE
