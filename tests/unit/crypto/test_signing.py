import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, utils

from tests.unit.crypto.conftest import make
from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.errors import CryptoError, InternalError, UserError

EC_TYPES = [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.ECDSA_P521]
HASHES = ["sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256",
          "sha3-384", "sha3-512"]
_PY = {"sha1": "sha1", "sha2-224": "sha224", "sha2-256": "sha256", "sha2-384": "sha384",
       "sha2-512": "sha512", "sha3-224": "sha3_224", "sha3-256": "sha3_256",
       "sha3-384": "sha3_384", "sha3-512": "sha3_512"}
_CH = {"sha2-256": hashes.SHA256, "sha2-384": hashes.SHA384, "sha2-512": hashes.SHA512,
       "sha1": hashes.SHA1}


def sig_bytes(sig: str, jws: bool = False) -> bytes:
    s = sig.split(":", 2)[2]
    if jws:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    return base64.b64decode(s)


@pytest.fixture(scope="module")
def ec_keys():
    return {t: make(t) for t in EC_TYPES}


@pytest.mark.parametrize("t", EC_TYPES)
@pytest.mark.parametrize("h", ["sha2-256", "sha2-512", "sha3-256"])
def test_ecdsa_asn1(t, h, ec_keys):
    p = ec_keys[t]
    r = p.sign(b"msg", hash_algorithm=h)
    assert r.key_version == 1 and r.public_key is None and r.signature.startswith("vault:v1:")
    assert p.verify(b"msg", r.signature, hash_algorithm=h)
    assert not p.verify(b"other", r.signature, hash_algorithm=h)
    pub = p.keys[1].ec_public(t)
    digest = hashlib.new(_PY[h], b"msg").digest()
    alg = {"sha2-256": hashes.SHA256, "sha2-512": hashes.SHA512, "sha3-256": hashes.SHA3_256}[h]
    pub.verify(sig_bytes(r.signature), digest, ec.ECDSA(utils.Prehashed(alg())))


@pytest.mark.parametrize("t,size", [(KeyType.ECDSA_P256, 32), (KeyType.ECDSA_P384, 48),
                                    (KeyType.ECDSA_P521, 66)])
def test_ecdsa_jws(t, size, ec_keys):
    p = ec_keys[t]
    r = p.sign(b"msg", marshaling_algorithm="jws")
    body = r.signature.split(":", 2)[2]
    assert "=" not in body and "+" not in body and "/" not in body
    raw = sig_bytes(r.signature, jws=True)
    assert len(raw) == 2 * size
    der = utils.encode_dss_signature(int.from_bytes(raw[:size], "big"),
                                     int.from_bytes(raw[size:], "big"))
    p.keys[1].ec_public(t).verify(der, b"msg", ec.ECDSA(hashes.SHA256()))
    assert p.verify(b"msg", r.signature, marshaling_algorithm="jws")
    with pytest.raises(CryptoError):  # jws text is not valid for asn1 (std base64 / DER)
        p.verify(b"msg", r.signature)


def test_ecdsa_prehashed_any_length(ec_keys):
    p = ec_keys[KeyType.ECDSA_P256]
    for data in (b"", b"short", hashlib.sha256(b"x").digest(), b"y" * 100):
        r = p.sign(data, prehashed=True)
        assert p.verify(data, r.signature, prehashed=True)
    d = hashlib.sha256(b"x").digest()
    r = p.sign(d, prehashed=True)
    p.keys[1].ec_public(KeyType.ECDSA_P256).verify(
        sig_bytes(r.signature), d, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_ecdsa_bad_asn1(ec_keys):
    p = ec_keys[KeyType.ECDSA_P256]
    with pytest.raises(CryptoError, match="^supplied signature is invalid$"):
        p.verify(b"m", "vault:v1:" + base64.b64encode(b"\x30\x01").decode())
    good = sig_bytes(p.sign(b"m").signature)
    with pytest.raises(CryptoError, match="^supplied signature contains extra data$"):
        p.verify(b"m", "vault:v1:" + base64.b64encode(good + b"\0").decode())


def test_ed25519_known_seed_deterministic():
    seed = bytes(range(32))
    k = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    from cryptography.hazmat.primitives import serialization
    der = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    p = Policy.import_key("ed", KeyType.ED25519, key=der)
    r = p.sign(b"hello")
    assert sig_bytes(r.signature) == k.sign(b"hello")
    assert p.verify(b"hello", r.signature)
    # ignores hash/prehash/salt options, but CE refuses sha2-512
    assert p.sign(b"hello", hash_algorithm="sha2-384", prehashed=True).signature == r.signature
    with pytest.raises(UserError, match="^error generating Ed25519 options: hash algorithm of "
                                        "SHA2 512 is not supported feature$"):
        p.sign(b"hello", hash_algorithm="sha2-512")
    j = p.sign(b"hello", marshaling_algorithm="jws")
    assert sig_bytes(j.signature, jws=True) == k.sign(b"hello")
    assert p.verify(b"hello", j.signature, marshaling_algorithm="jws")
    assert not p.verify(b"hellO", r.signature)
    assert not p.verify(b"hello", "vault:v1:" + base64.b64encode(b"short").decode())


def test_ed25519_derived():
    p = make(KeyType.ED25519, derived=True)
    with pytest.raises(InternalError, match="^error deriving key: missing 'context'"):
        p.sign(b"m")
    a = p.sign(b"m", context=b"c1")
    b = p.sign(b"m", context=b"c2")
    assert a.public_key and b.public_key and a.public_key != b.public_key
    assert p.sign(b"m", context=b"c1").public_key == a.public_key
    # the derived seed is HKDF(IKM = 64-byte key, info = context)[:32]
    from transit.crypto.kdf import hkdf_sha256
    seed = hkdf_sha256(p.keys[1].key, b"c1", 32)
    k = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    assert sig_bytes(a.signature) == k.sign(b"m")
    assert base64.b64decode(a.public_key) == k.public_key().public_bytes_raw()
    assert p.verify(b"m", a.signature, context=b"c1")
    assert not p.verify(b"m", a.signature, context=b"c2")
    info = p.key_info()
    assert info["keys"]["1"]["public_key"] == ""
    assert p.key_info(b"c1")["keys"]["1"]["public_key"] == a.public_key


@pytest.mark.parametrize("h", ["sha2-256", "sha2-384", "sha2-512", "sha1"])
def test_rsa_pss_and_pkcs1v15(h, rsa2048):
    p = rsa2048
    pub = p.keys[1].rsa_public()
    pss = p.sign(b"msg", hash_algorithm=h)
    assert p.verify(b"msg", pss.signature, hash_algorithm=h)
    max_pss = padding.PSS(mgf=padding.MGF1(_CH[h]()), salt_length=padding.PSS.MAX_LENGTH)
    pub.verify(sig_bytes(pss.signature), b"msg", max_pss, _CH[h]())
    v15 = p.sign(b"msg", hash_algorithm=h, signature_algorithm="pkcs1v15")
    assert v15.signature == p.sign(b"msg", hash_algorithm=h,
                                   signature_algorithm="pkcs1v15").signature  # deterministic
    pub.verify(sig_bytes(v15.signature), b"msg", padding.PKCS1v15(), _CH[h]())
    assert p.verify(b"msg", v15.signature, hash_algorithm=h, signature_algorithm="pkcs1v15")
    assert not p.verify(b"msg", v15.signature, hash_algorithm=h)  # pss verify of v1.5 sig
    assert not p.verify(b"msG", pss.signature, hash_algorithm=h)


@pytest.mark.parametrize("salt,expect", [("hash", 32), ("auto", 222), (0, 222), ("20", 20),
                                         (20, 20), ("-1", 32)])
def test_rsa_pss_salt_lengths(salt, expect, rsa2048):
    p = rsa2048
    pub = p.keys[1].rsa_public()
    r = p.sign(b"m", salt_length=salt)
    pub.verify(sig_bytes(r.signature), b"m",
               padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=expect),
               hashes.SHA256())
    assert p.verify(b"m", r.signature, salt_length=salt)
    assert p.verify(b"m", r.signature)  # auto-detect


def test_rsa_salt_errors(rsa2048):
    with pytest.raises(UserError, match="^salt length neither 'auto', 'hash', nor an int: x$"):
        rsa2048.sign(b"m", salt_length="x")
    with pytest.raises(UserError, match="^salt length is invalid: -2$"):
        rsa2048.sign(b"m", salt_length="-2")
    with pytest.raises(UserError, match="^requested salt length 223 is invalid$"):
        rsa2048.sign(b"m", salt_length=223)
    # parsed for every key type
    with pytest.raises(UserError, match="salt length neither"):
        make(KeyType.ED25519).sign(b"m", salt_length="x")


def test_rsa_prehashed_and_none(rsa2048):
    p = rsa2048
    pub = p.keys[1].rsa_public()
    d = hashlib.sha256(b"m").digest()
    r = p.sign(d, prehashed=True, signature_algorithm="pkcs1v15")
    assert r.signature == p.sign(b"m", signature_algorithm="pkcs1v15").signature
    assert p.verify(d, r.signature, prehashed=True, signature_algorithm="pkcs1v15")
    with pytest.raises(InternalError, match="input must be hashed with given hash$"):
        p.sign(b"short", prehashed=True)  # PSS
    with pytest.raises(InternalError, match="input must be hashed message$"):
        p.sign(b"short", prehashed=True, signature_algorithm="pkcs1v15")
    # hash_algorithm=none: PKCS#1 v1.5 without DigestInfo
    n = p.sign(b"raw data", hash_algorithm="none", prehashed=True,
               signature_algorithm="pkcs1v15")
    assert pub.recover_data_from_signature(sig_bytes(n.signature), padding.PKCS1v15(),
                                           None) == b"raw data"
    assert p.verify(b"raw data", n.signature, hash_algorithm="none", prehashed=True,
                    signature_algorithm="pkcs1v15")
    assert not p.verify(b"raw datA", n.signature, hash_algorithm="none", prehashed=True,
                        signature_algorithm="pkcs1v15")
    msg = "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15"
    with pytest.raises(UserError, match=f"^{msg}$"):
        p.sign(b"m", hash_algorithm="none", signature_algorithm="pkcs1v15")
    with pytest.raises(UserError, match=f"^{msg}$"):
        p.sign(b"m", hash_algorithm="none", prehashed=True)


def test_rsa_other_sizes(rsa3072, rsa4096):
    for p in (rsa3072, rsa4096):
        r = p.sign(b"m", marshaling_algorithm="jws", signature_algorithm="pkcs1v15")
        assert len(sig_bytes(r.signature, jws=True)) == p.type.rsa_bits // 8
        assert p.verify(b"m", r.signature, marshaling_algorithm="jws",
                        signature_algorithm="pkcs1v15")
        assert p.verify(b"m", p.sign(b"m").signature)


def test_sign_errors(rsa2048):
    aes = make(KeyType.AES256_GCM96)
    with pytest.raises(UserError, match="^key type aes256-gcm96 does not support signing$"):
        aes.sign(b"m")
    with pytest.raises(UserError, match="^key type hmac does not support verification$"):
        make(KeyType.HMAC).verify(b"m", "vault:v1:AA==")
    e = make(KeyType.ECDSA_P256)
    with pytest.raises(UserError, match='^invalid hash algorithm "md5"$'):
        e.sign(b"m", hash_algorithm="md5")
    with pytest.raises(UserError, match='^invalid marshaling type "pem"$'):
        e.sign(b"m", marshaling_algorithm="pem")
    with pytest.raises(UserError, match="^requested version for signing is negative$"):
        e.sign(b"m", version=-1)
    with pytest.raises(UserError, match="higher than the latest key version$"):
        e.sign(b"m", version=2)


def test_verify_parse_errors_and_versions():
    p = make(KeyType.ECDSA_P256)
    for value, msg in [("x", "invalid signature: no prefix"),
                       ("vault:v1", "invalid signature: wrong number of fields"),
                       ("vault:vz:a", "invalid signature: version number could not be decoded"),
                       ("vault:v2:AA==", "invalid signature: version is too new"),
                       ("vault:v1:!", "invalid base64 signature value")]:
        with pytest.raises(CryptoError) as ei:
            p.verify(b"m", value)
        assert ei.value.message == msg
    old = p.sign(b"m").signature
    p.rotate()
    assert p.verify(b"m", old)
    new = p.sign(b"m")
    assert new.key_version == 2 and p.verify(b"m", new.signature)
    p.update_config(min_decryption_version=2, min_encryption_version=2)
    with pytest.raises(CryptoError, match="too old"):
        p.verify(b"m", old)
    with pytest.raises(UserError, match="less than the minimum encryption key version"):
        p.sign(b"m", version=1)


@pytest.mark.parametrize("t", [t for t in KeyType if not t.is_rsa])
def test_hmac_every_type(t):
    p = make(t)
    mac = p.hmac(b"data")
    assert mac.startswith("vault:v1:")
    key = p.keys[1].key if t is KeyType.HMAC else p.keys[1].hmac_key
    import hmac as _h
    assert base64.b64decode(mac[9:]) == _h.new(key, b"data", hashlib.sha256).digest()
    assert p.verify_hmac(b"data", mac)
    assert not p.verify_hmac(b"datA", mac)
    for alg in HASHES:
        m = p.hmac(b"data", algorithm=alg)
        assert p.verify_hmac(b"data", m, algorithm=alg)


def test_hmac_errors():
    p = make(KeyType.AES256_GCM96)
    with pytest.raises(UserError, match=r"^unsupported algorithm '\\x00'$"):
        p.hmac(b"d", algorithm="md5")
    with pytest.raises(UserError, match="^key version does not exist; latest key version is 1$"):
        p.hmac(b"d", version=5)
    with pytest.raises(UserError, match=r"^key version does not exist \(cannot be negative\)$"):
        p.hmac(b"d", version=-1)
    for value, msg in [("x", "invalid HMAC to verify: no prefix"),
                       ("vault:v1", "invalid HMAC: wrong number of fields"),
                       ("vault:vq:AA==", "invalid HMAC: version number could not be decoded"),
                       ("vault:v3:AA==", "invalid HMAC: version is too new")]:
        with pytest.raises(CryptoError) as ei:
            p.verify_hmac(b"d", value)
        assert ei.value.message == msg
    with pytest.raises(CryptoError, match="^unable to decode verification HMAC as base64: "
                                          "illegal base64 data at input byte 0$"):
        p.verify_hmac(b"d", "vault:v1:!")
    old = p.hmac(b"d")
    p.rotate()
    p.rotate()
    p.update_config(min_decryption_version=2, min_encryption_version=2)
    with pytest.raises(CryptoError, match=r"^cannot verify HMAC: version is too old \(disallowed"):
        p.verify_hmac(b"d", old)
    with pytest.raises(UserError, match=r"^cannot generate HMAC: version is too old"):
        p.hmac(b"d", version=1)
    assert p.hmac(b"d", version=3).startswith("vault:v3:")
