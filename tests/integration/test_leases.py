"""Token leases over real HTTP with hvac's `client.sys` lease methods (spec auth-api §7, §8).

Every test makes its tokens under its own token role, whose `path_suffix` gives them a lease
prefix no other test shares (`auth/token/create/<role>/<suffix>/h…`), so prefix revocations
here never touch the session server's other tokens.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidPath, InvalidRequest

from tests.helpers import ServerProcess

SALTED = re.compile(r"h[0-9a-f]{64}")
LEASE_KEYS = {"id", "issue_time", "expire_time", "last_renewal", "renewable", "ttl"}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class Tokens:
    """Tokens created under one role with its own path suffix, and their lease IDs."""

    def __init__(self, client: hvac.Client, role: str, suffix: str) -> None:
        self.client, self.role = client, role
        self.prefix = f"auth/token/create/{role}/{suffix}"

    def create(self, creator: hvac.Client | None = None, **kw: object) -> dict[str, object]:
        kw.setdefault("policies", ["default"])
        kw.setdefault("ttl", "1h")
        resp = (creator or self.client).auth.token.create(role_name=self.role, **kw)
        return resp["auth"]  # type: ignore[no-any-return]

    def lease_of(self, token: str) -> str:
        """The lease ID of a token of this role: the listed lease whose times are the token's."""
        lookup = self.client.auth.token.lookup(token)["data"]
        assert lookup["path"] == self.prefix
        keys = self.client.sys.list_leases(self.prefix)["data"]["keys"]
        for key in keys:  # the one whose lookup agrees with the token's own
            lease = self.prefix + "/" + key
            if self.client.sys.read_lease(lease)["data"]["issue_time"] == lookup["issue_time"]:
                return lease
        raise AssertionError(f"no lease for {token[:8]}… among {keys}")

    def alive(self, token: str) -> bool:
        try:
            self.client.auth.token.lookup(token)
            return True
        except Forbidden:
            return False


@pytest.fixture
def tokens(server: ServerProcess, client: hvac.Client) -> Iterator[Tokens]:
    role, suffix = _name("lr"), _name("s")
    r = server.request("POST", f"auth/token/roles/{role}", json={"path_suffix": suffix})
    assert r.status_code == 204, r.text
    yield Tokens(client, role, suffix)
    server.request("PUT", f"sys/leases/revoke-prefix/auth/token/create/{role}")
    server.request("DELETE", f"auth/token/roles/{role}")


@pytest.fixture
def creator(policy: Callable[[str], str]) -> str:
    """A policy that lets a token create child tokens (under `auth/token/create`)."""
    return policy('path "auth/token/create" { capabilities = ["update"] }\n')


@pytest.fixture
def policy(server: ServerProcess) -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(text: str) -> str:
        name = _name("leasepol")
        r = server.request("PUT", f"sys/policies/acl/{name}", json={"policy": text})
        assert r.status_code == 204, r.text
        made.append(name)
        return name

    yield make
    for name in made:
        server.request("DELETE", f"sys/policies/acl/{name}")


# --- lookup, list, agreement with the token's own view -----------------------------------------


def test_read_lease_agrees_with_the_token(client: hvac.Client, tokens: Tokens) -> None:
    auth = tokens.create(ttl="1h")
    assert auth["lease_duration"] == 3600 and auth["renewable"] is True
    lease = tokens.lease_of(auth["client_token"])
    assert SALTED.fullmatch(lease.rpartition("/")[2])

    data = client.sys.read_lease(lease)["data"]
    assert set(data) == LEASE_KEYS
    assert data["id"] == lease and data["renewable"] is True and data["last_renewal"] is None
    assert 3590 <= data["ttl"] <= 3600
    token = client.auth.token.lookup(auth["client_token"])["data"]
    for key in ("issue_time", "expire_time", "renewable"):
        assert token[key] == data[key], key
    assert abs(token["ttl"] - data["ttl"]) <= 1
    assert round((_time(data["expire_time"]) - _time(data["issue_time"])).total_seconds()) == 3600

    # a renewal shows in both views alike, and the auth block says the same
    renewed = client.auth.token.renew(auth["client_token"], increment="2h")["auth"]
    assert renewed["lease_duration"] == 7200 and renewed["renewable"] is True
    data = client.sys.read_lease(lease)["data"]
    token = client.auth.token.lookup(auth["client_token"])["data"]
    assert data["last_renewal"] is not None and data["last_renewal"] == token["last_renewal"]
    assert data["expire_time"] == token["expire_time"] and 7190 <= data["ttl"] <= 7200


def test_list_leases_one_level_at_a_time(client: hvac.Client, tokens: Tokens) -> None:
    a, b = tokens.create(), tokens.create()
    keys = client.sys.list_leases(tokens.prefix)["data"]["keys"]
    assert len(keys) == 2 and all(SALTED.fullmatch(k) for k in keys)
    assert sorted(keys) == keys
    assert {tokens.lease_of(a["client_token"]), tokens.lease_of(b["client_token"])} == {
        f"{tokens.prefix}/{k}" for k in keys}
    assert "create/" in client.sys.list_leases("auth/token")["data"]["keys"]
    assert f"{tokens.role}/" in client.sys.list_leases("auth/token/create/")["data"]["keys"]
    assert "auth/" in client.sys.list_leases("")["data"]["keys"]
    for missing in ("nothing-here", "auth/token/create/no-such-role"):
        with pytest.raises(InvalidPath):
            client.sys.list_leases(missing)


def test_list_leases_raw_prefixes(server: ServerProcess, tokens: Tokens) -> None:
    tokens.create()
    for path in (tokens.prefix, tokens.prefix + "/"):  # LIST adds the "/"; ?list=true too
        r = server.request("LIST", f"sys/leases/lookup/{path}")
        assert r.status_code == 200 and len(r.json()["data"]["keys"]) == 1
    r = server.request("GET", f"sys/leases/lookup/{tokens.prefix}", params={"list": "true"})
    assert r.status_code == 200 and len(r.json()["data"]["keys"]) == 1
    # no lease ID has an empty segment (the HTTP client resolves "." and ".." itself; the
    # unit tests cover those)
    r = server.request("LIST", "sys/leases/lookup/auth//token")
    assert (r.status_code, r.json()) == (404, {"errors": []})


def test_leaseless_and_non_expiring_tokens(client: hvac.Client, tokens: Tokens) -> None:
    # a root child without a TTL: a lease that never expires (Vault registers it too)
    child = client.auth.token.create(policies=["root"], role_name=tokens.role)["auth"]
    assert child["lease_duration"] == 0 and child["renewable"] is False
    lease = tokens.lease_of(child["client_token"])
    data = client.sys.read_lease(lease)["data"]
    assert data["expire_time"] is None and data["ttl"] == 0 and data["renewable"] is False
    token = client.auth.token.lookup(child["client_token"])["data"]
    assert token["issue_time"] == data["issue_time"] and token["renewable"] is False
    with pytest.raises(InvalidRequest, match="lease is not renewable"):
        client.sys.renew_lease(lease)
    # a batch token has none
    before = client.sys.list_leases(tokens.prefix)["data"]["keys"]
    client.auth.token.create(policies=["default"], ttl="1h", type="batch",
                             role_name=tokens.role)
    assert client.sys.list_leases(tokens.prefix)["data"]["keys"] == before


def test_wrapping_tokens_have_leases(server: ServerProcess, client: hvac.Client) -> None:
    r = server.request("POST", "sys/wrapping/wrap", json={"a": "b"},
                       headers={"X-Vault-Wrap-TTL": "300"})
    assert r.status_code == 200, r.text
    wrap = r.json()["wrap_info"]
    keys = client.sys.list_leases("sys/wrapping/wrap")["data"]["keys"]
    found = [k for k in keys
             if client.sys.read_lease(f"sys/wrapping/wrap/{k}")["data"]["issue_time"]
             == wrap["creation_time"]]
    assert len(found) == 1
    client.sys.revoke_lease(f"sys/wrapping/wrap/{found[0]}")
    assert server.request("POST", "sys/wrapping/unwrap", token=wrap["token"]).status_code in (
        400, 403)


# --- renew -------------------------------------------------------------------------------------


def test_renew_lease_refuses_token_leases(server: ServerProcess, client: hvac.Client,
                                          tokens: Tokens) -> None:
    lease = tokens.lease_of(tokens.create()["client_token"])
    with pytest.raises(InvalidRequest, match="tokens cannot be renewed through this endpoint"):
        client.sys.renew_lease(lease)  # sends "increment": null
    with pytest.raises(InvalidRequest, match="tokens cannot be renewed through this endpoint"):
        client.sys.renew_lease(lease, increment=60)
    fixed = tokens.lease_of(tokens.create(renewable=False)["client_token"])
    with pytest.raises(InvalidRequest, match="lease is not renewable"):
        client.sys.renew_lease(fixed)
    with pytest.raises(InvalidRequest, match="lease not found"):
        client.sys.renew_lease(tokens.prefix + "/h" + "0" * 64)
    for path in (f"sys/leases/renew/{lease}", f"sys/renew/{lease}"):  # the URL forms
        r = server.request("PUT", path, json={})
        assert (r.status_code, r.json()) == (
            400, {"errors": ["tokens cannot be renewed through this endpoint"]}), path
    r = server.request("PUT", "sys/renew", json={"lease_id": lease})
    assert r.status_code == 400


# --- revoke ------------------------------------------------------------------------------------


def test_revoke_lease_takes_the_token_and_its_children(server: ServerProcess,
                                                       client: hvac.Client, tokens: Tokens,
                                                       creator: str) -> None:
    parent = tokens.create(policies=["default", creator])
    child = server.client(parent["client_token"]).auth.token.create(
        policies=["default"], ttl="30m")["auth"]
    lease = tokens.lease_of(parent["client_token"])
    resp = client.sys.revoke_lease(lease)
    assert resp.status_code == 204
    assert not tokens.alive(parent["client_token"]) and not tokens.alive(child["client_token"])
    with pytest.raises(InvalidRequest, match="invalid lease"):
        client.sys.read_lease(lease)
    assert client.sys.revoke_lease(lease).status_code == 204  # unknown: still 204


def test_revoke_prefix_takes_every_token_under_it(server: ServerProcess, client: hvac.Client,
                                                  tokens: Tokens, creator: str) -> None:
    under = [tokens.create(policies=["default", creator]) for _ in range(3)]
    child = server.client(under[0]["client_token"]).auth.token.create(
        policies=["default"], ttl="30m")["auth"]  # under auth/token/create: a child
    other = client.auth.token.create(policies=["default"], ttl="1h")["auth"]
    # a partial segment is not a prefix ("auth/token/create/<role>" + "x")
    client.sys.revoke_prefix(tokens.prefix[:-1])
    assert all(tokens.alive(t["client_token"]) for t in under)

    resp = client.sys.revoke_prefix(tokens.prefix)
    assert resp.status_code == 204
    assert not any(tokens.alive(t["client_token"]) for t in [*under, child])
    assert tokens.alive(other["client_token"])
    with pytest.raises(InvalidPath):
        client.sys.list_leases(tokens.prefix)
    client.auth.token.revoke(other["client_token"])


def test_revoke_prefix_of_one_lease_and_legacy_paths(server: ServerProcess,
                                                     client: hvac.Client,
                                                     tokens: Tokens) -> None:
    a, b, c = tokens.create(), tokens.create(), tokens.create()
    lease_a, lease_b, lease_c = (tokens.lease_of(t["client_token"]) for t in (a, b, c))
    client.sys.revoke_prefix(lease_a)  # a lease ID itself: just that lease
    assert not tokens.alive(a["client_token"]) and tokens.alive(b["client_token"])
    assert server.request("PUT", f"sys/revoke/{lease_b}").status_code == 204
    assert not tokens.alive(b["client_token"])
    assert server.request("PUT", f"sys/revoke-prefix/{tokens.prefix}").status_code == 204
    assert not tokens.alive(c["client_token"])
    with pytest.raises(InvalidRequest, match="invalid lease"):
        client.sys.read_lease(lease_c)


def test_revoke_force(client: hvac.Client, tokens: Tokens) -> None:
    made = [tokens.create() for _ in range(2)]
    assert client.sys.revoke_force(tokens.prefix).status_code == 204
    assert not any(tokens.alive(t["client_token"]) for t in made)


def test_revoke_without_sync_ends_the_lease_at_once(server: ServerProcess,
                                                    tokens: Tokens) -> None:
    a, b, c = tokens.create(), tokens.create(), tokens.create()
    lease_a = tokens.lease_of(a["client_token"])
    r = server.request("PUT", "sys/leases/revoke", json={"lease_id": lease_a, "sync": False})
    assert (r.status_code, r.content) == (202, b"")
    assert not tokens.alive(a["client_token"])  # expired now; the expiration manager revokes it
    r = server.request("PUT", f"sys/leases/revoke-prefix/{tokens.prefix}", json={"sync": False})
    assert (r.status_code, r.content) == (202, b"")
    assert not tokens.alive(b["client_token"]) and not tokens.alive(c["client_token"])


# --- sudo --------------------------------------------------------------------------------------


def test_sudo_paths_refuse_a_token_without_sudo(server: ServerProcess, tokens: Tokens,
                                                policy: Callable[[str], str]) -> None:
    victim = tokens.create()
    lease = tokens.lease_of(victim["client_token"])
    everything = 'path "sys/leases/*" { capabilities = ["create", "read", "update", "list"] }\n'
    everything += 'path "sys/revoke-prefix/*" { capabilities = ["update"] }\n'
    plain = server.client(server.client().auth.token.create(
        policies=[policy(everything)], ttl="10m")["auth"]["client_token"])
    with pytest.raises(Forbidden):
        plain.sys.list_leases(tokens.prefix)
    with pytest.raises(Forbidden):
        plain.sys.revoke_prefix(tokens.prefix)
    with pytest.raises(Forbidden):
        plain.sys.revoke_force(tokens.prefix)
    assert server.request("PUT", f"sys/revoke-prefix/{tokens.prefix}",
                          token=plain.token).status_code == 403
    assert tokens.alive(victim["client_token"])
    # the same token reads a lease (not root-protected) ...
    assert plain.sys.read_lease(lease)["data"]["id"] == lease
    # ... and with sudo the listing and the prefix revocation work
    sudo = 'path "sys/leases/*" { capabilities = ["update", "list", "sudo"] }\n'
    root_like = server.client(server.client().auth.token.create(
        policies=[policy(sudo)], ttl="10m")["auth"]["client_token"])
    assert root_like.sys.list_leases(tokens.prefix)["data"]["keys"]
    root_like.sys.revoke_prefix(tokens.prefix)
    assert not tokens.alive(victim["client_token"])


def test_default_policy_reads_and_renews_but_does_not_revoke(server: ServerProcess,
                                                             tokens: Tokens) -> None:
    mine = tokens.create()
    lease = tokens.lease_of(mine["client_token"])
    me = server.client(mine["client_token"])
    assert me.sys.read_lease(lease)["data"]["id"] == lease
    with pytest.raises(InvalidRequest, match="tokens cannot be renewed"):
        me.sys.renew_lease(lease)
    with pytest.raises(Forbidden):
        me.sys.revoke_lease(lease)
    assert server.request("PUT", "sys/leases/tidy", token=mine["client_token"]).status_code == 403


# --- malformed input, tidy, irrevocable leases -------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
    ("PUT", "sys/leases/lookup", {}, 400, "lease_id must be specified"),
    ("PUT", "sys/leases/lookup", {"lease_id": ""}, 400, "lease_id must be specified"),
    ("PUT", "sys/leases/lookup", {"lease_id": "nope"}, 400, "invalid lease"),
    ("PUT", "sys/leases/lookup", {"lease_id": ["a"]}, 400, "Field validation failed"),
    ("PUT", "sys/leases/lookup", {"lease_id": {"a": 1}}, 400, "Field validation failed"),
    ("GET", "sys/leases/lookup", None, 405, "unsupported operation"),
    ("PUT", "sys/leases/lookup/auth/token", {}, 405, "unsupported operation"),
    ("PUT", "sys/leases/renew", {}, 400, "lease_id must be specified"),
    ("PUT", "sys/leases/renew", {"lease_id": "x", "increment": "abc"}, 400,
     "Field validation failed"),
    ("PUT", "sys/leases/renew", {"lease_id": "x", "increment": -5}, 400,
     "Field validation failed"),
    ("PUT", "sys/leases/renew/x/", {}, 400, "cannot write to a path ending in '/'"),
    ("PUT", "sys/leases/revoke", {}, 400, "lease_id must be specified"),
    ("PUT", "sys/leases/revoke", {"lease_id": "x", "sync": "maybe"}, 400,
     "Field validation failed"),
    ("PUT", "sys/leases/revoke", {"lease_id": 7, "sync": [1]}, 400, "Field validation failed"),
    ("PUT", "sys/revoke", {}, 400, "lease_id must be specified"),
    ("PUT", "sys/leases/revoke/x/", {}, 400, "cannot write to a path ending in '/'"),
    ("PUT", "sys/leases/revoke-prefix/x/", {}, 400, "cannot write to a path ending in '/'"),
    ("PUT", "sys/leases/revoke-prefix/x", {"sync": "maybe"}, 400, "Field validation failed"),
    ("PUT", "sys/leases/revoke-prefix", {}, 404, "unsupported path"),
    ("PUT", "sys/leases/revoke-force/x/", {}, 400, "cannot write to a path ending in '/'"),
    ("PUT", "sys/leases/revoke-force", {}, 404, "unsupported path"),
    ("GET", "sys/leases/tidy", None, 405, "unsupported operation"),
    ("PUT", "sys/leases", {}, 405, "unsupported operation"),
])
def test_malformed_input(server: ServerProcess, tokens: Tokens, method: str, path: str,
                         body: object, status: int, error: str) -> None:
    victim = tokens.create()
    leases_before = tokens.client.sys.list_leases(tokens.prefix)["data"]["keys"]
    r = server.request(method, path, json=body)
    assert r.status_code == status, r.text
    assert error in r.json()["errors"][0]
    # nothing half-done: the token and its lease are still there
    assert tokens.alive(victim["client_token"])
    assert tokens.client.sys.list_leases(tokens.prefix)["data"]["keys"] == leases_before


def test_not_json_body_is_refused(server: ServerProcess) -> None:
    for path in ("sys/leases/lookup", "sys/leases/revoke", "sys/leases/revoke-prefix/x",
                 "sys/leases/renew"):
        r = server.request("PUT", path, data=b'{"lease_id": ')
        assert r.status_code == 400 and r.json()["errors"], path


def test_tidy_and_irrevocable_leases(server: ServerProcess) -> None:
    r = server.request("PUT", "sys/leases/tidy")
    assert r.status_code == 202
    assert r.json()["warnings"] == [
        "Tidy operation successfully started. Any information from the operation will be "
        "printed to Vault's server logs."]
    r = server.request("GET", "sys/leases/count", params={"type": "irrevocable"})
    assert r.json()["data"] == {"counts": {}, "lease_count": 0}
    r = server.request("GET", "sys/leases", params={"type": "irrevocable"})
    assert r.json()["data"] == {"lease_count": 0, "leases": []}
    assert server.request("GET", "sys/leases").status_code == 404
    assert server.request("GET", "sys/leases/count").status_code == 404
    r = server.request("GET", "sys/leases", params={"type": "irrevocable", "limit": "0"})
    assert r.status_code == 500 and "limit must be 'none'" in r.json()["errors"][0]
