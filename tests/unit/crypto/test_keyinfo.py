import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.unit.crypto.conftest import make
from transit.crypto.keytypes import KeyType
from transit.errors import InternalError, UserError


@pytest.mark.parametrize("t", [KeyType.AES128_GCM96, KeyType.AES256_GCM96,
                               KeyType.CHACHA20_POLY1305])
def test_export_symmetric(t):
    p = make(t, exportable=True)
    out = p.export("encryption-key", None)
    assert out == {"name": "k", "type": str(t),
                   "keys": {"1": base64.b64encode(p.keys[1].key).decode()}}
    assert p.export("hmac-key", "1")["keys"]["1"] == base64.b64encode(
        p.keys[1].hmac_key).decode()
    with pytest.raises(UserError, match="^signing not supported for the key$"):
        p.export("signing-key", None)
    with pytest.raises(InternalError, match="unknown key type"):
        p.export("public-key", None)


def test_export_rsa(rsa_policies):
    for p in rsa_policies.values():
        for et in ("encryption-key", "signing-key"):
            pem = p.export(et, "latest")["keys"]["1"]
            assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n") and pem.endswith("\n")
            k = serialization.load_pem_private_key(pem.encode(), None)
            assert isinstance(k, rsa.RSAPrivateKey)
            assert k.private_numbers() == p.keys[1].rsa
        pub = p.export("public-key", None)["keys"]["1"]
        assert pub.endswith("-----END PUBLIC KEY-----\n")
        assert pub == p.key_info()["keys"]["1"]["public_key"]


@pytest.mark.parametrize("t", [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.ECDSA_P521])
def test_export_ecdsa(t):
    p = make(t, exportable=True)
    pem = p.export("signing-key", "v1")["keys"]["1"]
    assert pem.startswith("-----BEGIN EC PRIVATE KEY-----\n")
    assert pem.endswith("-----END EC PRIVATE KEY-----")  # no trailing newline
    k = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(k, ec.EllipticCurvePrivateKey)
    assert k.private_numbers().private_value == p.keys[1].ec_d
    with pytest.raises(UserError, match="^encryption not supported for the key$"):
        p.export("encryption-key", None)
    pub = p.export("public-key", None)["keys"]["1"]
    serialization.load_pem_public_key(pub.encode())


def test_export_ed25519():
    p = make(KeyType.ED25519, exportable=True)
    raw = base64.b64decode(p.export("signing-key", None)["keys"]["1"])
    assert len(raw) == 64
    k = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    assert k.public_key().public_bytes_raw() == raw[32:]
    assert p.export("public-key", None)["keys"]["1"] == base64.b64encode(raw[32:]).decode()


def test_export_hmac_type():
    p = make(KeyType.HMAC, exportable=True)
    assert base64.b64decode(p.export("hmac-key", None)["keys"]["1"]) == p.keys[1].key
    with pytest.raises(UserError, match="encryption not supported"):
        p.export("encryption-key", None)


def test_export_versions_and_errors():
    p = make(KeyType.AES256_GCM96)
    with pytest.raises(UserError, match="^private key material is not exportable$"):
        p.export("encryption-key", None)
    with pytest.raises(UserError, match="^invalid export type: nope$"):
        p.export("nope", None)
    p.update_config(exportable=True)
    p.rotate()
    p.rotate()
    assert sorted(p.export("encryption-key", "")["keys"]) == ["1", "2", "3"]
    assert list(p.export("encryption-key", "latest")["keys"]) == ["3"]
    assert list(p.export("encryption-key", "v2")["keys"]) == ["2"]
    assert list(p.export("encryption-key", "2")["keys"]) == ["2"]
    with pytest.raises(UserError, match="^invalid key version$"):
        p.export("encryption-key", "vx")
    with pytest.raises(UserError, match="^version does not exist or cannot be found$"):
        p.export("encryption-key", "9")
    p.update_config(min_decryption_version=2)
    assert sorted(p.export("encryption-key", None)["keys"]) == ["2", "3"]
    with pytest.raises(UserError, match="^version for export is below minimum decryption "
                                        "version$"):
        p.export("encryption-key", "1")


def test_public_key_export_without_exportable():
    p = make(KeyType.ECDSA_P256)
    assert "1" in p.export("public-key", None)["keys"]
    assert p.public_key_pem() == p.keys[1].public_key
