"""Hostile paths (issue 9, item 1; DESIGN §7 "Hostile input"): a control character anywhere in
the path is refused with a 400 before routing, token lookup and the ACL, so that it can never
turn an exact `deny` rule or an exact sudo path into a different string that still routes to
the same handler (`transit/encrypt/prod%0A` used to encrypt with `prod`, `sys/seal%0A` used to
seal without sudo). OpenBao 2.7.2 answers every case here with a bare 400.

The tests run against their own dev server: a regression here would seal it.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import ServerProcess

# Every C0 control character and DEL: 33 of them.
CONTROL = [*range(0x20), 0x7F]
IDS = [f"{c:02X}" for c in CONTROL]
assert len(CONTROL) == 33

SECRET = "s3cr3t-value-never-leaked"
LOCKED_POLICY = 'path "transit/keys/*" {\n  capabilities = ["read"]\n}\n'
HOSTILE_POLICY = """
path "transit/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "transit/encrypt/prod" { capabilities = ["deny"] }
path "transit/decrypt/prod" { capabilities = ["deny"] }
path "secret/*" { capabilities = ["create", "read", "update", "delete", "list", "patch"] }
path "secret/data/denied" { capabilities = ["deny"] }
path "secret/metadata/denied" { capabilities = ["deny"] }
path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "sys/policies/acl/locked" { capabilities = ["deny"] }
path "sys/*" { capabilities = ["create", "read", "update", "delete", "list"] }
"""
PLAINTEXT = base64.b64encode(b"hello").decode()


class Env:
    def __init__(self, srv: ServerProcess, token: str, ciphertext: str) -> None:
        self.srv = srv
        self.token = token  # the hostile token
        self.ciphertext = ciphertext  # made with "prod" by root

    def raw(self, method: str, path: str, token: str | None = None, **kw: object
            ) -> requests.Response:
        """`path` goes on the wire as written (already percent-encoded), after /v1/."""
        h = {"X-Vault-Token": self.token if token is None else token}
        return self.srv.session.request(method, f"{self.srv.addr}/v1/{path}", headers=h,
                                        timeout=30, **kw)  # type: ignore[arg-type]

    def root(self, method: str, path: str, **kw: object) -> requests.Response:
        return self.srv.request(method, path, **kw)  # type: ignore[arg-type]

    def kv_state(self) -> tuple[int, dict[str, str]]:
        r = self.root("GET", "secret/data/denied")
        assert r.status_code == 200, r.text
        return r.json()["data"]["metadata"]["version"], r.json()["data"]["data"]

    def policy_text(self) -> str:
        r = self.root("GET", "sys/policies/acl/locked")
        assert r.status_code == 200, r.text
        return r.json()["data"]["policy"]

    def sealed(self) -> bool:
        return self.root("GET", "sys/seal-status").json()["sealed"]

    def term(self) -> int:
        r = self.root("GET", "sys/key-status")
        assert r.status_code == 200, r.text
        return r.json()["data"]["term"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    srv = ServerProcess.dev(Path(tmp_path_factory.mktemp("hostile"))).start()
    try:
        for name in ("prod", "other"):
            assert srv.request("POST", f"transit/keys/{name}").status_code in (200, 204)
        r = srv.request("POST", "transit/encrypt/prod", json={"plaintext": PLAINTEXT})
        assert r.status_code == 200, r.text
        ciphertext = r.json()["data"]["ciphertext"]
        r = srv.request("POST", "secret/data/denied", json={"data": {"value": SECRET}})
        assert r.status_code == 200, r.text
        r = srv.request("PUT", "sys/policies/acl/locked", json={"policy": LOCKED_POLICY})
        assert r.status_code == 204, r.text
        r = srv.request("PUT", "sys/policies/acl/hostile", json={"policy": HOSTILE_POLICY})
        assert r.status_code == 204, r.text
        r = srv.request("POST", "auth/token/create",
                        json={"policies": ["hostile"], "no_default_policy": True})
        assert r.status_code == 200, r.text
        yield Env(srv, r.json()["auth"]["client_token"], ciphertext)
    finally:
        srv.stop()


def _refused(r: requests.Response) -> None:
    """Vault's 400 with an `errors` list, and nothing of a success body."""
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert isinstance(body.get("errors"), list) and set(body) == {"errors"}
    assert SECRET not in r.text


def _variants(path: str, c: int) -> list[str]:
    """`path` with %XX appended, embedded in its last segment, and before its last segment."""
    enc = f"%{c:02X}"
    head, _, last = path.rpartition("/")
    return [path + enc, f"{head}/{last[:2]}{enc}{last[2:]}", f"{head}/{enc}{last}",
            f"{head}{enc}/{last}"]


# -- the policy means what it says (without these the tests below would prove nothing) -----


def test_policy_denies_the_exact_paths_and_allows_the_rest(env: Env) -> None:
    assert env.raw("POST", "transit/encrypt/prod", json={"plaintext": PLAINTEXT}
                   ).status_code == 403
    assert env.raw("POST", "transit/decrypt/prod", json={"ciphertext": env.ciphertext}
                   ).status_code == 403
    assert env.raw("POST", "transit/encrypt/other", json={"plaintext": PLAINTEXT}
                   ).status_code == 200
    assert env.raw("GET", "secret/data/denied").status_code == 403
    assert env.raw("POST", "secret/data/denied", json={"data": {"value": "x"}}).status_code == 403
    assert env.raw("PUT", "sys/policies/acl/locked", json={"policy": 'path "*" {}'}
                   ).status_code == 403
    assert env.raw("POST", "sys/seal").status_code == 403  # no sudo
    assert env.raw("POST", "sys/rotate").status_code == 403  # no sudo
    assert env.raw("GET", "sys/key-status").status_code == 200  # sys/* read is granted
    assert not env.sealed()


# -- every control character, on deny paths ---------------------------------------------------


@pytest.mark.parametrize("c", CONTROL, ids=IDS)
def test_transit_deny_cannot_be_bypassed(env: Env, c: int) -> None:
    for path in _variants("transit/encrypt/prod", c):
        _refused(env.raw("POST", path, json={"plaintext": PLAINTEXT}))
    for path in _variants("transit/decrypt/prod", c):
        r = env.raw("POST", path, json={"ciphertext": env.ciphertext})
        _refused(r)
        assert PLAINTEXT not in r.text
    # refused before the token lookup and the ACL: the same without a token, or with a bad one
    _refused(env.raw("POST", f"transit/encrypt/prod%{c:02X}", token="",
                     json={"plaintext": PLAINTEXT}))
    _refused(env.raw("POST", f"transit/encrypt/prod%{c:02X}", token="bogus",
                     json={"plaintext": PLAINTEXT}))
    # and for root, on a path it may use: a control character is never a valid path
    _refused(env.raw("POST", f"transit/encrypt/other%{c:02X}", token=env.srv.token,
                     json={"plaintext": PLAINTEXT}))


@pytest.mark.parametrize("c", CONTROL, ids=IDS)
def test_kv_deny_cannot_be_bypassed(env: Env, c: int) -> None:
    before = env.kv_state()
    for path in _variants("secret/data/denied", c):
        _refused(env.raw("GET", path))
        _refused(env.raw("POST", path, json={"data": {"value": "overwritten"}}))
        _refused(env.raw("PUT", path, json={"data": {"value": "overwritten"}}))
        _refused(env.raw("DELETE", path))
    for path in _variants("secret/metadata/denied", c):
        _refused(env.raw("GET", path))
        _refused(env.raw("DELETE", path))
    assert env.kv_state() == before
    assert before[1] == {"value": SECRET}


@pytest.mark.parametrize("c", CONTROL, ids=IDS)
def test_policy_deny_cannot_be_bypassed(env: Env, c: int) -> None:
    takeover = 'path "*" {\n  capabilities = ["create", "read", "update", "delete", "sudo"]\n}\n'
    for path in _variants("sys/policies/acl/locked", c):
        _refused(env.raw("PUT", path, json={"policy": takeover}))
        _refused(env.raw("GET", path))
        _refused(env.raw("DELETE", path))
    assert env.policy_text() == LOCKED_POLICY


# -- every control character, on sudo paths ---------------------------------------------------


@pytest.mark.parametrize("c", CONTROL, ids=IDS)
def test_seal_and_rotate_need_sudo_whatever_the_suffix(env: Env, c: int) -> None:
    term = env.term()
    for path in [*_variants("sys/seal", c), *_variants("sys/rotate", c)]:
        for method in ("POST", "PUT"):
            _refused(env.raw(method, path))
            _refused(env.raw(method, path, token=""))
    assert not env.sealed()
    assert env.term() == term


# -- raw bytes and the other non-printable characters -----------------------------------------


def _raw_request(env: Env, method: str, target: bytes, token: str, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", env.srv.port), timeout=10) as s:
        s.sendall(
            method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Vault-Token: " + token.encode() + b"\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize("c", CONTROL, ids=IDS)
def test_raw_control_characters_are_refused(env: Env, c: int) -> None:
    """Unencoded, the HTTP parser itself refuses them (uvicorn/httptools: a plain-text 400,
    as Go's net/http does for OpenBao); either way nothing runs."""
    term = env.term()
    ch = bytes([c])
    body = b'{"plaintext": "' + PLAINTEXT.encode() + b'"}'
    for target in (b"/v1/transit/encrypt/prod" + ch, b"/v1/transit/encrypt/pr" + ch + b"od"):
        out = _raw_request(env, "POST", target, env.token, body)
        assert out.startswith(b"HTTP/1.1 400 "), out[:200]
        assert b"ciphertext" not in out
    for target in (b"/v1/sys/seal" + ch, b"/v1/sys/rotate" + ch):
        out = _raw_request(env, "POST", target, env.token)
        assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    out = _raw_request(env, "GET", b"/v1/secret/data/denied" + ch, env.token)
    assert out.startswith(b"HTTP/1.1 400 ") and SECRET.encode() not in out, out[:200]
    assert not env.sealed()
    assert env.term() == term


@pytest.mark.parametrize("enc", ["%C2%85", "%C2%A0", "%E2%80%8B", "%E2%80%A8", "%EF%BB%BF"],
                         ids=["NEL", "NBSP", "ZWSP", "LSEP", "BOM"])
def test_other_non_printable_characters_are_refused(env: Env, enc: str) -> None:
    """OpenBao refuses every rune Go's unicode.IsPrint rejects, not only C0 controls."""
    _refused(env.raw("POST", f"transit/encrypt/prod{enc}", json={"plaintext": PLAINTEXT}))
    _refused(env.raw("POST", f"sys/seal{enc}"))
    assert not env.sealed()


def test_printable_oddities_are_not_a_400(env: Env) -> None:
    """A space or an invalid UTF-8 byte is printable (U+FFFD) for OpenBao too: it routes to
    nothing (404), it is not refused as a control character, and it never succeeds."""
    for enc in ("%20", "%FF"):
        r = env.raw("POST", f"transit/encrypt/prod{enc}", json={"plaintext": PLAINTEXT})
        assert r.status_code == 404, r.text
    # a control character in the query string is data, not path (OpenBao: the same)
    r = env.raw("GET", "transit/keys/other?x=%0A")
    assert r.status_code == 200, r.text


def test_status_endpoints_and_non_api_paths_are_refused_too(env: Env) -> None:
    for path in ("sys/health%0A", "sys/seal-status%00", "sys/unseal%0A", "sys/init%7F"):
        _refused(env.raw("GET", path, token=""))
    r = env.srv.session.get(f"{env.srv.addr}/ui%0A", timeout=10)
    assert r.status_code == 400


@pytest.mark.parametrize("name", ["clé", "ключ", "キー", "k\u00e9y"])
def test_unicode_key_names_are_not_routed(env: Env, name: str) -> None:
    """Vault's key-name pattern is Go's ASCII \\w: a Unicode name matches no route (404) and
    no key is created."""
    for path in (f"transit/keys/{name}", f"transit/encrypt/{name}"):
        r = env.root("POST", path, json={"plaintext": PLAINTEXT})
        assert r.status_code == 404, r.text
    keys = env.root("LIST", "transit/keys").json()["data"]["keys"]
    assert name not in keys
