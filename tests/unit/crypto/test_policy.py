import base64
import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from tests.unit.crypto.conftest import make, vector_blob
from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.errors import InternalError, UserError

ALL = list(KeyType)


def test_keytype_ints_and_parse():
    assert KeyType.AES256_GCM96.vault_int == 0 and KeyType.HMAC.vault_int == 11
    assert KeyType.from_vault_int(9) is KeyType.RSA3072
    with pytest.raises(UserError, match="^unknown key type nope$"):
        KeyType.parse("nope")
    assert KeyType.parse("ed25519") is KeyType.ED25519


@pytest.mark.parametrize("kw,cls,msg", [
    ({"auto_rotate_period": 60}, UserError,
     "auto rotate period must be 0 to disable or at least an hour"),
    ({"convergent": True}, UserError, "convergent encryption requires derivation to be enabled"),
    ({"key_size": 64}, UserError, "key_size is not valid for algorithm aes256-gcm96"),
])
def test_create_400s(kw, cls, msg):
    with pytest.raises(cls) as ei:
        Policy.create("k", "aes256-gcm96", **kw)
    assert type(ei.value) is cls and ei.value.message == msg


@pytest.mark.parametrize("t,kw,msg", [
    ("ecdsa-p256", {"derived": True},
     "key derivation and convergent encryption not supported for keys of type ecdsa-p256"),
    ("rsa-2048", {"derived": True, "convergent": True},
     "key derivation and convergent encryption not supported for keys of type rsa-2048"),
    ("ed25519", {"derived": True, "convergent": True},
     "convergent encryption not supported for keys of type ed25519"),
    ("hmac", {}, "invalid key size for HMAC key, must be between 32 and 512 bytes"),
])
def test_create_500s(t, kw, msg):
    with pytest.raises(InternalError, match=f"^{msg}$"):
        Policy.create("k", t, **kw)


def test_create_hmac_sizes():
    with pytest.raises(UserError, match="^invalid key_size 16$"):
        Policy.create("k", "hmac", key_size=16)
    p = Policy.create("k", "hmac", key_size=64)
    assert len(p.keys[1].key) == 64 and p.keys[1].hmac_key == p.keys[1].key
    p.rotate()
    assert len(p.keys[2].key) == 64
    info = p.key_info()
    assert "keys" not in info and info["key_size"] == 64
    assert not any(info[f"supports_{x}"] for x in ("encryption", "decryption", "signing",
                                                    "derivation"))


def test_key_info_symmetric():
    now = datetime(2024, 1, 1, tzinfo=UTC)
    p = Policy.create("k", "aes256-gcm96", derived=True, convergent=True,
                      auto_rotate_period=7200, now=now)
    info = p.key_info()
    assert info == {
        "name": "k", "type": "aes256-gcm96", "derived": True, "deletion_allowed": False,
        "min_available_version": 0, "min_decryption_version": 1, "min_encryption_version": 0,
        "latest_version": 1, "exportable": False, "allow_plaintext_backup": False,
        "supports_encryption": True, "supports_decryption": True, "supports_signing": False,
        "supports_derivation": True, "auto_rotate_period": 7200, "imported_key": False,
        "kdf": "hkdf_sha256", "convergent_encryption": True,
        "convergent_encryption_version": -1, "keys": {"1": 1704067200},
    }


@pytest.mark.parametrize("t,name", [("ecdsa-p256", "P-256"), ("ecdsa-p384", "P-384"),
                                    ("ecdsa-p521", "P-521"), ("ed25519", "ed25519"),
                                    ("rsa-2048", "rsa-2048")])
def test_key_info_asymmetric(t, name, rsa_policies):
    p = make(t, rsa_policies)
    info = p.key_info()
    k = info["keys"]["1"]
    assert sorted(k) == ["certificate_chain", "creation_time", "name", "public_key"]
    assert k["name"] == name and k["certificate_chain"] == ""
    assert k["creation_time"].endswith("Z")
    if t == "ed25519":
        assert len(base64.b64decode(k["public_key"])) == 32
    else:
        assert k["public_key"].startswith("-----BEGIN PUBLIC KEY-----\n")
        assert k["public_key"].endswith("-----END PUBLIC KEY-----\n")
        serialization.load_pem_public_key(k["public_key"].encode())
    assert info["supports_signing"] and "kdf" not in info


def test_archive_rule_raise_lower_trim():
    p = make(KeyType.AES256_GCM96)
    cts = {}
    for v in range(1, 6):
        cts[v] = p.encrypt(b"x")[0]
        if v < 5:
            p.rotate()
    assert sorted(p.keys) == [1, 2, 3, 4, 5] and len(p.archive) == 6
    p.update_config(min_decryption_version=3)
    assert sorted(p.keys) == [3, 4, 5]
    assert sorted(p.key_info()["keys"]) == ["3", "4", "5"]
    q = Policy.loads(p.dumps(), p.dumps_archive())
    assert sorted(q.keys) == [3, 4, 5]
    assert len(json.loads(p.dumps())["keys"]) == 3
    assert len(json.loads(p.dumps_archive())["keys"]) == 6
    q.update_config(min_decryption_version=1)  # brought back from the archive
    assert sorted(q.keys) == [1, 2, 3, 4, 5] and q.decrypt(cts[1]) == b"x"
    # trim
    with pytest.raises(UserError, match="cannot be set when minimum encryption version is not"):
        q.trim(2)
    q.update_config(min_decryption_version=3, min_encryption_version=4)
    for v, msg in [(5, "cannot be greater than minmum encryption version"),
                   (4, "cannot be greater than minimum decryption version"),
                   (0, "should be positive"), (-1, "cannot be decremented")]:
        with pytest.raises(UserError, match=msg):
            q.trim(v)
    q.trim(3)
    assert q.min_available_version == 3 and len(q.archive) == 3
    with pytest.raises(UserError, match="cannot be decremented"):
        q.trim(2)
    with pytest.raises(UserError, match="should not be less then min available version"):
        q.update_config(min_decryption_version=1)
    r = Policy.loads(q.dumps(), q.dumps_archive())
    assert r.decrypt(cts[3]) == b"x" and r.archive_min_version == 3
    r.rotate()
    assert r.latest_version == 6 and len(r.archive) == 4
    assert Policy.loads(r.dumps(), r.dumps_archive()).decrypt(r.encrypt(b"y")[0]) == b"y"


def test_update_config_messages_and_atomicity():
    p = make(KeyType.AES256_GCM96)
    p.rotate()
    assert p.update_config(min_decryption_version=0) == [
        "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"]
    with pytest.raises(UserError, match="^cannot set min decryption version of 3, latest key "
                                        "version is 2$"):
        p.update_config(min_decryption_version=3)
    with pytest.raises(UserError, match="^min decryption version cannot be negative$"):
        p.update_config(min_decryption_version=-1)
    with pytest.raises(UserError, match="^cannot set min encryption/decryption values; min "
                                        "encryption version of 1 must be greater than or equal "
                                        "to min decryption version of 2$"):
        p.update_config(min_decryption_version=2, min_encryption_version=1,
                        deletion_allowed=True)
    assert p.min_decryption_version == 1 and not p.deletion_allowed  # unchanged
    p.update_config(exportable=True, allow_plaintext_backup=True, deletion_allowed=True)
    p.update_config(exportable=False, allow_plaintext_backup=False)
    assert p.exportable and p.allow_plaintext_backup  # one-way
    with pytest.raises(UserError, match="at least an hour"):
        p.update_config(auto_rotate_period=5)
    p.update_config(auto_rotate_period=3600)
    assert p.key_info()["auto_rotate_period"] == 3600
    assert json.loads(p.dumps())["auto_rotate_period"] == 3600 * 10**9


def test_rotation_and_auto_rotate():
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    p = Policy.create("k", "chacha20-poly1305", auto_rotate_period=3600, now=t0)
    assert not p.needs_auto_rotate(t0 + timedelta(minutes=59))
    assert p.needs_auto_rotate(t0 + timedelta(hours=1, seconds=1))
    p.rotate(now=t0 + timedelta(hours=2))
    assert p.latest_version == 2 and p.keys[1].key != p.keys[2].key
    assert p.keys[1].hmac_key != p.keys[2].hmac_key
    assert not p.needs_auto_rotate(t0 + timedelta(hours=2, minutes=30))
    assert p.keys[2].creation_time == int((t0 + timedelta(hours=2)).timestamp())
    q = Policy.create("q", "aes128-gcm96")
    assert not q.needs_auto_rotate(datetime(2100, 1, 1, tzinfo=UTC))


def test_deepcopy_is_independent():
    p = make(KeyType.AES256_GCM96)
    q = copy.deepcopy(p)
    q.rotate()
    q.update_config(min_decryption_version=2)
    assert p.latest_version == 1 and sorted(p.keys) == [1] and len(p.archive) == 2
    ct, _ = p.encrypt(b"z")
    with pytest.raises(Exception, match="too old"):
        q.decrypt(ct)
    assert q.keys[2].key != p.keys[1].key


@pytest.mark.parametrize("t", ALL)
def test_backup_restore_roundtrip_every_type(t, rsa_policies):
    p = make(t, rsa_policies, **({} if t.is_rsa else {"exportable": True,
                                                    "allow_plaintext_backup": True}))
    p = copy.deepcopy(p)
    p.rotate()
    now = datetime(2024, 5, 5, tzinfo=UTC)
    blob = p.backup(now=now)
    assert p.backup_info == {"time": "2024-05-05T00:00:00Z", "version": 2}
    data = json.loads(base64.b64decode(blob))
    assert data["policy"]["type"] == t.vault_int
    assert len(data["archived_keys"]["keys"]) == 3
    assert data["archived_keys"]["keys"][0]["time"] == "0001-01-01T00:00:00Z"
    e = data["policy"]["keys"]["1"]
    if t.is_rsa:
        assert set(e["rsa_key"]) == {"N", "E", "D", "Primes", "Precomputed"}
        assert isinstance(e["rsa_key"]["N"], int) and e["rsa_key"]["E"] == 65537
    if t.is_ecdsa:
        assert all(isinstance(e[f], int) for f in ("ec_x", "ec_y", "ec_d"))
        assert e["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    r = Policy.restore(blob, name="restored", now=now)
    assert r.name == "restored" and r.restore_info == {"time": "2024-05-05T00:00:00Z",
                                                       "version": 2}
    assert r.to_json()["keys"] == p.to_json()["keys"]
    if t.supports_encryption:
        assert r.decrypt(p.encrypt(b"m", version=1)[0]) == b"m"
    if t.supports_signing:
        assert r.verify(b"m", p.sign(b"m", version=1).signature)
        assert p.verify(b"m", r.sign(b"m").signature)
    assert r.hmac(b"m") == p.hmac(b"m")
    assert r.export("hmac-key", None) == {**p.export("hmac-key", None), "name": "restored"}


def test_backup_errors():
    p = make(KeyType.AES256_GCM96)
    with pytest.raises(InternalError, match="^exporting is disallowed on the policy$"):
        p.backup()
    p.update_config(exportable=True)
    with pytest.raises(InternalError, match="^plaintext backup is disallowed on the policy$"):
        p.backup()
    assert p.backup_info is None


@pytest.mark.parametrize("blob", ["!!!", base64.b64encode(b"not json").decode(),
                                  base64.b64encode(b"{}").decode(),
                                  base64.b64encode(b'{"policy":{"type":99}}').decode(),
                                  base64.b64encode(b'{"policy":{"keys":{}}}').decode()])
def test_restore_bad_blobs(blob):
    with pytest.raises(InternalError):
        Policy.restore(blob)


def test_restore_vector_blob_both_archive_forms():
    for archived in ("null", "placeholder"):
        p = Policy.restore(vector_blob(archived=archived))
        assert p.name == "vec" and p.latest_version == 1 and len(p.archive) == 2
        assert p.key_info()["convergent_encryption_version"] == -1
        p.rotate()
        p.update_config(min_decryption_version=2)
        p.update_config(min_decryption_version=1)
        assert p.keys[1].key == bytes(range(32))


def test_loads_upgrades_old_policies():
    d = json.loads(base64.b64decode(vector_blob(derived=False, convergent=False)))["policy"]
    d["min_decryption_version"] = 0
    del d["keys"]["1"]["hmac_key"]
    p = Policy.loads(json.dumps(d).encode(), None)
    assert p.min_decryption_version == 1 and len(p.keys[1].hmac_key) == 32
    d2 = {"name": "old", "key": base64.b64encode(bytes(32)).decode(), "type": 0}
    q = Policy.loads(json.dumps(d2).encode(), None)
    assert q.latest_version == 1 and q.keys[1].key == bytes(32)
    with pytest.raises(InternalError):
        Policy.loads(b"{nope", None)


def test_unknown_fields_are_preserved():
    d = json.loads(base64.b64decode(vector_blob()))["policy"]
    d["future_field"] = {"a": 1}
    d["keys"]["1"]["managed_key_id"] = "x"
    p = Policy.loads(json.dumps(d).encode(), None)
    out = json.loads(p.dumps())
    assert out["future_field"] == {"a": 1} and out["keys"]["1"]["managed_key_id"] == "x"
