"""The JWT auth method in JWT mode (spec auth-api §5) against the session server, with real
hvac: static public keys (Kubernetes service-account tokens), a JWKS URL and OIDC discovery
served by a loopback HTTP server in the test, roles with bound audiences / subject / claims
(globs and lists), claim mappings, leeways and the groups claim (external group membership),
Vault's error texts, and an application that logs in with its JWT and encrypts under its own
templated transit key path.

hvac `client.auth.jwt` methods covered: configure, read_config, create_role, read_role,
list_roles, delete_role, jwt_login (the OIDC-only oidc_authorization_url_request and
oidc_callback do not apply to JWT mode).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hvac.exceptions import Forbidden, InternalServerError, InvalidPath, InvalidRequest

from tests.helpers import ServerProcess
from tests.jwtmint import KeyServer, ec_key, jwk, k8s_claims, public_pem, rsa_key, sign

K8S_ISS = "kubernetes/serviceaccount"
RSA = rsa_key()
OTHER_RSA = rsa_key()
EC = ec_key()
ED = ed25519.Ed25519PrivateKey.generate()
PLAINTEXT = base64.b64encode(b"per-app secret").decode()


def _n(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def jwt_mount(client: hvac.Client) -> Iterator[tuple[str, str]]:
    """(path, accessor) of a fresh jwt auth mount."""
    path = _n("jwt")
    client.sys.enable_auth_method("jwt", path=path)
    accessor = client.sys.list_auth_methods()["data"][f"{path}/"]["accessor"]
    yield path, accessor
    client.sys.disable_auth_method(path)


def _login(server: ServerProcess, mount: str, role: str | None, token: str) -> Any:
    """Raw login (no X-Vault-Token): the response, for status and exact error texts."""
    body: dict[str, Any] = {"jwt": token}
    if role is not None:
        body["role"] = role
    return server.request("POST", f"auth/{mount}/login", json=body, token="")


def _error(resp: Any) -> tuple[int, str]:
    return resp.status_code, resp.json()["errors"][0]


def _static_config(client: hvac.Client, mount: str, **kw: Any) -> None:
    client.auth.jwt.configure(jwt_validation_pubkeys=[public_pem(RSA), public_pem(EC)],
                              bound_issuer=K8S_ISS, path=mount, **kw)


# -- hvac methods, Kubernetes service-account tokens -----------------------------------------


def test_kubernetes_sa_token_with_every_hvac_method(client: hvac.Client, server: ServerProcess,
                                                    jwt_mount: tuple[str, str]) -> None:
    mount, accessor = jwt_mount
    assert server.request("GET", f"auth/{mount}/config").status_code == 404
    _static_config(client, mount, default_role="app")
    config = client.auth.jwt.read_config(path=mount)["data"]
    assert config["bound_issuer"] == K8S_ISS and config["default_role"] == "app"
    assert config["jwt_validation_pubkeys"] == [public_pem(RSA).strip(), public_pem(EC).strip()]
    assert config["jwt_supported_algs"] == [] and config["jwks_url"] == ""
    assert "oidc_client_secret" not in config

    client.auth.jwt.create_role(
        "app", allowed_redirect_uris=None, user_claim="sub", role_type="jwt", bound_audiences=["vault"],
        bound_subject="system:serviceaccount:prod:app",
        bound_claims={"/kubernetes.io/namespace": ["default", "prod"]},
        claim_mappings={"/kubernetes.io/serviceaccount/name": "service_account",
                        "/kubernetes.io/namespace": "namespace"},
        token_policies=["app-pol"], token_ttl="1h", path=mount)
    client.auth.jwt.create_role("other", allowed_redirect_uris=None, user_claim="sub", role_type="jwt",
                                bound_audiences="vault", path=mount)
    assert client.auth.jwt.list_roles(path=mount)["data"]["keys"] == ["app", "other"]
    role = client.auth.jwt.read_role("app", path=mount)["data"]
    assert role["role_type"] == "jwt" and role["bound_audiences"] == ["vault"]
    assert role["bound_claims"] == {"/kubernetes.io/namespace": ["default", "prod"]}
    assert role["bound_claims_type"] == "string" and role["token_ttl"] == 3600
    assert role["token_policies"] == ["app-pol"] and role["clock_skew_leeway"] == 0
    assert role["groups_claim"] == "" and role["verbose_oidc_logging"] is False
    assert client.auth.jwt.read_role("other", path=mount)["data"]["bound_claims"] is None

    token = sign(k8s_claims("prod", "app"), RSA)
    app = hvac.Client(url=client.url)
    auth = app.auth.jwt.jwt_login("app", token, path=mount)["auth"]
    assert app.token == auth["client_token"]
    assert auth["metadata"] == {"namespace": "prod", "role": "app", "service_account": "app"}
    assert auth["token_policies"] == ["app-pol", "default"] and auth["lease_duration"] == 3600
    assert auth["orphan"] is True and auth["token_type"] == "service" and auth["entity_id"]
    me = app.auth.token.lookup_self()["data"]
    assert me["display_name"] == f"{mount}-system:serviceaccount:prod:app"
    assert me["path"] == f"auth/{mount}/login"
    entity = client.secrets.identity.read_entity(auth["entity_id"])["data"]
    alias = entity["aliases"][0]
    assert (alias["name"], alias["mount_accessor"]) == ("system:serviceaccount:prod:app",
                                                        accessor)
    assert alias["metadata"]["service_account"] == "app"
    # role defaults to default_role; an ES256 token from the second key works too
    ec_token = sign(k8s_claims("prod", "app"), EC, alg="ES256")
    assert _login(server, mount, None, ec_token).json()["auth"]["metadata"]["role"] == "app"
    # renewal re-reads the role; a deleted role's token is not renewed
    assert app.auth.token.renew_self()["auth"]["lease_duration"] == 3600
    client.auth.jwt.delete_role("app", path=mount)
    with pytest.raises(InvalidPath):
        client.auth.jwt.read_role("app", path=mount)
    with pytest.raises(InternalServerError, match="role app does not exist during renewal"):
        app.auth.token.renew_self()
    assert client.auth.jwt.list_roles(path=mount)["data"]["keys"] == ["other"]


def test_eddsa_ps256_and_supported_algs(client: hvac.Client, server: ServerProcess,
                                        jwt_mount: tuple[str, str]) -> None:
    mount, _ = jwt_mount
    client.auth.jwt.configure(jwt_validation_pubkeys=[public_pem(ED), public_pem(RSA)],
                              path=mount)
    client.auth.jwt.create_role("r", allowed_redirect_uris=None, user_claim="sub", role_type="jwt", bound_subject="s",
                                path=mount)
    claims = {"sub": "s", "iat": int(time.time())}
    for key, alg in ((ED, "EdDSA"), (RSA, "PS256"), (RSA, "RS512")):
        assert _login(server, mount, "r", sign(claims, key, alg=alg)).status_code == 200, alg
    client.auth.jwt.configure(jwt_validation_pubkeys=[public_pem(RSA)],
                              jwt_supported_algs=["RS512"], path=mount)
    assert _error(_login(server, mount, "r", sign(claims, RSA, alg="RS256"))) == (
        400, "error validating token: invalid algorithm (alg) header parameter: token signed "
             "with unexpected algorithm")
    assert _login(server, mount, "r", sign(claims, RSA, alg="RS512")).status_code == 200


# -- malformed input on every write path -----------------------------------------------------


def test_config_write_errors(client: hvac.Client, server: ServerProcess,
                             jwt_mount: tuple[str, str]) -> None:
    mount, _ = jwt_mount
    pem = public_pem(RSA)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "exactly one of 'jwt_validation_pubkeys', 'jwks_url', 'jwks_pairs' or "
             "'oidc_discovery_url' must be set"),
        ({"jwt_validation_pubkeys": [pem], "jwks_url": "http://127.0.0.1:1/jwks"},
         "exactly one of 'jwt_validation_pubkeys', 'jwks_url', 'jwks_pairs' or "
         "'oidc_discovery_url' must be set"),
        ({"jwt_validation_pubkeys": ["garbage"]},
         "error parsing public key: data does not contain any valid public keys"),
        ({"jwt_validation_pubkeys": 5},
         "error parsing public key: data does not contain any valid public keys"),
        ({"jwt_validation_pubkeys": [{"a": 1}]},
         "error parsing public key: data does not contain any valid public keys"),
        ({"jwt_validation_pubkeys": [pem + public_pem(EC)]},
         "error parsing public key: unexpected trailing data after parsed PEM block"),
        ({"jwt_validation_pubkeys": [pem], "jwt_supported_algs": ["XX256"]},
         'invalid jwt_supported_algs: unsupported signing algorithm "XX256"'),
        ({"jwt_validation_pubkeys": [pem], "jwt_supported_algs": ["HS256"]},
         'invalid jwt_supported_algs: unsupported signing algorithm "HS256"'),
        ({"jwt_validation_pubkeys": [pem], "oidc_client_id": "x"},
         "both 'oidc_client_id' and 'oidc_client_secret' must be set for OIDC"),
        ({"jwt_validation_pubkeys": [pem], "provider_config": "x"},
         "Field validation failed: error converting input for field \"provider_config\": '' "
         "expected type 'map[string]interface {}', got unconvertible type 'string'"),
        ({"jwks_url": "http://127.0.0.1:1/jwks"}, "error checking jwks URL"),
        ({"jwks_url": "http://127.0.0.1:1/jwks", "jwks_ca_pem": "junk"},
         "error checking jwks_ca_pem"),
    ]
    for body, message in cases:
        r = server.request("POST", f"auth/{mount}/config", json=body)
        assert _error(r) == (400, message), body
    r = server.request("POST", f"auth/{mount}/config",
                       json={"jwt_validation_pubkeys": [pem], "bound_issuer": ["x"]})
    status, message = _error(r)
    assert status == 400 and message.startswith("Field validation failed: error converting")
    r = server.request("POST", f"auth/{mount}/config",
                       json={"oidc_discovery_url": "http://127.0.0.1:1"})
    status, message = _error(r)
    assert status == 400 and message.startswith("error checking oidc discovery URL: ")
    assert server.request("GET", f"auth/{mount}/config").status_code == 404  # nothing written
    # a comma-separated string of PEM keys is a list
    client.auth.jwt.configure(jwt_validation_pubkeys=pem + "," + public_pem(EC), path=mount)
    assert len(client.auth.jwt.read_config(path=mount)["data"]["jwt_validation_pubkeys"]) == 2
    # a write replaces the whole config
    client.auth.jwt.configure(jwt_validation_pubkeys=[pem], path=mount)
    assert client.auth.jwt.read_config(path=mount)["data"]["bound_issuer"] == ""


def test_role_write_errors(client: hvac.Client, server: ServerProcess,
                           jwt_mount: tuple[str, str]) -> None:
    mount, _ = jwt_mount
    base = {"role_type": "jwt", "user_claim": "sub", "bound_subject": "s"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"role_type": "jwt", "user_claim": "sub"},
         "must have at least one bound constraint when creating/updating a role"),
        ({"role_type": "jwt", "bound_subject": "s"}, "a user claim must be defined on the role"),
        ({**base, "user_claim": ""}, "a user claim must be defined on the role"),
        ({**base, "role_type": "xx"}, "invalid 'role_type': xx"),
        ({"user_claim": "sub", "bound_subject": "s"},
         "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified."),
        ({**base, "bound_claims_type": "x"}, "invalid 'bound_claims_type': x"),
        ({**base, "claim_mappings": {"a": "role"}},
         'metadata key "role" is reserved and may not be a mapping destination'),
        ({**base, "claim_mappings": {"a": "x", "b": "x"}},
         'multiple keys are mapped to metadata key "x"'),
        ({**base, "claim_mappings": "x"},
         "error converting input for field \"claim_mappings\": '' expected type "
         "'map[string]string', got unconvertible type 'string'"),
        ({**base, "bound_claims": "notamap"},
         "error converting input for field \"bound_claims\": '' expected type "
         "'map[string]interface {}', got unconvertible type 'string'"),
        ({**base, "bound_claims_type": "glob", "bound_claims": {"a": 5}},
         "claim is not a string: 5"),
        ({**base, "bound_claims_type": "glob", "bound_claims": {"a": ["x", True]}},
         "claim is not a string: true"),
        ({**base, "clock_skew_leeway": "abc"},
         'error converting input for field "clock_skew_leeway": time: invalid duration "abc"'),
        ({**base, "token_ttl": 100, "token_max_ttl": 10},
         "'token_ttl' cannot be greater than 'token_max_ttl'"),
        ({**base, "token_type": "bogus"}, "invalid 'token_type' value \"bogus\""),
        ({**base, "token_bound_cidrs": "nope"},
         'error parsing address "nope": Unable to convert "nope" to an IPv4 or IPv6 address, '
         "or a UNIX Socket"),
        ({**base, "bound_audiences": {"a": 1}},
         "error converting input map[a:1] for field \"bound_audiences\": expected a list of "
         "strings"),
    ]
    for body, message in cases:
        r = server.request("POST", f"auth/{mount}/role/r", json=body)
        assert _error(r) == (400, message), body
    assert server.request("GET", f"auth/{mount}/role/r").status_code == 404  # nothing written
    r = server.request("POST", f"auth/{mount}/role/-bad", json=base)
    assert r.status_code == 404
    # verbose_oidc_logging is accepted (and ignored) with Vault's warning
    r = server.request("POST", f"auth/{mount}/role/r", json={**base,
                                                             "verbose_oidc_logging": True})
    assert r.status_code == 200 and "verbose_oidc_logging" in r.json()["warnings"][0]
    # an update merges (role_type must be sent again, as in Vault) and leeways read back
    r = server.request("POST", f"auth/{mount}/role/r", json={
        "role_type": "jwt", "clock_skew_leeway": "1m", "expiration_leeway": -1,
        "verbose_oidc_logging": False,
        "policies": "p1,p2", "bound_audiences": 5})
    assert r.status_code == 204, r.text
    role = client.auth.jwt.read_role("r", path=mount)["data"]
    assert role["bound_subject"] == "s" and role["bound_audiences"] == ["5"]
    assert (role["clock_skew_leeway"], role["expiration_leeway"], role["not_before_leeway"]) \
        == (60, -1, 0)
    assert role["policies"] == role["token_policies"] == ["p1", "p2"]
    # a failed update leaves the role as it was
    r = server.request("POST", f"auth/{mount}/role/r", json={"user_claim": "x"})
    assert r.status_code == 400
    assert client.auth.jwt.read_role("r", path=mount)["data"]["user_claim"] == "sub"
    # login with a non-object body field type
    r = server.request("POST", f"auth/{mount}/login", json={"role": ["r"], "jwt": "x"}, token="")
    assert r.status_code == 400


# -- login checks ----------------------------------------------------------------------------


def test_login_errors(client: hvac.Client, server: ServerProcess,
                      jwt_mount: tuple[str, str]) -> None:
    mount, _ = jwt_mount
    now = int(time.time())
    good = {"iss": K8S_ISS, "sub": "alice", "aud": ["a"], "exp": now + 300, "iat": now,
            "nbf": now, "k": {"ns": "prod", "sa": "app"}, "groups": ["g1"]}
    assert _error(_login(server, mount, "r", sign(good, RSA))) == (
        400, "could not load configuration")
    _static_config(client, mount)
    client.auth.jwt.create_role(
        "r", allowed_redirect_uris=None, user_claim="sub", role_type="jwt", bound_audiences="a,b",
        bound_claims={"/k/ns": ["default", "prod"]}, claim_mappings={"/k/sa": "sa"},
        groups_claim="groups", path=mount)
    client.auth.jwt.create_role("s", allowed_redirect_uris=None, user_claim="sub", role_type="jwt", bound_subject="bob",
                                path=mount)
    server.request("POST", f"auth/{mount}/role/o", json={
        "role_type": "oidc", "user_claim": "sub", "allowed_redirect_uris": "http://x/cb"})
    assert _login(server, mount, "r", sign(good, RSA)).status_code == 200

    def err(claims: dict[str, Any], role: str | None = "r", **kw: Any) -> tuple[int, str]:
        return _error(_login(server, mount, role, sign(claims, kw.pop("key", RSA), **kw)))

    sig = "error validating token: error verifying token signature: "
    assert err(good, role=None) == (400, "missing role")
    assert err(good, role="zz") == (400, 'role "zz" could not be found')
    assert err(good, role="o") == (400, "role with oidc role_type is not allowed")
    assert _error(server.request("POST", f"auth/{mount}/login", json={"role": "r"},
                                 token="")) == (400, "missing token")
    assert _error(_login(server, mount, "r", "garbage")) == (
        400, sig + "go-jose/go-jose: compact JWS format must have three parts")
    assert _error(_login(server, mount, "r", "a.b.c")) == (
        400, sig + "illegal base64 data at input byte 0")
    no_key = (400, sig + "no known key successfully validated the token signature")
    assert err(good, key=OTHER_RSA) == no_key
    assert err(good, alg="HS256", key=RSA, header={"alg": "HS256"}) == no_key
    forged = sign(good, RSA).rsplit(".", 1)[0] + "." + sign({"x": 1}, RSA).rsplit(".", 1)[1]
    assert _error(_login(server, mount, "r", forged)) == no_key
    v = "error validating token: "
    assert err({**good, "iss": "other"}) == (400, v + "invalid issuer (iss) claim")
    assert err({**good, "sub": "alice"}, role="s") == (400, v + "invalid subject (sub) claim")
    assert err({**good, "aud": ["zz"]}) == (
        400, v + "invalid audience (aud) claim: audience claim does not match any expected "
                 "audience")
    assert err({**good, "sub": "bob"}, role="s") == (
        400, "audience claim found in JWT but no audiences bound to the role")
    assert err({**good, "exp": now - 100}) == (
        400, v + "invalid expiration time (exp) claim: token is expired")
    assert err({**good, "nbf": now + 100}) == (
        400, v + "invalid not before (nbf) claim: token not yet valid")
    assert err({**good, "iat": now + 100}) == (
        400, v + "invalid issued at (iat) claim: token issued in the future")
    untimed = {k: x for k, x in good.items() if k not in ("exp", "iat", "nbf")}
    assert err(untimed) == (400, v + "no issued at (iat), not before (nbf), or expiration "
                                     "time (exp) claims in token")
    assert err({k: x for k, x in good.items() if k != "sub"}) == (
        400, 'claim "sub" not found in token')
    assert err({**good, "sub": 5}) == (
        400, v + "json: cannot unmarshal number into Go struct field Claims.sub of type string")
    assert err({**good, "k": {"ns": "prod", "sa": 5}}) == (
        400, "error converting claim '/k/sa' to string")
    assert err({**good, "groups": [1]}) == (
        400, "value 1 in groups claim could not be parsed as string")
    assert err({**good, "groups": {"a": 1}}) == (
        400, '"groups" claim could not be converted to string list')
    assert err({k: x for k, x in good.items() if k != "groups"}) == (
        400, 'failed to fetch groups: "groups" claim not found in token')
    assert err({**good, "k": {"ns": "dev", "sa": "app"}}) == (
        400, 'error validating claims: claim "/k/ns" does not match any associated bound '
             "claim values")
    assert err({**good, "k": {"sa": "app"}}) == (
        400, 'error validating claims: claim "/k/ns" is missing')
    assert err({**good, "k": {"ns": {"a": 1}, "sa": "app"}}) == (
        400, "error validating claims: received claim is not a string, bool, int or list: "
             "map[a:1]")
    r = _login(server, mount, "r", sign({**good, "sub": ""}, RSA))
    assert r.status_code == 500 and r.json()["errors"] == ["missing name in alias"]
    # a GET on the login path is 405; the login ignores a bogus token header
    assert server.request("GET", f"auth/{mount}/login").status_code == 405
    r = server.request("POST", f"auth/{mount}/login", json={"role": "r", "jwt": sign(good, RSA)},
                       token="bogus")
    assert r.status_code == 200


def test_bound_claims_globs_lists_leeways_and_cidrs(client: hvac.Client, server: ServerProcess,
                                                    jwt_mount: tuple[str, str]) -> None:
    mount, _ = jwt_mount
    client.auth.jwt.configure(jwt_validation_pubkeys=[public_pem(RSA)], path=mount)
    client.auth.jwt.create_role(
        "g", allowed_redirect_uris=None, user_claim="/k/sa", user_claim_json_pointer=True, role_type="jwt",
        bound_claims_type="glob", bound_audiences=["a"],
        bound_claims={"email": ["*@example.com", "ops-*-admin"], "/k/ns": "pr*"}, path=mount)
    client.auth.jwt.create_role(
        "s", allowed_redirect_uris=None, user_claim="sub", role_type="jwt", bound_claims={"n": 5, "b": True, "t": ["x", "y"]},
        path=mount)
    now = int(time.time())
    base = {"sub": "alice", "aud": "a", "iat": now, "k": {"ns": "prod", "sa": "app"}}

    def status(claims: dict[str, Any], role: str) -> int:
        return int(_login(server, mount, role, sign(claims, RSA)).status_code)

    assert status({**base, "email": "bob@example.com"}, "g") == 200
    assert status({**base, "email": "ops-eu-admin"}, "g") == 200
    assert status({**base, "email": ["x", "bob@example.com"]}, "g") == 200  # any element
    assert status({**base, "email": "bob@other.com"}, "g") == 400
    assert status({**base, "email": "x?y"}, "g") == 400
    assert status({**base, "email": 5}, "g") == 400  # globs match strings only
    assert status({**base, "email": "a@example.com", "k": {"ns": "dev", "sa": "a"}}, "g") == 400
    r = _login(server, mount, "g", sign({**base, "email": "a@example.com"}, RSA))
    assert r.json()["auth"]["metadata"] == {"role": "g"}
    assert client.lookup_token(r.json()["auth"]["client_token"])["data"]["display_name"] \
        == f"{mount}-app"

    plain = {"sub": "alice", "iat": now, "n": 5, "b": True, "t": "y"}
    assert status(plain, "s") == 200
    assert status({**plain, "n": 5.5}, "s") == 200  # numbers compare as Go ints
    assert status({**plain, "n": "5"}, "s") == 400
    assert status({**plain, "b": False}, "s") == 400
    assert status({**plain, "t": ["z", "x"]}, "s") == 200  # any element of either list
    assert status({**plain, "t": "z"}, "s") == 400

    # leeways: default skew 60 s accepts a token expired 30 s ago; -1 removes the skew
    assert status({**plain, "exp": now - 30}, "s") == 200
    r = server.request("POST", f"auth/{mount}/role/s", json={"role_type": "jwt",
                                                             "clock_skew_leeway": -1})
    assert r.status_code == 204
    assert status({**plain, "exp": now - 30}, "s") == 400
    # a token with only nbf gets exp = nbf + expiration_leeway (150 s by default)
    assert status({"sub": "alice", "nbf": now - 100, "n": 5, "b": True, "t": "x"}, "s") == 200
    assert status({"sub": "alice", "nbf": now - 200, "n": 5, "b": True, "t": "x"}, "s") == 400
    server.request("POST", f"auth/{mount}/role/s", json={"role_type": "jwt",
                                                         "expiration_leeway": 600})
    assert status({"sub": "alice", "nbf": now - 200, "n": 5, "b": True, "t": "x"}, "s") == 200

    # token_bound_cidrs: a login from elsewhere is refused (403)
    server.request("POST", f"auth/{mount}/role/s", json={"role_type": "jwt",
                                                         "token_bound_cidrs": "10.0.0.0/8"})
    r = _login(server, mount, "s", sign(plain, RSA))
    assert r.status_code == 403 and r.json()["errors"] == ["permission denied"]


# -- JWKS URL and OIDC discovery (loopback) ---------------------------------------------------


def test_jwks_url_refreshes_on_unknown_kid_and_oidc_discovery(
        client: hvac.Client, server: ServerProcess, jwt_mount: tuple[str, str]) -> None:
    mount, _ = jwt_mount
    first, second = ec_key(), ec_key(ec.SECP384R1())
    with KeyServer().running() as keys:
        keys.keys = [jwk(first, "k1"), jwk(RSA, "k-rsa")]
        client.auth.jwt.configure(jwks_url=keys.url + "/jwks", bound_issuer=keys.url,
                                  path=mount)
        assert client.auth.jwt.read_config(path=mount)["data"]["jwks_url"] == keys.url + "/jwks"
        client.auth.jwt.create_role("r", allowed_redirect_uris=None, user_claim="sub", role_type="jwt",
                                    bound_audiences="api", path=mount)
        now = int(time.time())
        claims = {"iss": keys.url, "sub": "svc", "aud": "api", "iat": now, "exp": now + 60}
        assert _login(server, mount, "r", sign(claims, first, "ES256", kid="k1")).status_code \
            == 200
        assert _login(server, mount, "r", sign(claims, RSA, kid="k-rsa")).status_code == 200
        fetched = keys.jwks_fetches
        assert _login(server, mount, "r", sign(claims, RSA, kid="k-rsa")).status_code == 200
        assert keys.jwks_fetches == fetched  # cached
        # the issuer rotates in a new key: an unknown kid makes the cache fetch again
        keys.keys = [jwk(second, "k2")]
        assert _login(server, mount, "r", sign(claims, second, "ES384", kid="k2")).status_code \
            == 200
        assert keys.jwks_fetches > fetched
        r = _login(server, mount, "r", sign(claims, OTHER_RSA, kid="nope"))
        assert _error(r) == (400, "error validating token: error verifying token signature: "
                                  "no known key successfully validated the token signature")

        # OIDC discovery from the same server: issuer = the discovery URL
        client.auth.jwt.configure(oidc_discovery_url=keys.url, bound_issuer=keys.url,
                                  path=mount)
        config = client.auth.jwt.read_config(path=mount)["data"]
        assert config["oidc_discovery_url"] == keys.url and config["jwks_url"] == ""
        assert _login(server, mount, "r", sign(claims, second, "ES384", kid="k2")).status_code \
            == 200
        r = server.request("POST", f"auth/{mount}/config",
                           json={"oidc_discovery_url": keys.url + "/other"})
        assert r.status_code == 400
        assert r.json()["errors"][0].startswith("error checking oidc discovery URL: ")


def test_oidc_mount_type_is_the_same_method(client: hvac.Client, server: ServerProcess) -> None:
    path = _n("oidc")
    client.sys.enable_auth_method("oidc", path=path)
    try:
        assert client.sys.list_auth_methods()["data"][f"{path}/"]["type"] == "oidc"
        client.auth.jwt.configure(jwt_validation_pubkeys=[public_pem(RSA)], path=path)
        client.auth.jwt.create_role("r", allowed_redirect_uris=None, user_claim="sub", role_type="jwt", bound_subject="x",
                                    path=path)
        token = sign({"sub": "x", "iat": int(time.time())}, RSA)
        assert _login(server, path, "r", token).status_code == 200
    finally:
        client.sys.disable_auth_method(path)


# -- groups claim and identity ---------------------------------------------------------------


def test_groups_claim_syncs_external_group_membership(
        client: hvac.Client, server: ServerProcess, jwt_mount: tuple[str, str]) -> None:
    mount, accessor = jwt_mount
    _static_config(client, mount)
    client.auth.jwt.create_role("r", allowed_redirect_uris=None, user_claim="sub", role_type="jwt", bound_audiences="vault",
                                groups_claim="/kubernetes.io/groups", path=mount)
    ident = client.secrets.identity
    admins, devs = _n("admins"), _n("devs")
    admins_id = ident.create_or_update_group(admins, group_type="external",
                                             policies=["admin-pol"])["data"]["id"]
    devs_id = ident.create_or_update_group(devs, group_type="external",
                                           policies=["dev-pol"])["data"]["id"]
    ident.create_or_update_group_alias("k8s-admins", mount_accessor=accessor,
                                       canonical_id=admins_id)
    ident.create_or_update_group_alias("k8s-devs", mount_accessor=accessor, canonical_id=devs_id)

    def login(groups: list[str]) -> dict[str, Any]:
        claims = k8s_claims("prod", "app")
        claims["kubernetes.io"]["groups"] = groups
        r = _login(server, mount, "r", sign(claims, RSA))
        assert r.status_code == 200, r.text
        return dict(r.json()["auth"])

    auth = login(["k8s-admins", "k8s-devs", "unknown", ""])
    assert auth["identity_policies"] == ["admin-pol", "dev-pol"]
    entity_id = auth["entity_id"]
    assert entity_id in ident.read_group(admins_id)["data"]["member_entity_ids"]
    # a group no longer asserted drops the entity; an empty claim drops it from all of them
    assert login(["k8s-devs"])["identity_policies"] == ["dev-pol"]
    assert entity_id not in (ident.read_group(admins_id)["data"]["member_entity_ids"] or [])
    assert "identity_policies" not in login([])
    assert entity_id not in (ident.read_group(devs_id)["data"]["member_entity_ids"] or [])
    # a role without groups_claim asserts nothing: memberships are left alone
    login(["k8s-admins"])
    client.auth.jwt.create_role("nog", allowed_redirect_uris=None, user_claim="sub", role_type="jwt",
                                bound_audiences="vault", path=mount)
    r = _login(server, mount, "nog", sign(k8s_claims("prod", "app"), RSA))
    assert r.json()["auth"]["identity_policies"] == ["admin-pol"]
    ident.delete_group(admins_id)
    ident.delete_group(devs_id)
    ident.delete_entity(entity_id)


def test_app_encrypts_under_its_own_templated_key(client: hvac.Client, server: ServerProcess,
                                                  jwt_mount: tuple[str, str]) -> None:
    """Kubernetes recipe end to end: each pod's service account logs in with its JWT and may
    encrypt only under the transit key named by its alias (the service-account name)."""
    mount, accessor = jwt_mount
    transit = _n("tr")
    client.sys.enable_secrets_engine("transit", path=transit)
    policy = _n("per-sa")
    client.sys.create_or_update_policy(policy, f'''
path "{transit}/encrypt/{{{{identity.entity.aliases.{accessor}.name}}}}" {{
  capabilities = ["update"]
}}
''')
    _static_config(client, mount)
    client.auth.jwt.create_role(
        "apps", allowed_redirect_uris=None, role_type="jwt", user_claim="/kubernetes.io/serviceaccount/name",
        user_claim_json_pointer=True, bound_audiences=["vault"],
        bound_claims={"/kubernetes.io/namespace": "prod"}, token_policies=[policy],
        token_ttl="10m", path=mount)
    try:
        for sa in ("billing", "orders"):
            client.secrets.transit.create_key(sa, mount_point=transit)
        app = hvac.Client(url=client.url)
        app.auth.jwt.jwt_login("apps", sign(k8s_claims("prod", "billing"), RSA), path=mount)
        ct = app.secrets.transit.encrypt_data("billing", PLAINTEXT, mount_point=transit)
        assert ct["data"]["ciphertext"].startswith("vault:v1:")
        with pytest.raises(Forbidden):
            app.secrets.transit.encrypt_data("orders", PLAINTEXT, mount_point=transit)
        # a pod of another namespace cannot log in with this role
        with pytest.raises(InvalidRequest, match="does not match any associated bound claim"):
            hvac.Client(url=client.url).auth.jwt.jwt_login(
                "apps", sign(k8s_claims("dev", "orders"), RSA), path=mount)
    finally:
        client.sys.disable_secrets_engine(transit)
        client.sys.delete_policy(policy)
