"""Rekey, root token generation and barrier rotation (spec operations-api §1-3) on real non-dev
servers, through the real hvac client (`client.sys.*`) and through the raw HTTP calls the
`vault`/`bao` CLI makes. PGP-encrypted shares and tokens are decrypted with the real `gpg`."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests

from tests.helpers import ServerProcess, free_port, init_and_unseal
from transit.generate_root import decode_token

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IDLE_REKEY = {"nonce": "", "started": False, "t": 0, "n": 0, "progress": 0,
              "pgp_fingerprints": None, "backup": False, "verification_required": False}


def _server(tmp: Path, seal: str = "") -> ServerProcess:
    port = free_port()
    cfg = tmp / f"server-{port}.hcl"
    cfg.write_text(
        'storage "inmem" {}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        f'api_addr = "http://127.0.0.1:{port}"\ndisable_mlock = true\n{seal}')
    return ServerProcess(["server", "-config", str(cfg)], port, token="",
                         log=tmp / f"srv-{port}.log")


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerProcess]:
    """A non-dev server, initialised with 3 shares (threshold 2) and unsealed;
    `srv.init` is the init response."""
    s = _server(tmp_path).start()
    try:
        s.init = init_and_unseal(s, 3, 2)  # type: ignore[attr-defined]
        yield s
    finally:
        s.stop()


def _raw(srv: ServerProcess, method: str, path: str, **kw: Any) -> requests.Response:
    """Raw HTTP on a new connection, no token unless given."""
    return requests.request(method, f"{srv.addr}/v1/{path}", timeout=30, **kw)


def _err(r: requests.Response) -> tuple[int, list[str]]:
    return r.status_code, r.json()["errors"]


def _seal_status(srv: ServerProcess) -> dict[str, Any]:
    return _raw(srv, "GET", "sys/seal-status").json()


def _unseal(srv: ServerProcess, keys: list[str]) -> requests.Response:
    r = None
    for k in keys:
        r = _raw(srv, "PUT", "sys/unseal", json={"key": k})
    assert r is not None
    return r


# -- rekey --------------------------------------------------------------------------------------


def test_rekey_hvac_end_to_end_old_shares_stop_working(srv: ServerProcess) -> None:
    client = srv.client()
    old = srv.init["keys"]  # type: ignore[attr-defined]
    client.sys.enable_secrets_engine("transit", path="transit")
    client.secrets.transit.create_key("k")
    ct = client.secrets.transit.encrypt_data("k", base64.b64encode(b"before").decode())
    term = client.sys.get_encryption_key_status()["data"]["term"]

    assert client.sys.read_rekey_progress() == {**IDLE_REKEY, "required": 2}
    assert client.rekey_status == {**IDLE_REKEY, "required": 2}
    started = client.sys.start_rekey(secret_shares=5, secret_threshold=3)
    nonce = started["nonce"]
    assert UUID.match(nonce)
    assert list(started) == ["nonce", "started", "t", "n", "progress", "required",
                             "pgp_fingerprints", "backup", "verification_required"]
    assert started == {**IDLE_REKEY, "nonce": nonce, "started": True, "t": 3, "n": 5,
                       "required": 2}
    # below the (current) threshold: the status, progress counted
    step = client.sys.rekey(old[0], nonce=nonce)
    assert step == {**started, "progress": 1}
    done = client.sys.rekey_multi([old[2]], nonce=nonce)
    assert done["complete"] is True and done["nonce"] == nonce
    assert list(done) == ["nonce", "complete", "keys", "keys_base64", "pgp_fingerprints",
                          "backup", "verification_required"]
    new, new_b64 = done["keys"], done["keys_base64"]
    assert len(new) == 5 and all(len(k) == 66 for k in new) and all(len(k) == 44 for k in new_b64)
    assert [base64.b64decode(b).hex() for b in new_b64] == new
    assert (done["pgp_fingerprints"], done["backup"], done["verification_required"]) == (
        None, False, False)
    # applied at once: new t/n, attempt gone, barrier terms unchanged
    status = _seal_status(srv)
    assert (status["t"], status["n"], status["sealed"]) == (3, 5, False)
    assert client.sys.read_rekey_progress() == {**IDLE_REKEY, "required": 3}
    assert client.sys.get_encryption_key_status()["data"]["term"] == term

    # seal; the old shares no longer unseal, the new ones do, and the data is all there
    client.sys.seal()
    for k in old[:2]:
        assert _raw(srv, "PUT", "sys/unseal", json={"key": k}).status_code == 200
    assert _seal_status(srv)["progress"] == 2  # threshold is 3 now
    assert _err(_raw(srv, "PUT", "sys/unseal", json={"key": old[2]})) == (
        400, ["Unseal failed, invalid key"])
    assert _seal_status(srv)["sealed"] is True
    assert _unseal(srv, [new_b64[4], new[1]]).json()["progress"] == 2
    assert _unseal(srv, [new[3]]).json()["sealed"] is False
    plain = client.secrets.transit.decrypt_data("k", ct["data"]["ciphertext"])
    assert base64.b64decode(plain["data"]["plaintext"]) == b"before"
    # and a rekey back to a single share: the share is the unseal key itself (32 bytes)
    nonce = client.sys.start_rekey(1, 1)["nonce"]
    single = client.sys.rekey_multi(new[:3], nonce=nonce)
    assert single["complete"] and len(single["keys"]) == 1 and len(single["keys"][0]) == 64
    client.sys.seal()
    assert _unseal(srv, single["keys"]).json()["sealed"] is False


def test_rekey_errors_and_cancel(srv: ServerProcess) -> None:
    client = srv.client()
    keys = srv.init["keys"]  # type: ignore[attr-defined]
    no_attempt = (400, ["no barrier rekey in progress"])
    assert _err(_raw(srv, "PUT", "sys/rekey/update", json={"key": keys[0], "nonce": "x"})) == \
        no_attempt
    nonce = client.sys.start_rekey(3, 2)["nonce"]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="rekey already in progress"):
        client.sys.start_rekey(3, 2)
    # the nonce is disclosed in the error text, as Vault does
    r = _raw(srv, "PUT", "sys/rekey/update", json={"key": keys[0], "nonce": "wrong"})
    assert _err(r) == (400, [f'incorrect nonce supplied; nonce for this rekey operation is '
                             f'"{nonce}"'])
    r = _raw(srv, "PUT", "sys/rekey/update", json={"key": keys[0]})  # absent nonce too
    assert r.status_code == 400 and "incorrect nonce" in r.json()["errors"][0]
    client.sys.rekey(keys[0], nonce)
    r = _raw(srv, "PUT", "sys/rekey/update", json={"key": keys[0], "nonce": nonce})
    assert _err(r) == (400, ["given key has already been provided during this generation "
                             "operation"])
    # a share of another key at the threshold: 500, progress reset, attempt and nonce kept
    other = "ab" * 33
    r = _raw(srv, "PUT", "sys/rekey/update", json={"key": other, "nonce": nonce})
    assert r.status_code == 500
    assert r.json()["errors"][0].startswith("failed to read root key: ")
    assert r.json()["errors"][0].endswith("cipher: message authentication failed")
    assert client.sys.read_rekey_progress()["nonce"] == nonce
    assert client.sys.read_rekey_progress()["progress"] == 0
    # cancel (hvac: the 204 Response); idle afterwards, also a second time; old keys valid
    assert client.sys.cancel_rekey().status_code == 204
    assert _raw(srv, "DELETE", "sys/rekey/init").status_code == 204
    assert client.sys.read_rekey_progress() == {**IDLE_REKEY, "required": 2}
    # a DELETE with a wrong nonce is refused while an attempt runs
    nonce = client.sys.start_rekey(3, 2)["nonce"]
    assert _err(_raw(srv, "DELETE", "sys/rekey/init", params={"nonce": "nope"})) == (
        400, ["invalid request"])
    assert _raw(srv, "DELETE", "sys/rekey/init", params={"nonce": nonce}).status_code == 204
    client.sys.seal()
    assert _unseal(srv, keys[1:]).json()["sealed"] is False


INIT_MALFORMED: list[tuple[dict[str, Any], int, str]] = [
        ({}, 500, "invalid rekey seal configuration: shares must be at least one"),
        ({"secret_shares": 3}, 500, "invalid rekey seal configuration: threshold must be at "
                                    "least one"),
        ({"secret_shares": 3, "secret_threshold": 1}, 500,
         "invalid rekey seal configuration: threshold must be greater than one for multiple "
         "shares"),
        ({"secret_shares": 256, "secret_threshold": 3}, 500,
         "invalid rekey seal configuration: shares must be less than 256"),
        ({"secret_shares": 2, "secret_threshold": 3}, 400,
         "provided threshold greater than the total shares"),
        ({"secret_shares": 2, "secret_threshold": 2, "backup": True}, 400,
         "cannot request a backup of the new keys without providing PGP keys for encryption"),
        ({"secret_shares": 2, "secret_threshold": 2, "pgp_keys": ["a"]}, 400,
         "incorrect number of PGP keys for rekey"),
        ({"secret_shares": 1, "secret_threshold": 1, "pgp_keys": ["!!"]}, 500,
         "invalid rekey seal configuration: error decoding given PGP key: illegal base64 data "
         "at input byte 0"),
        ({"secret_shares": 1, "secret_threshold": 1,
          "pgp_keys": [base64.b64encode(b"not a key").decode()]}, 500,
         "invalid rekey seal configuration: error parsing given PGP key: openpgp: invalid "
         "data: tag byte does not have MSB set"),
        ({"secret_shares": "3", "secret_threshold": 2}, 400,
         "json: cannot unmarshal string into Go struct field RekeyRequest.secret_shares of type "
         "int"),
        ({"secret_shares": 3, "secret_threshold": 2, "require_verification": "yes"}, 400,
         "json: cannot unmarshal string into Go struct field RekeyRequest.require_verification "
         "of type bool"),
        ({"secret_shares": 3, "secret_threshold": 2, "pgp_keys": "k"}, 400,
         "json: cannot unmarshal string into Go struct field RekeyRequest.pgp_keys of type "
         "[]string"),
    ]


def test_rekey_init_malformed(srv: ServerProcess) -> None:
    for body, status, message in INIT_MALFORMED:
        r = _raw(srv, "PUT", "sys/rekey/init", json=body)
        assert _err(r) == (status, [message]), body
        # nothing started, nothing changed
        assert _raw(srv, "GET", "sys/rekey/init").json() == {**IDLE_REKEY, "required": 2}
    assert _raw(srv, "PUT", "sys/rekey/init", data=b"[1]").status_code == 400
    assert (_seal_status(srv)["t"], _seal_status(srv)["n"]) == (2, 3)


def test_update_and_verify_malformed_keys(srv: ServerProcess) -> None:
    client = srv.client()
    keys = srv.init["keys"]  # type: ignore[attr-defined]
    nonce = client.sys.start_rekey(3, 2, require_verification=True)["nonce"]
    cases = [
        ({}, "'key' must be specified in request body as JSON"),
        ({"key": ""}, "'key' must be specified in request body as JSON"),
        ({"key": "zz-not-base64", "nonce": nonce}, "'key' must be a valid hex or base64 string"),
        # 15 bytes of hex is not taken as hex (too short), and is no base64 either
        ({"key": "ab" * 15, "nonce": nonce}, "'key' must be a valid hex or base64 string"),
        ({"key": base64.b64encode(b"x" * 15).decode(), "nonce": nonce},
         "key is shorter than minimum 16 bytes"),
        ({"key": base64.b64encode(b"x" * 34).decode(), "nonce": nonce},
         "key is longer than maximum 33 bytes"),
        ({"key": 5}, "json: cannot unmarshal number 5 into Go struct field "
                     "RekeyUpdateRequest.key of type string"),
    ]
    for body, message in cases:
        assert _err(_raw(srv, "PUT", "sys/rekey/update", json=body)) == (400, [message]), body
    assert _raw(srv, "PUT", "sys/rekey/update", data=b"{not json").status_code == 400
    assert _err(_raw(srv, "GET", "sys/rekey/update")) == (
        400, ["'key' must be specified in request body as JSON"])  # any verb, as Vault
    # the verify path: same decoding; no verification until the update completes
    assert _err(_raw(srv, "PUT", "sys/rekey/verify", json={"key": "eHh4eHh4eHh4eHh4eHh4"})) == (
        400, ["key is shorter than minimum 16 bytes"])
    assert _err(_raw(srv, "PUT", "sys/rekey/verify", json={"key": keys[0], "nonce": ""})) == (
        400, ["no rekey verification in progress"])
    assert client.sys.read_rekey_progress()["progress"] == 0  # nothing was counted
    client.sys.cancel_rekey()
    assert _err(_raw(srv, "GET", "sys/rekey/verify")) == (400, ["no rekey configuration found"])
    assert _err(_raw(srv, "DELETE", "sys/rekey/verify")) == (
        400, ["no rekey configuration found"])
    assert _err(_raw(srv, "PUT", "sys/rekey/verify", json={"key": keys[0]})) == (
        400, ["no rekey in progress"])
    assert _err(_raw(srv, "PUT", "sys/rekey-recovery-key/init", json={})) == (
        400, ["recovery rekeying not supported"])
    assert _raw(srv, "PATCH", "sys/rekey/init", json={}).status_code == 405


def test_rekey_with_verification(srv: ServerProcess) -> None:
    client = srv.client()
    old = srv.init["keys"]  # type: ignore[attr-defined]
    started = client.sys.start_rekey(4, 3, require_verification=True)
    nonce = started["nonce"]
    assert started["verification_required"] is True and "verification_nonce" not in started
    done = client.sys.rekey_multi(old[:2], nonce=nonce)
    assert done["complete"] is True and done["verification_required"] is True
    vnonce = done["verification_nonce"]
    assert UUID.match(vnonce) and vnonce != nonce
    new = done["keys"]
    # nothing applied yet: the old configuration and shares still hold
    assert (_seal_status(srv)["t"], _seal_status(srv)["n"]) == (2, 3)
    status = client.sys.read_rekey_progress()
    assert status["verification_nonce"] == vnonce and status["progress"] == 0
    r = _raw(srv, "PUT", "sys/rekey/update", json={"key": old[2], "nonce": nonce})
    assert _err(r) == (400, ["rekey operation already finished; verification must be performed; "
                             f'nonce for the verification operation is "{vnonce}"'])
    assert client.sys.read_rekey_verify_progress() == {
        "nonce": vnonce, "started": True, "t": 3, "n": 4, "progress": 0}
    # wrong nonce; then progress, and a restart (DELETE: 200 with a new nonce)
    r = _raw(srv, "PUT", "sys/rekey/verify", json={"key": new[0], "nonce": "x"})
    assert _err(r) == (400, [f'incorrect nonce supplied; nonce for this verify operation is '
                             f'"{vnonce}"'])
    assert client.sys.rekey_verify(new[0], vnonce)["progress"] == 1
    r = _raw(srv, "PUT", "sys/rekey/verify", json={"key": new[0], "nonce": vnonce})
    assert _err(r) == (400, ["given key has already been provided during this verify operation"])
    restarted = client.sys.cancel_rekey_verify()
    assert restarted["progress"] == 0 and restarted["started"] is True
    assert restarted["nonce"] != vnonce
    vnonce = restarted["nonce"]
    # the wrong shares (old ones) at the new threshold: refused, nonce rotated
    r = None
    for k in old:
        r = _raw(srv, "PUT", "sys/rekey/verify", json={"key": k, "nonce": vnonce})
    assert r is not None
    assert _err(r) == (400, ["rekey verification failed; incorrect key shares supplied"])
    rotated = client.sys.read_rekey_verify_progress()["nonce"]
    assert rotated != vnonce
    assert (_seal_status(srv)["t"], _seal_status(srv)["n"]) == (2, 3)
    # the right ones: applied
    result = client.sys.rekey_verify_multi(new[1:4], rotated)
    assert result == {"nonce": rotated, "complete": True}
    assert (_seal_status(srv)["t"], _seal_status(srv)["n"]) == (3, 4)
    assert client.sys.read_rekey_progress() == {**IDLE_REKEY, "required": 3}
    client.sys.seal()
    assert _err(_unseal(srv, old)) == (400, ["Unseal failed, invalid key"])
    assert _unseal(srv, [new[3], new[0], new[2]]).json()["sealed"] is False


# -- PGP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A GnuPG home with an RSA key (encryption subkey), a Curve25519 one, and a sign-only
    RSA key; their base64 public keys and fingerprints."""
    if shutil.which("gpg") is None:
        pytest.fail("gpg is not installed (run `make deps`)")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    base = ["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--pinentry-mode",
            "loopback", "--quiet"]

    def run(*args: str, data: bytes | None = None) -> bytes:
        return subprocess.run([*base, *args], input=data, capture_output=True, check=True,
                              timeout=60).stdout

    run("--quick-gen-key", "RSA <rsa@example.com>", "rsa2048", "default", "never")
    fpr = [ln.split(":")[9] for ln in run("--with-colons", "--list-keys", "rsa@example.com")
           .decode().splitlines() if ln.startswith("fpr")][0]
    run("--quick-add-key", fpr, "rsa2048", "encr", "never")
    run("--quick-gen-key", "CV <cv@example.com>", "future-default", "default", "never")
    run("--quick-gen-key", "Sign <so@example.com>", "rsa2048", "sign", "never")
    out: dict[str, Any] = {"decrypt": lambda blob: run("--decrypt", data=blob).decode()}
    for name in ("rsa", "cv", "so"):
        key = run("--export", f"{name}@example.com")
        fprs = [ln.split(":")[9] for ln in run("--with-colons", "--list-keys",
                                               f"{name}@example.com").decode().splitlines()
                if ln.startswith("fpr")]
        out[name] = (base64.b64encode(key).decode(), fprs[0].lower())
    return out


def test_rekey_pgp_shares_and_backup(srv: ServerProcess, gpg: dict[str, Any]) -> None:
    client = srv.client()
    old = srv.init["keys"]  # type: ignore[attr-defined]
    (rsa, rsa_fpr), (cv, cv_fpr) = gpg["rsa"], gpg["cv"]
    started = client.sys.start_rekey(3, 2, pgp_keys=[rsa, cv, rsa], backup=True)
    assert started["pgp_fingerprints"] == [rsa_fpr, cv_fpr, rsa_fpr]
    assert started["backup"] is True
    done = client.sys.rekey_multi(old[:2], nonce=started["nonce"])
    assert done["pgp_fingerprints"] == [rsa_fpr, cv_fpr, rsa_fpr] and done["backup"] is True
    # each share's hex text, encrypted to its key; keys_base64 = the same bytes in base64
    messages = [bytes.fromhex(k) for k in done["keys"]]
    assert [base64.b64decode(k) for k in done["keys_base64"]] == messages
    shares = [gpg["decrypt"](m) for m in messages]
    assert all(len(s) == 66 and bytes.fromhex(s) for s in shares)
    # the backup: GET with a token (envelope, data also at the top level), grouped by key
    backup = client.sys.read_backup_keys()
    assert backup["data"] == {
        "nonce": started["nonce"],
        "keys": {rsa_fpr: [done["keys"][0], done["keys"][2]], cv_fpr: [done["keys"][1]]},
        "keys_base64": {rsa_fpr: [done["keys_base64"][0], done["keys_base64"][2]],
                        cv_fpr: [done["keys_base64"][1]]},
    }
    assert backup["nonce"] == started["nonce"] and backup["keys"] == backup["data"]["keys"]
    assert _raw(srv, "GET", "sys/rekey/backup").status_code == 403
    r = _raw(srv, "DELETE", "sys/rekey/backup", headers={"X-Vault-Token": srv.token})
    assert r.status_code == 204
    with pytest.raises(hvac.exceptions.InvalidRequest, match="no backed-up keys found"):
        client.sys.read_backup_keys()
    client.sys.seal()
    assert _unseal(srv, shares[1:]).json()["sealed"] is False

    # a key that cannot encrypt: accepted at init (it parses), refused at completion
    so, so_fpr = gpg["so"]
    nonce = client.sys.start_rekey(1, 1, pgp_keys=[so])["nonce"]
    r = _raw(srv, "PUT", "sys/rekey/update", json={"key": shares[0], "nonce": nonce})
    r = _raw(srv, "PUT", "sys/rekey/update", json={"key": shares[2], "nonce": nonce})
    assert r.status_code == 500
    assert r.json()["errors"][0].startswith("failed to encrypt shares: ")
    assert r.json()["errors"][0].endswith("has no valid encryption keys")
    client.sys.cancel_rekey()
    client.sys.seal()  # nothing changed: the decrypted shares still unseal
    assert _unseal(srv, shares[:2]).json()["sealed"] is False


# -- root token generation ----------------------------------------------------------------------


def test_generate_root_otp_hvac(srv: ServerProcess) -> None:
    client = srv.client()
    keys = srv.init["keys"]  # type: ignore[attr-defined]
    idle = client.sys.read_root_generation_progress()
    assert idle == {"nonce": "", "started": False, "progress": 0, "required": 2,
                    "complete": False, "encoded_token": "", "encoded_root_token": "",
                    "pgp_fingerprint": "", "otp": "", "otp_length": 28}
    assert list(idle) == ["nonce", "started", "progress", "required", "complete",
                          "encoded_token", "encoded_root_token", "pgp_fingerprint", "otp",
                          "otp_length"]
    assert client.generate_root_status == idle
    started = client.sys.start_root_token_generation()  # no OTP given: the server makes one
    otp, nonce = started["otp"], started["nonce"]
    assert len(otp) == 28 and otp.isalnum() and UUID.match(nonce)
    assert started == {**idle, "nonce": nonce, "started": True, "otp": otp}
    assert client.sys.read_root_generation_progress()["otp"] == ""  # shown once only
    with pytest.raises(hvac.exceptions.InvalidRequest, match="root generation already in "
                                                             "progress"):
        client.sys.start_root_token_generation()
    step = client.sys.generate_root(keys[2], nonce)
    assert step == {"nonce": nonce, "started": True, "progress": 1, "required": 2,
                    "complete": False, "encoded_token": "", "encoded_root_token": "",
                    "pgp_fingerprint": "", "otp": "", "otp_length": 0}
    r = _raw(srv, "PUT", "sys/generate-root/update", json={"key": keys[2], "nonce": nonce})
    assert _err(r) == (400, ["given key has already been provided during this generation "
                             "operation"])
    r = _raw(srv, "PUT", "sys/generate-root/update", json={"key": keys[0], "nonce": "n"})
    assert _err(r) == (400, ["incorrect nonce supplied; nonce for this root generation "
                             f'operation is "{nonce}"'])
    done = client.sys.generate_root(keys[0], nonce)
    assert done["complete"] is True and done["progress"] == done["required"] == 2
    assert done["encoded_token"] == done["encoded_root_token"]
    assert len(done["encoded_token"]) == 38  # unpadded base64 of 28 bytes
    token = decode_token(done["encoded_token"], otp)
    me = hvac.Client(url=srv.addr, token=token).auth.token.lookup_self()["data"]
    assert (me["policies"], me["ttl"], me["expire_time"], me["orphan"], me["path"],
            me["display_name"]) == (["root"], 0, None, True, "auth/token/root", "root")
    assert client.sys.read_root_generation_progress() == idle  # cleared
    # a caller's own OTP; cancel (hvac: the 204 Response), also when idle
    mine = "A" * 28
    started = client.sys.start_root_token_generation(otp=mine)
    assert started["otp"] == "" and started["started"] is True
    assert client.sys.cancel_root_generation().status_code == 204
    assert _raw(srv, "DELETE", "sys/generate-root/attempt").status_code == 204
    assert client.sys.read_root_generation_progress()["started"] is False


def test_generate_root_errors(srv: ServerProcess, gpg: dict[str, Any]) -> None:
    client = srv.client()
    keys = srv.init["keys"]  # type: ignore[attr-defined]
    for body, message in [
        ({"otp": "short"}, "OTP string is wrong length"),
        ({"otp": "x" * 26, "pgp_key": gpg["rsa"][0]}, "OTP string is wrong length"),
        ({"pgp_key": "%%%"}, "error parsing PGP key: error decoding given PGP key: illegal "
                             "base64 data at input byte 0"),
        ({"otp": 7}, "json: cannot unmarshal number 7 into Go struct field "
                     "GenerateRootInitRequest.otp of type string"),
    ]:
        assert _err(_raw(srv, "PUT", "sys/generate-root/attempt", json=body)) == (
            400, [message]), body
    assert client.sys.read_root_generation_progress()["started"] is False
    r = _raw(srv, "PUT", "sys/generate-root/update", json={"key": keys[0], "nonce": "x"})
    assert _err(r) == (400, ["no root generation in progress"])
    for body, message in [
        ({}, "'key' must be specified in request body as JSON"),
        ({"key": "ab" * 10}, "invalid key: key is shorter than minimum 16 bytes"),
        ({"key": "ab" * 34}, "invalid key: key is longer than maximum 33 bytes"),
        ({"key": "not hex, not base64"}, "'key' must be a valid hex or base64 string"),
    ]:
        assert _err(_raw(srv, "PUT", "sys/generate-root/update", json=body)) == (
            400, [message]), body
    # the wrong shares at the threshold: aborted, progress reset, attempt and nonce kept
    nonce = client.sys.start_root_token_generation(otp="B" * 28)["nonce"]
    client.sys.generate_root(keys[0], nonce)
    r = _raw(srv, "PUT", "sys/generate-root/update", json={"key": "cd" * 33, "nonce": nonce})
    assert r.status_code == 400
    assert r.json()["errors"][0].startswith("root generation aborted: ")
    status = client.sys.read_root_generation_progress()
    assert (status["nonce"], status["progress"], status["started"]) == (nonce, 0, True)
    client.sys.cancel_root_generation()


def test_generate_root_pgp(srv: ServerProcess, gpg: dict[str, Any]) -> None:
    client = srv.client()
    keys = srv.init["keys"]  # type: ignore[attr-defined]
    cv, cv_fpr = gpg["cv"]
    started = client.sys.start_root_token_generation(pgp_key=cv)
    assert started["pgp_fingerprint"] == cv_fpr and started["otp"] == ""
    done = client.sys.generate_root(keys[1], started["nonce"])
    assert done["pgp_fingerprint"] == cv_fpr and done["complete"] is False
    done = client.sys.generate_root(keys[2], started["nonce"])
    assert done["complete"] is True
    token = gpg["decrypt"](base64.b64decode(done["encoded_token"]))  # base64 -d | gpg -dq
    assert token.startswith("hvs.") and len(token) == 28
    me = hvac.Client(url=srv.addr, token=token).auth.token.lookup_self()["data"]
    assert me["policies"] == ["root"]


# -- the CLI's calls, sealed and uninitialised nodes, sys/rotate ---------------------------------


def test_cli_equivalent_calls_and_rotate(srv: ServerProcess) -> None:
    keys = srv.init["keys"]  # type: ignore[attr-defined]
    bogus = {"X-Vault-Token": "hvs.bogus"}  # ignored on these endpoints
    # vault operator rekey -init -key-shares=2 -key-threshold=2 (the api also sends these)
    r = _raw(srv, "PUT", "sys/rekey/init", headers=bogus, json={
        "secret_shares": 2, "secret_threshold": 2, "stored_shares": 1, "pgp_keys": None,
        "backup": False, "require_verification": False})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    nonce = r.json()["nonce"]
    # -status, then the shares with -nonce (PUT update {key, nonce}); POST works too
    assert _raw(srv, "GET", "sys/rekey/init", headers=bogus).json()["nonce"] == nonce
    assert _raw(srv, "POST", "sys/rekey/update", json={"Key": keys[0], "Nonce": nonce}
                ).json()["progress"] == 1  # field names match case-insensitively
    done = _raw(srv, "PUT", "sys/rekey/update", json={"key": keys[1], "nonce": nonce}).json()
    assert done["complete"] is True and len(done["keys"]) == 2
    # -backup-retrieve / -backup-delete: token required; nothing backed up
    assert _err(_raw(srv, "GET", "sys/rekey/backup", headers={"X-Vault-Token": srv.token})) == (
        400, ["no backed-up keys found"])
    # -cancel
    _raw(srv, "PUT", "sys/rekey/init", json={"secret_shares": 1, "secret_threshold": 1})
    assert _raw(srv, "DELETE", "sys/rekey/init", headers=bogus).status_code == 204
    # generate-root -init: the Go client sends both fields, empty -> a generated OTP
    r = _raw(srv, "PUT", "sys/generate-root/attempt", json={"otp": "", "pgp_key": ""})
    otp, nonce = r.json()["otp"], r.json()["nonce"]
    # -decode first GETs the attempt for otp_length
    assert _raw(srv, "GET", "sys/generate-root/attempt").json()["otp_length"] == 28
    for k in done["keys"]:
        r = _raw(srv, "PUT", "sys/generate-root/update", json={"key": k, "nonce": nonce})
    token = decode_token(r.json()["encoded_token"], otp)
    r = _raw(srv, "GET", "auth/token/lookup-self", headers={"X-Vault-Token": token})
    assert r.json()["data"]["policies"] == ["root"]
    # vault operator rotate: POST sys/rotate (no body, 204), then GET sys/key-status
    before = _raw(srv, "GET", "sys/key-status", headers={"X-Vault-Token": token}).json()
    assert _raw(srv, "POST", "sys/rotate", headers={"X-Vault-Token": token}).status_code == 204
    after = _raw(srv, "GET", "sys/key-status", headers={"X-Vault-Token": token}).json()
    assert after["data"]["term"] == before["data"]["term"] + 1 == after["term"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", after["data"]["install_time"])
    assert after["data"]["encryptions"] >= 0
    r = _raw(srv, "GET", "sys/rotate", headers={"X-Vault-Token": token})
    assert _err(r) == (405, ["1 error occurred:\n\t* unsupported operation\n\n"])
    assert _raw(srv, "POST", "sys/rotate").status_code == 403
    assert srv.client(token).sys.rotate_encryption_key().status_code == 204  # hvac: PUT
    assert srv.client(token).key_status["term"] == after["data"]["term"] + 1
    # and the rekeyed, rotated barrier still unseals with the new shares
    _raw(srv, "PUT", "sys/seal", headers={"X-Vault-Token": token})
    assert _unseal(srv, done["keys"]).json()["sealed"] is False


def test_uninitialised_and_sealed(tmp_path: Path) -> None:
    srv = _server(tmp_path).start()
    try:
        for path in ("sys/rekey/init", "sys/generate-root/attempt", "sys/rekey/verify"):
            assert _err(_raw(srv, "GET", path)) == (400, ["server is not yet initialized"])
        init = _raw(srv, "PUT", "sys/init", json={"secret_shares": 1, "secret_threshold": 1})
        key = init.json()["keys"][0]
        sealed = (503, ["Vault is sealed"])
        for method, path, body in [
            ("GET", "sys/rekey/init", None), ("PUT", "sys/rekey/init",
                                              {"secret_shares": 1, "secret_threshold": 1}),
            ("DELETE", "sys/rekey/init", None), ("PUT", "sys/rekey/update", {"key": key}),
            ("GET", "sys/generate-root/attempt", None), ("PUT", "sys/generate-root/attempt", {}),
            ("DELETE", "sys/generate-root/attempt", None),
            ("PUT", "sys/generate-root/update", {"key": key}),
        ]:
            assert _err(_raw(srv, method, path, json=body)) == sealed, (method, path)
        # sealing drops an attempt in progress
        assert _unseal(srv, [key]).json()["sealed"] is False
        token = init.json()["root_token"]
        _raw(srv, "PUT", "sys/rekey/init", json={"secret_shares": 1, "secret_threshold": 1})
        _raw(srv, "PUT", "sys/seal", headers={"X-Vault-Token": token})
        _unseal(srv, [key])
        assert _raw(srv, "GET", "sys/rekey/init").json()["started"] is False
    finally:
        srv.stop()


def test_static_seal_root_generation_uses_recovery_shares(tmp_path: Path) -> None:
    seal = f'seal "static" {{\n  current_key = "{"ab" * 32}"\n}}\n'
    srv = _server(tmp_path, seal).start()
    try:
        init = _raw(srv, "PUT", "sys/init", json={"recovery_shares": 3, "recovery_threshold": 2})
        recovery = init.json()["recovery_keys"]
        client = srv.client(init.json()["root_token"])
        assert client.sys.read_root_generation_progress()["required"] == 2
        otp = client.sys.start_root_token_generation()["otp"]
        nonce = client.sys.read_root_generation_progress()["nonce"]
        client.sys.generate_root(recovery[0], nonce)
        r = _raw(srv, "PUT", "sys/generate-root/update", json={"key": "ab" * 33, "nonce": nonce})
        assert _err(r) == (400, ["root generation aborted: recovery key verification failed: "
                                 "invalid recovery key"])
        client.sys.generate_root(recovery[1], nonce)
        done = client.sys.generate_root(recovery[2], nonce)
        token = decode_token(done["encoded_token"], otp)
        assert srv.client(token).auth.token.lookup_self()["data"]["policies"] == ["root"]
        # the static seal itself is not rekeyed here
        r = _raw(srv, "PUT", "sys/rekey/init", json={"secret_shares": 1, "secret_threshold": 1})
        assert _err(r) == (400, ["rekeying is supported with the Shamir seal only; this node "
                                 "uses a static seal"])
    finally:
        srv.stop()
