"""The fuzz suite's own dev server (a fuzz run mutates a lot), with fixtures the properties
rely on: a root token, a limited token whose policy allows some paths and denies others, keys
of every family, KV v1 and v2 mounts, and canary secrets on the denied paths.

Token ids and the canary are fixed strings so that a falsifying example printed by
Hypothesis is a complete reproducer (it shows the literal headers). Values only known once
the server runs (a ciphertext, a signature, a backup) go into `RUNTIME`, which the body
strategies read when they draw.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ServerProcess
from tests.jwtmint import ec_key, public_pem

ROOT_TOKEN = "fuzz-root-0c5e7a41d2"
LIMITED_TOKEN = "fuzz-limited-93b1f6e0"
LIMITED_POLICY = "fuzz-limited"
CANARY = "fuzz-canary-5d0e2b7f9a"
CANARY_B64 = base64.b64encode(CANARY.encode()).decode()

# Mounts the suite may never lose (sys/mounts writes on them are kept away from root).
FIXTURE_MOUNTS = ("transit", "secret", "kv1", "sys", "auth/token", "cubbyhole")

# The limited token's only policy (no `default`): allowed prefixes, and inside them paths
# that are denied outright. `sys/*` is denied as a whole; `auth/token/*` is simply not granted.
ALL_CAPS = '["create", "read", "update", "delete", "list", "patch"]'
DENY_EXACT = (
    "transit/encrypt/prod", "transit/decrypt/prod",
    "secret/config", "secret/data/denied", "secret/metadata/denied", "secret/subkeys/denied",
    "secret/delete/denied", "secret/undelete/denied", "secret/destroy/denied",
)
DENY_GLOB = ("transit/keys/prod", "kv1/denied", "sys/")  # "<prefix>*" rules
ALLOWED_PREFIXES = ("transit/", "secret/", "kv1/")
LIMITED_HCL = "\n".join(
    [f'path "{p}*" {{ capabilities = {ALL_CAPS} }}' for p in ALLOWED_PREFIXES]
    + [f'path "{p}" {{ capabilities = ["deny"] }}' for p in DENY_EXACT]
    + [f'path "{p}*" {{ capabilities = ["deny"] }}' for p in DENY_GLOB]
) + "\n"

# transit keys created up front: name -> creation body
KEYS: dict[str, dict[str, Any]] = {
    "prod": {},
    "other": {},
    "a128": {"type": "aes128-gcm96"},
    "cha": {"type": "chacha20-poly1305"},
    "rsa": {"type": "rsa-2048"},
    "ed": {"type": "ed25519"},
    "ec": {"type": "ecdsa-p256"},
    "hm": {"type": "hmac", "key_size": 32},
    "exp": {"exportable": True, "allow_plaintext_backup": True},
    "der": {"derived": True},
    "conv": {"derived": True, "convergent_encryption": True},
}

# Strings only known once the server runs (filled by the fixture, read by the strategies).
RUNTIME: dict[str, str] = {}
RUNTIME_NAMES = ("canary_ciphertext", "ciphertext", "derived_ciphertext", "signature", "hmac",
                 "backup", "rsa_public_key", "wrapping_key", "spare_token", "spare_accessor",
                 "wrapping_token")


@dataclass
class FuzzEnv:
    srv: ServerProcess
    log_path: Path
    log_offset: int = 0
    checks: int = 0
    peak_rss_kib: int = 0

    @property
    def pid(self) -> int:
        assert self.srv.proc is not None
        return self.srv.proc.pid

    def new_log(self) -> str:
        """The server log written since the last call."""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            data = f.read()
        self.log_offset += len(data)
        return data.decode("utf-8", "replace")

    def root(self, method: str, path: str, **kw: Any) -> Any:
        return self.srv.request(method, path, token=ROOT_TOKEN, **kw)

    def limited(self, method: str, path: str, **kw: Any) -> Any:
        return self.srv.request(method, path, token=LIMITED_TOKEN, **kw)


def _ok(r: Any, *codes: int) -> Any:
    assert r.status_code in (codes or (200, 204)), (r.status_code, r.text)
    return r.json() if r.status_code == 200 else None


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzEnv]:
    srv = ServerProcess.dev(tmp_path_factory.mktemp("fuzz"), token=ROOT_TOKEN).start()
    assert srv.log_path is not None
    env = FuzzEnv(srv, srv.log_path)
    try:
        _setup(env)
        env.new_log()  # start-up lines are not the fuzzer's business
        yield env
    finally:
        srv.stop()


def _setup(env: FuzzEnv) -> None:
    root = env.root
    _ok(root("POST", "sys/mounts/kv1", json={"type": "kv"}), 204)
    _ok(root("POST", "sys/auth/userpass", json={"type": "userpass"}), 204)
    _ok(root("POST", "auth/userpass/users/alice", json={"password": "pw"}), 204)
    _ok(root("POST", "sys/auth/jwt", json={"type": "jwt"}), 204)
    _ok(root("POST", "auth/jwt/config",
             json={"jwt_validation_pubkeys": [public_pem(ec_key())]}), 204)
    _ok(root("POST", "auth/jwt/role/r", json={"role_type": "jwt", "user_claim": "sub",
                                              "bound_subject": "s"}), 204)
    _ok(root("POST", "sys/auth/cert", json={"type": "cert"}), 204)
    _ok(root("POST", "sys/auth/approle", json={"type": "approle"}), 204)
    _ok(root("POST", "auth/approle/role/r1", json={"secret_id_num_uses": 3}), 204)
    _ok(root("POST", "auth/approle/role/r1/secret-id", json={}))
    for name, body in KEYS.items():
        _ok(root("POST", f"transit/keys/{name}", json=body))
    wrapping_key = _ok(root("GET", "transit/wrapping_key"))["data"]["public_key"]
    canary_ct = _ok(root("POST", "transit/encrypt/prod", json={"plaintext": CANARY_B64})
                    )["data"]["ciphertext"]
    other_ct = _ok(root("POST", "transit/encrypt/other", json={"plaintext": "aGVsbG8="})
                   )["data"]["ciphertext"]
    der_ct = _ok(root("POST", "transit/encrypt/der",
                      json={"plaintext": "aGVsbG8=", "context": "Y3R4"}))["data"]["ciphertext"]
    sig = _ok(root("POST", "transit/sign/ed", json={"input": "aGVsbG8="}))["data"]["signature"]
    hmac = _ok(root("POST", "transit/hmac/hm", json={"input": "aGVsbG8="}))["data"]["hmac"]
    backup = _ok(root("GET", "transit/backup/exp"))["data"]["backup"]
    rsa_pub = _ok(root("GET", "transit/keys/rsa"))["data"]["keys"]["1"]["public_key"]
    _ok(root("POST", "secret/data/denied", json={"data": {"canary": CANARY}}))
    _ok(root("POST", "secret/data/public", json={"data": {"v": "public"}}))
    _ok(root("POST", "kv1/denied", json={"canary": CANARY}), 204)
    _ok(root("POST", "kv1/public", json={"v": "public"}), 204)
    _ok(root("PUT", f"sys/policies/acl/{LIMITED_POLICY}", json={"policy": LIMITED_HCL}), 204)
    _ok(root("POST", "auth/token/create", json={
        "id": LIMITED_TOKEN, "policies": [LIMITED_POLICY], "no_default_policy": True}))
    spare = _ok(root("POST", "auth/token/create", json={"policies": ["default"]}))["auth"]
    _ok(root("POST", "auth/token/roles/r1", json={"allowed_policies": ["default"]}), 204)
    wrapped = _ok(env.srv.request("POST", "sys/wrapping/wrap", token=ROOT_TOKEN,
                                  json={"k": "v"}, headers={"X-Vault-Wrap-TTL": "1h"}))
    values = (canary_ct, other_ct, der_ct, sig, hmac, backup, rsa_pub, wrapping_key,
              spare["client_token"], spare["accessor"], wrapped["wrap_info"]["token"])
    RUNTIME.update(zip(RUNTIME_NAMES, values, strict=True))
