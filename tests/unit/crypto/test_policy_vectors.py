"""Spec §6.4 constants and §6.5 negatives, byte for byte, via the §6 item 3 restore."""

import base64

import pytest

from tests.unit.crypto.conftest import K, vector_blob
from transit.crypto.kdf import counter_kdf, hkdf_sha256
from transit.crypto.policy import Policy
from transit.errors import CryptoError

PT = b"hello world"
CTX = b"my-context"


def test_hkdf_constants():
    okm = hkdf_sha256(K, CTX, 64)
    assert okm[:32].hex() == "4a10e0dd7750402d5d67a8babd31aaaceee6a194780140dcb6bf3bcc29da533d"
    assert okm[32:].hex() == "ec02d160886b7bc2000b3e8b5a37b1634c2a53cbbf624b8874111dc86fd5e964"


@pytest.mark.parametrize("archived", ["null", "placeholder"])
@pytest.mark.parametrize("type_int,key,expected", [
    (0, K, "vault:v1:qBGVuHYLU/LGxzvYPdKeG35Y6LqCcilxvrQ/jB7ngHXzKAMn7Tt4"),
    (5, K, "vault:v1:qBGVuHYLU/LGxzvYAntv8Dgfy/8Nos6O8JYssPHcRTOEA7m3bD3M"),
    (8, K[:16], "vault:v1:KIPBYq9R5t+A6uROxT2LDlMPKMnwyEeX00CPYvimeaswKXbBgHtu"),
])
def test_convergent_v3_vectors(type_int, key, expected, archived):
    p = Policy.restore(vector_blob(type_int, key, archived=archived))
    ct, ver = p.encrypt(PT, context=CTX)
    assert (ct, ver) == (expected, 1)
    if len(key) == 32:
        assert base64.b64decode(ct[9:])[:12].hex() == "a81195b8760b53f2c6c73bd8"
    assert p.decrypt(expected, context=CTX) == PT
    # deterministic, also after a dumps/loads round trip
    q = Policy.loads(p.dumps(), p.dumps_archive())
    assert q.encrypt(PT, context=CTX)[0] == expected


def test_hmac_vector():
    p = Policy.restore(vector_blob(0, K, derived=False, convergent=False))
    assert p.hmac(PT) == "vault:v1:ECy4zZWLwvd1Tm4fQAxVkae32Ewui1hkolrtxs5Pl9Y="
    assert p.verify_hmac(PT, "vault:v1:ECy4zZWLwvd1Tm4fQAxVkae32Ewui1hkolrtxs5Pl9Y=")


def test_zero_nonce_decrypt_vector():
    p = Policy.restore(vector_blob(0, K, derived=False, convergent=False))
    ct = "vault:v1:AAAAAAAAAAAAAAAAZtnZstoM9NJ6xM3GK8p+SzSJIF/dkpncifRv"
    assert p.decrypt(ct) == PT
    assert base64.b64encode(p.decrypt(ct)) == b"aGVsbG8gd29ybGQ="
    assert p.decrypt("vault:v0:" + ct[9:]) == PT  # v0 reads as v1


def test_negative_version_too_new():
    p = Policy.restore(vector_blob(0, K, derived=False, convergent=False))
    with pytest.raises(CryptoError, match="^invalid ciphertext: version is too new$"):
        p.decrypt("vault:v9:AAAAAAAAAAAAAAAAZtnZstoM9NJ6xM3GK8p+SzSJIF/dkpncifRv")


def test_negative_too_old_after_min_decryption_version():
    p = Policy.restore(vector_blob(0, K, derived=False, convergent=False))
    old, _ = p.encrypt(PT)
    p.rotate()
    p.update_config(min_decryption_version=2)
    assert "1" not in p.key_info()["keys"]
    with pytest.raises(CryptoError) as ei:
        p.decrypt(old)
    assert ei.value.message == "ciphertext or signature version is disallowed by policy (too old)"


def test_negative_flipped_tag():
    p = Policy.restore(vector_blob(0, K, derived=False, convergent=False))
    raw = bytearray(base64.b64decode("AAAAAAAAAAAAAAAAZtnZstoM9NJ6xM3GK8p+SzSJIF/dkpncifRv"))
    raw[-1] ^= 1
    with pytest.raises(CryptoError, match="^cipher: message authentication failed$"):
        p.decrypt("vault:v1:" + base64.b64encode(bytes(raw)).decode())


def test_legacy_counter_kdf():
    # HMAC-SHA256(key, BE32(0) ‖ C ‖ BE32(256))
    import hashlib
    import hmac
    want = hmac.new(K, b"\0\0\0\0" + CTX + (256).to_bytes(4, "big"), hashlib.sha256).digest()
    assert counter_kdf(K, CTX) == want
    p = Policy.restore(vector_blob(0, K, convergent=False, kdf=0))
    assert p.kdf == 0 and p.key_info()["kdf"] == "hmac-sha256-counter"
    ct, _ = p.encrypt(PT, context=CTX)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    raw = base64.b64decode(ct[9:])
    assert AESGCM(want).decrypt(raw[:12], raw[12:], None) == PT
