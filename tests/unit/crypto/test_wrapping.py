"""BYOK: wrap -> unwrap -> import round trips (spec §4.20)."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.unit.crypto.conftest import make
from transit.crypto import wrapping
from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.errors import InternalError, UserError


@pytest.fixture(scope="module")
def wrapping_key(rsa4096):
    return rsa4096.keys[1].rsa_private()


def pkcs8(k) -> bytes:
    return k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


@pytest.mark.parametrize("h", ["SHA1", "sha224", "SHA256", "SHA384", "sha512"])
def test_wrap_unwrap(h, wrapping_key):
    target = bytes(range(32))
    ct = wrapping.wrap(target, wrapping_key.public_key(), h)
    assert len(ct) == 512 + 40
    assert wrapping.unwrap(ct, wrapping_key, h) == target


def test_unwrap_errors(wrapping_key):
    with pytest.raises(UserError, match="^unknown hash function: md5$"):
        wrapping.unwrap(b"x" * 600, wrapping_key, "md5")
    with pytest.raises(InternalError, match="^provided ciphertext is too short$"):
        wrapping.unwrap(b"x" * 100, wrapping_key, "SHA256")
    ct = wrapping.wrap(b"k" * 32, wrapping_key.public_key(), "SHA256")
    with pytest.raises(InternalError):
        wrapping.unwrap(ct, wrapping_key, "SHA1")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    short = wrapping_key.public_key().encrypt(b"e" * 16, oaep) + b"\0" * 24
    with pytest.raises(InternalError, match="^expected ephemeral AES key to be 256-bit$"):
        wrapping.unwrap(short, wrapping_key, "SHA256")
    bad = bytearray(ct)
    bad[-1] ^= 1
    with pytest.raises(InternalError):
        wrapping.unwrap(bytes(bad), wrapping_key, "SHA256")


def test_import_aes256_known_key(wrapping_key):
    K = bytes(range(32))
    ct = wrapping.wrap(K, wrapping_key.public_key())
    key = wrapping.unwrap(ct, wrapping_key, "SHA256")
    p = Policy.import_key("imp", "aes256-gcm96", key=key, exportable=True)
    assert p.keys[1].key == K and len(p.keys[1].hmac_key) == 32 and p.keys[1].hmac_key != K
    info = p.key_info()
    assert info["imported_key"] is True and info["imported_key_allow_rotation"] is False
    z = "vault:v1:AAAAAAAAAAAAAAAAZtnZstoM9NJ6xM3GK8p+SzSJIF/dkpncifRv"
    assert p.decrypt(z) == b"hello world"
    with pytest.raises(InternalError, match="^imported key imp does not allow rotation within "
                                            "Vault$"):
        p.rotate()
    assert wrapping.key_material_for_wrap(p, 1) == K


def test_import_ed25519_deterministic(wrapping_key):
    seed = bytes(range(100, 132))
    k = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    key = wrapping.unwrap(wrapping.wrap(pkcs8(k), wrapping_key.public_key()), wrapping_key,
                          "SHA256")
    p = Policy.import_key("ed", "ed25519", key=key, allow_rotation=True)
    sig = p.sign(b"msg").signature
    assert base64.b64decode(sig[9:]) == k.sign(b"msg")
    assert p.keys[1].key == seed + k.public_key().public_bytes_raw()
    p.rotate()
    assert p.latest_version == 2 and p.imported is False
    assert wrapping.key_material_for_wrap(p, 1) == pkcs8(k)


def test_import_rsa2048_and_ecdsa(wrapping_key, rsa2048):
    src = rsa2048.keys[1].rsa_private()
    key = wrapping.unwrap(wrapping.wrap(pkcs8(src), wrapping_key.public_key()), wrapping_key,
                          "SHA256")
    p = Policy.import_key("r", "rsa-2048", key=key)
    sig = p.sign(b"m", signature_algorithm="pkcs1v15").signature
    assert sig == rsa2048.sign(b"m", signature_algorithm="pkcs1v15").signature
    assert p.decrypt(rsa2048.encrypt(b"m")[0]) == b"m"
    e = ec.generate_private_key(ec.SECP256R1())
    q = Policy.import_key("e", "ecdsa-p256", key=pkcs8(e))
    assert q.keys[1].ec_d == e.private_numbers().private_value
    assert q.verify(b"m", q.sign(b"m").signature)
    with pytest.raises(InternalError, match="^error importing key: invalid curve: expected "
                                            "P-384, got P-256$"):
        Policy.import_key("e", "ecdsa-p384", key=pkcs8(e))
    with pytest.raises(InternalError, match=r"^error importing key: invalid key type: expected "
                                            r"rsa-2048, got \*ecdsa.PrivateKey$"):
        Policy.import_key("e", "rsa-2048", key=pkcs8(e))
    with pytest.raises(InternalError, match="^error importing key: invalid key size: expected "
                                            "384 bytes, got 256 bytes$"):
        Policy.import_key("e", "rsa-3072", key=key)
    # byok-export material round trip
    assert serialization.load_der_private_key(
        wrapping.key_material_for_wrap(p, 0), None).private_numbers() == src.private_numbers()


def test_import_hmac_and_sizes(wrapping_key):
    key = bytes(range(48))
    p = Policy.import_key("h", "hmac", key=wrapping.unwrap(
        wrapping.wrap(key, wrapping_key.public_key()), wrapping_key, "SHA256"))
    assert p.key_size == 48 and p.keys[1].key == key and p.keys[1].hmac_key == key
    import hashlib
    import hmac
    assert base64.b64decode(p.hmac(b"d")[9:]) == hmac.new(key, b"d", hashlib.sha256).digest()
    for t, n in [("aes256-gcm96", 16), ("aes128-gcm96", 32), ("chacha20-poly1305", 31),
                 ("hmac", 16)]:
        with pytest.raises(InternalError, match=f"^error importing key: invalid key size {n} "
                                                f"bytes for key type {t}$"):
            Policy.import_key("x", t, key=bytes(n))
    with pytest.raises(InternalError, match="^allow_rotation must be set to true if "
                                            "auto-rotation is enabled$"):
        Policy.import_key("x", "aes256-gcm96", key=bytes(32), auto_rotate_period=3600)


def test_import_public_then_private_version(rsa2048):
    e = ec.generate_private_key(ec.SECP256R1())
    pem = e.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    p = Policy.import_key("pub", "ecdsa-p256", public_key_pem=pem)
    assert p.keys[1].ec_d is None and p.key_info()["keys"]["1"]["public_key"] == pem
    from cryptography.hazmat.primitives import hashes
    sig = e.sign(b"m", ec.ECDSA(hashes.SHA256()))
    assert p.verify(b"m", "vault:v1:" + base64.b64encode(sig).decode())
    with pytest.raises(UserError, match="does not contain a private part"):
        p.sign(b"m")
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InternalError, match="key pair does not match"):
        p.import_version(key=pkcs8(other), version=1)
    p.import_version(key=pkcs8(e), version=1)
    assert p.verify(b"m", p.sign(b"m").signature)
    with pytest.raises(InternalError, match="private key imported, key version cannot be updated"):
        p.import_version(key=pkcs8(e), version=1)
    p.import_version(key=pkcs8(other))
    assert p.latest_version == 2
    # RSA public import: encrypt works, decrypt needs the private half
    rpem = rsa2048.public_key_pem()
    r = Policy.import_key("rp", "rsa-2048", public_key_pem=rpem)
    ct, _ = r.encrypt(b"m")
    assert rsa2048.decrypt(ct) == b"m"
    with pytest.raises(UserError, match="does not contain a private part"):
        r.decrypt(ct)


def test_import_version_requires_imported_key():
    p = make(KeyType.AES256_GCM96)
    with pytest.raises(UserError, match="can only be used with an imported key"):
        p.import_version(key=bytes(32))
