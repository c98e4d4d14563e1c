"""TLS certificate auth (spec auth-api §4) against a real TLS server, with real hvac.

One server per module: a config server with a TLS listener (asks for client certificates,
accepts any, as Vault's) and a plain one (for `tls connection required`). The test mints its
own CA, server certificate and client certificates with `cryptography`.

hvac `client.auth.cert` methods covered: create_ca_certificate_role,
read_ca_certificate_role, list_certificate_roles, delete_certificate_role,
configure_tls_certificate, login.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from tests.helpers import ROOT, ServerProcess, free_port, init_and_unseal

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
_KEY = ec.generate_private_key(ec.SECP256R1())  # one key for every leaf: key generation is cheap,
# but there is no need for more


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: str
    key_path: str

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


class PKI:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.n = 0

    def issue(self, cn: str, issuer: Issued | None = None, *, ca: bool = False,
              eku: list[ObjectIdentifier] | None = None, dns: list[str] | None = None,
              emails: list[str] | None = None, uris: list[str] | None = None,
              ips: list[str] | None = None, ou: str | None = None,
              extensions: list[x509.ExtensionType] | None = None,
              not_after: datetime.datetime | None = None, new_key: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1()) if (ca or new_key) else _KEY
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if ou:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
        subject = x509.Name(attrs)
        b = (x509.CertificateBuilder().subject_name(subject)
             .issuer_name(issuer.cert.subject if issuer else subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW - DAY).not_valid_after(not_after or NOW + DAY)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
        if issuer is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.key.public_key()), False)
        if ca:
            b = b.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
        sans += [x509.RFC822Name(e) for e in emails or []]
        sans += [x509.UniformResourceIdentifier(u) for u in uris or []]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), False)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), False)
        for ext in extensions or []:
            b = b.add_extension(ext, False)
        cert = b.sign(issuer.key if issuer else key, hashes.SHA256())
        self.n += 1
        cert_path, key_path = self.tmp / f"c{self.n}.crt", self.tmp / f"c{self.n}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return Issued(cert, key, str(cert_path), str(key_path))


CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]


@dataclass
class Env:
    srv: ServerProcess
    plain: str  # URL of the plain-HTTP listener
    ca: Issued  # signs the server certificate and most client certificates
    pki: PKI
    no_ask: str  # URL of a TLS listener with tls_disable_client_certs
    mtls: str  # URL of a TLS listener with tls_require_and_verify_client_cert (CA: `ca`)

    def req(self, method: str, path: str, json: Any = None) -> requests.Response:
        """Raw HTTP with the root token (verify passed explicitly: a REQUESTS_CA_BUNDLE in
        the environment would override a session's)."""
        return requests.request(method, f"{self.srv.addr}/v1/{path}", json=json, timeout=10,
                                headers={"X-Vault-Token": self.srv.token},
                                verify=self.ca.cert_path)

    def admin(self) -> hvac.Client:
        return hvac.Client(url=self.srv.addr, token=self.srv.token, verify=self.ca.cert_path)

    def app(self, cert: Issued | None) -> hvac.Client:
        kw: dict[str, Any] = {"cert": (cert.cert_path, cert.key_path)} if cert else {}
        return hvac.Client(url=self.srv.addr, verify=self.ca.cert_path, **kw)

    def login(self, mount: str, cert: Issued | None, name: str | None = None,
              addr: str | None = None) -> requests.Response:
        body = {"name": name} if name is not None else {}
        return requests.post(f"{addr or self.srv.addr}/v1/auth/{mount}/login", json=body,
                             verify=self.ca.cert_path, timeout=10,
                             cert=(cert.cert_path, cert.key_path) if cert else None)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("certauth")
    pki = PKI(tmp)
    ca = pki.issue("test root", ca=True)
    server_cert = pki.issue("localhost", ca, ips=["127.0.0.1"],
                            eku=[ExtendedKeyUsageOID.SERVER_AUTH], new_key=True)
    port, plain_port, no_ask_port, mtls_port = free_port(), free_port(), free_port(), free_port()
    tls_files = (f'  tls_cert_file = "{server_cert.cert_path}"\n'
                 f'  tls_key_file = "{server_cert.key_path}"\n')
    cfg = tmp / "server.hcl"
    cfg.write_text(
        'storage "inmem" {}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
        f'  tls_cert_file = "{server_cert.cert_path}"\n'
        f'  tls_key_file = "{server_cert.key_path}"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{plain_port}"\n  tls_disable = true\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{no_ask_port}"\n{tls_files}'
        '  tls_disable_client_certs = true\n}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{mtls_port}"\n{tls_files}'
        '  tls_require_and_verify_client_cert = true\n'
        f'  tls_client_ca_file = "{ca.cert_path}"\n}}\n'
        'disable_mlock = true\n')
    srv = ServerProcess(["server", "-config", str(cfg)], port, log=tmp / "server.log")
    srv.addr = f"https://127.0.0.1:{port}"
    srv.session.verify = ca.cert_path
    srv.proc = subprocess.Popen([sys.executable, "-m", "transit", *srv.args], cwd=ROOT,
                                stdout=open(tmp / "server.log", "wb"),  # noqa: SIM115
                                stderr=subprocess.STDOUT)
    try:
        for _ in range(400):
            try:
                requests.get(srv.addr + "/v1/sys/health", verify=ca.cert_path, timeout=0.5)
                break
            except requests.RequestException:
                if srv.proc.poll() is not None:
                    raise AssertionError(srv.log()) from None
                time.sleep(0.05)
        init_and_unseal(srv)
        yield Env(srv, f"http://127.0.0.1:{plain_port}", ca, pki,
                  f"https://127.0.0.1:{no_ask_port}", f"https://127.0.0.1:{mtls_port}")
    finally:
        srv.stop()


@pytest.fixture
def mount(env: Env) -> str:
    path = f"cert-{uuid.uuid4().hex[:8]}"
    env.admin().sys.enable_auth_method("cert", path=path)
    return path


_NOT_IN_HVAC = ("allowed_names", "allowed_metadata_extensions")


def _role(env: Env, mount: str, name: str, cert: Issued, **kw: Any) -> None:
    """A role through hvac, or raw for the fields hvac has no argument for."""
    if any(k in kw for k in _NOT_IN_HVAC):
        r = env.req("POST", f"auth/{mount}/certs/{name}", {"certificate": cert.pem, **kw})
        assert r.status_code == 204, r.text
        return
    env.admin().auth.cert.create_ca_certificate_role(
        name, certificate=cert.pem, mount_point=mount, **kw)


def _errors(r: requests.Response) -> list[str]:
    return list(r.json()["errors"])


# -- roles --------------------------------------------------------------------------------


def test_role_crud_with_hvac(env: Env, mount: str) -> None:
    admin = env.admin()
    cert = admin.auth.cert
    cert.create_ca_certificate_role("Web", certificate=env.ca.pem, token_policies=["p1"],
                                    allowed_common_names=["app-*"], token_ttl="1h",
                                    mount_point=mount)
    data = cert.read_ca_certificate_role("web", mount_point=mount)["data"]
    assert data["certificate"] == env.ca.pem
    assert data["display_name"] == "web"
    assert data["allowed_common_names"] == ["app-*"]
    assert data["allowed_dns_sans"] == []  # hvac sends "": set empty
    assert data["token_policies"] == ["p1"]
    assert data["token_ttl"] == 3600
    assert data["token_type"] == "default"
    assert data["ocsp_enabled"] is False
    for key in ("allowed_names", "allowed_uri_sans", "allowed_metadata_extensions",
                "required_extensions", "ocsp_servers_override", "ocsp_ca_certificates",
                "token_bound_cidrs", "token_max_ttl", "token_period", "token_num_uses"):
        assert key in data
    assert cert.list_certificate_roles(mount_point=mount)["data"]["keys"] == ["web"]
    cert.delete_certificate_role("web", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidPath):
        cert.list_certificate_roles(mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidPath):
        cert.read_ca_certificate_role("web", mount_point=mount)


def test_role_raw_write_legacy_fields_and_unset_lists(env: Env, mount: str) -> None:
    r = env.req("POST", f"auth/{mount}/certs/raw", json={
        "certificate": env.ca.pem, "policies": "a,b", "ttl": "10m", "bound_cidrs": "10.0.0.0/8",
        "display_name": "shown"})
    assert r.status_code == 204, r.text
    data = env.req("GET", f"auth/{mount}/certs/raw").json()["data"]
    assert data["allowed_names"] is None and data["required_extensions"] is None
    assert data["policies"] == ["a", "b"] and data["token_policies"] == ["a", "b"]
    assert data["ttl"] == 600 and data["token_bound_cidrs"] == ["10.0.0.0/8"]
    assert data["display_name"] == "shown"
    # an update keeps the certificate and fields not sent
    r = env.req("POST", f"auth/{mount}/certs/raw", json={"token_policies": "c"})
    assert r.status_code == 204, r.text
    data = env.req("GET", f"auth/{mount}/certs/raw").json()["data"]
    assert data["certificate"] == env.ca.pem and data["token_policies"] == ["c"]
    assert data["display_name"] == "shown"


@pytest.mark.parametrize("body, message", [
    ({}, "failed to parse certificate"),
    ({"certificate": "junk"}, "failed to parse certificate"),
    ({"certificate": 123}, "failed to parse certificate"),
    ({"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
     "failed to parse certificate"),
    ({"certificate": "CA", "token_ttl": "2h", "token_max_ttl": "1h"},
     "'token_ttl' cannot be greater than 'token_max_ttl'"),
    ({"certificate": "CA", "token_type": "nope"}, "invalid 'token_type' value \"nope\""),
    ({"certificate": "CA", "token_bound_cidrs": "not-a-cidr"}, None),
    ({"certificate": "CA", "token_num_uses": -1}, "'token_num_uses' cannot be negative"),
    ({"certificate": "CA", "allowed_names": {"a": 1}}, None),
    ({"certificate": "CA", "ocsp_enabled": "maybe"}, None),
    ({"certificate": "CA", "display_name": ["x"]}, None),
    ({"certificate": None}, "failed to parse certificate"),
])
def test_role_write_refusals(env: Env, mount: str, body: dict[str, Any],
                             message: str | None) -> None:
    if body.get("certificate") == "CA":
        body = {**body, "certificate": env.ca.pem}
    r = env.req("POST", f"auth/{mount}/certs/bad", json=body)
    assert r.status_code == 400, r.text
    if message is not None:
        assert _errors(r) == [message]
    assert env.req("GET", f"auth/{mount}/certs/bad").status_code == 404  # nothing written


def test_non_ca_role_needs_client_auth_eku(env: Env, mount: str) -> None:
    server_only = env.pki.issue("srv", env.ca, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    r = env.req("POST", f"auth/{mount}/certs/leaf", json={"certificate": server_only.pem})
    assert r.status_code == 400
    assert _errors(r) == ["nonCA certificates should have TLS client authentication set as "
                          "an extended key usage"]


def test_bad_role_names(env: Env, mount: str) -> None:
    r = env.req("POST", f"auth/{mount}/certs/-bad", json={"certificate": env.ca.pem})
    assert r.status_code == 404


def test_config_with_hvac_and_refusals(env: Env, mount: str) -> None:
    admin = env.admin()
    r = env.req("GET", f"auth/{mount}/config")
    assert r.json()["data"] == {"disable_binding": False,
                                "enable_identity_alias_metadata": False, "ocsp_cache_size": 0}
    admin.auth.cert.configure_tls_certificate(mount_point=mount, disable_binding=True)
    assert env.req("GET", f"auth/{mount}/config").json()["data"]["disable_binding"]
    for body, text in (({"ocsp_cache_size": 1},
                        "invalid cache size, must be >= 2 and <= 100000"),
                       ({"disable_binding": "maybe"}, None),
                       ({"ocsp_cache_size": "many"}, None)):
        r = env.req("POST", f"auth/{mount}/config", json=body)
        assert r.status_code == 400, r.text
        if text:
            assert _errors(r) == [text]
    assert env.req("GET", f"auth/{mount}/config").json()["data"] == {
        "disable_binding": True, "enable_identity_alias_metadata": False, "ocsp_cache_size": 0}


# -- login --------------------------------------------------------------------------------


def test_login_with_hvac(env: Env, mount: str) -> None:
    _role(env, mount, "web", env.ca, token_policies=["app"], token_ttl="30m",
          display_name="webapp")
    leaf = env.pki.issue("app-1", env.ca, eku=CLIENT, dns=["app-1.example.com"])
    app = env.app(leaf)
    out = app.auth.cert.login(name="web", mount_point=mount)
    auth = out["auth"]
    assert auth["policies"] == ["app", "default"] and auth["lease_duration"] == 1800
    ski = leaf.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert auth["metadata"] == {
        "cert_name": "web", "common_name": "app-1",
        "serial_number": str(leaf.cert.serial_number),
        "subject_key_id": ":".join(f"{b:02x}" for b in ski),
        "authority_key_id": auth["metadata"]["authority_key_id"],
    }
    assert auth["metadata"]["authority_key_id"].count(":") == 19
    assert app.token == auth["client_token"] and app.is_authenticated()
    me = app.auth.token.lookup_self()["data"]
    assert me["display_name"] == f"{mount}-webapp"
    assert me["path"] == f"auth/{mount}/login"
    # without `name` every role is tried; the alias is the CN: one entity for both logins;
    # hvac's cert_pem/key_pem arguments present the certificate for this call only
    again = env.app(None).auth.cert.login(cert_pem=leaf.cert_path, key_pem=leaf.key_path,
                                          mount_point=mount)["auth"]
    assert again["entity_id"] == auth["entity_id"] != ""


def test_login_errors(env: Env, mount: str) -> None:
    _role(env, mount, "web", env.ca, allowed_common_names=["app-*"])
    r = env.login(mount, None)
    assert r.status_code == 400 and _errors(r) == ["client certificate must be supplied"]
    r = requests.post(f"{env.plain}/v1/auth/{mount}/login", json={}, timeout=10)
    assert r.status_code == 400 and _errors(r) == ["tls connection required"]
    # a certificate from another CA still connects (the listener accepts any), then 400
    other_ca = env.pki.issue("other root", ca=True)
    stranger = env.pki.issue("app-2", other_ca, eku=CLIENT)
    r = env.login(mount, stranger)
    assert r.status_code == 400
    assert _errors(r) == ["invalid certificate or no client certificate supplied"]
    # such a client can still use tokens on this connection
    r = requests.get(f"{env.srv.addr}/v1/sys/health", verify=env.ca.cert_path, timeout=10,
                     cert=(stranger.cert_path, stranger.key_path))
    assert r.status_code == 200
    good = env.pki.issue("app-3", env.ca, eku=CLIENT)
    r = env.login(mount, good, name="missing")
    assert r.status_code == 400
    assert _errors(r) == ["invalid certificate or no client certificate supplied"]
    wrong_cn = env.pki.issue("db-1", env.ca, eku=CLIENT)
    r = env.login(mount, wrong_cn)
    assert r.status_code == 400
    assert _errors(r) == ["no chain matching all constraints could be found for this login "
                          "certificate"]
    server_only = env.pki.issue("app-4", env.ca, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    r = env.login(mount, server_only)
    assert r.status_code == 500
    assert _errors(r) == ["failed to verify client's certificate: x509: certificate specifies "
                          "an incompatible key usage"]
    expired = env.pki.issue("app-5", env.ca, eku=CLIENT, not_after=NOW - datetime.timedelta(
        hours=1))
    r = env.login(mount, expired)
    assert r.status_code == 500
    assert _errors(r)[0].startswith("failed to verify client's certificate: x509: certificate "
                                    "has expired or is not yet valid")
    r = requests.get(f"{env.srv.addr}/v1/auth/{mount}/login", verify=env.ca.cert_path,
                     timeout=10)
    assert r.status_code == 405


@pytest.mark.parametrize("constraint, ok_kw, bad_kw", [
    ({"allowed_names": ["*.example.com"]}, {"dns": ["a.example.com"]}, {"dns": ["a.other"]}),
    ({"allowed_dns_sans": ["db.*"]}, {"dns": ["db.one"]}, {"dns": ["web.one"]}),
    ({"allowed_email_sans": ["*@corp.test"]}, {"emails": ["a@corp.test"]},
     {"emails": ["a@evil.test"]}),
    ({"allowed_uri_sans": ["spiffe://corp/*"]}, {"uris": ["spiffe://corp/app"]},
     {"uris": ["spiffe://evil/app"]}),
    ({"allowed_organizational_units": ["payments"]}, {"ou": "payments"}, {"ou": "marketing"}),
])
def test_san_constraints(env: Env, mount: str, constraint: dict[str, Any],
                         ok_kw: dict[str, Any], bad_kw: dict[str, Any]) -> None:
    _role(env, mount, "r", env.ca, **constraint)
    ok = env.pki.issue("svc", env.ca, eku=CLIENT, **ok_kw)
    bad = env.pki.issue("svc", env.ca, eku=CLIENT, **bad_kw)
    assert env.login(mount, ok).status_code == 200
    r = env.login(mount, bad)
    assert r.status_code == 400 and "no chain matching" in _errors(r)[0]


def _utf8(value: str) -> bytes:
    raw = value.encode()
    return bytes([0x0C, len(raw)]) + raw


def test_required_and_metadata_extensions(env: Env, mount: str) -> None:
    oid = ObjectIdentifier("1.3.6.1.4.1.55555.1")
    _role(env, mount, "r", env.ca, required_extensions=["1.3.6.1.4.1.55555.1:team-*"],
          allowed_metadata_extensions=["1.3.6.1.4.1.55555.1"])
    ok = env.pki.issue("svc", env.ca, eku=CLIENT,
                       extensions=[x509.UnrecognizedExtension(oid, _utf8("team-blue"))])
    bad = env.pki.issue("svc", env.ca, eku=CLIENT,
                        extensions=[x509.UnrecognizedExtension(oid, _utf8("other"))])
    none = env.pki.issue("svc", env.ca, eku=CLIENT)
    r = env.login(mount, ok)
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["metadata"]["1-3-6-1-4-1-55555-1"] == "team-blue"
    for cert in (bad, none):
        r = env.login(mount, cert)
        assert r.status_code == 400 and "no chain matching" in _errors(r)[0]
    # hex form matches the raw DER value
    hex_mount = mount + "h"
    env.admin().sys.enable_auth_method("cert", path=hex_mount)
    _role(env, hex_mount, "r", env.ca,
          required_extensions=[f"hex:1.3.6.1.4.1.55555.1:{_utf8('team-blue').hex()[:6]}*"])
    assert env.login(hex_mount, ok).status_code == 200
    assert env.login(hex_mount, bad).status_code == 400


def test_trusted_leaf_and_role_choice(env: Env, mount: str) -> None:
    self_signed = env.pki.issue("lonely", eku=CLIENT, new_key=True)
    _role(env, mount, "leaf", self_signed, token_policies=["leafpol"])
    _role(env, mount, "ca", env.ca, token_policies=["capol"])
    r = env.login(mount, self_signed)
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["metadata"]["cert_name"] == "leaf"
    child = env.pki.issue("kid", env.ca, eku=CLIENT)
    r = env.login(mount, child, name="leaf")  # `name` restricts the roles tried
    assert r.status_code == 400
    r = env.login(mount, child, name="ca")
    assert r.status_code == 200 and r.json()["auth"]["token_policies"] == ["capol", "default"]


def test_intermediate_in_role(env: Env, mount: str) -> None:
    inter = env.pki.issue("intermediate", env.ca, ca=True)
    leaf = env.pki.issue("deep", inter, eku=CLIENT)
    _role(env, mount, "root-only", env.ca)
    # Python's ssl hands over the leaf only: the role must hold the intermediate
    assert env.login(mount, leaf).status_code == 400
    _role(env, mount, "with-inter", inter)
    r = env.login(mount, leaf)
    assert r.status_code == 200 and r.json()["auth"]["metadata"]["cert_name"] == "with-inter"


def test_bound_cidrs(env: Env, mount: str) -> None:
    _role(env, mount, "in", env.ca, token_bound_cidrs=["127.0.0.0/8"])
    leaf = env.pki.issue("svc", env.ca, eku=CLIENT)
    r = env.login(mount, leaf, name="in")
    assert r.status_code == 200
    _role(env, mount, "out", env.ca, token_bound_cidrs=["10.0.0.0/8"])
    r = env.login(mount, leaf, name="out")
    assert r.status_code == 403 and _errors(r) == ["permission denied"]


def test_identity_alias_metadata_and_renewal(env: Env, mount: str) -> None:
    admin = env.admin()
    _role(env, mount, "r", env.ca, token_policies=["p"], token_ttl="10m")
    env.req("POST", f"auth/{mount}/config", json={"enable_identity_alias_metadata": True})
    leaf = env.pki.issue(f"ident-{mount}", env.ca, eku=CLIENT)
    app = env.app(leaf)
    auth = app.auth.cert.login(mount_point=mount)["auth"]
    entity = admin.secrets.identity.read_entity(auth["entity_id"])["data"]
    alias = entity["aliases"][0]
    assert alias["name"] == f"ident-{mount}"
    assert alias["metadata"]["cert_name"] == "r"
    assert app.auth.token.renew_self()["auth"]["lease_duration"] == 600
    _role(env, mount, "r", env.ca, token_policies=["q"])
    with pytest.raises(hvac.exceptions.InternalServerError):
        app.auth.token.renew_self()


def _crl(issuer: Issued, serials: list[int]) -> str:
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
         .last_update(NOW - DAY).next_update(NOW + DAY))
    for serial in serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(NOW - DAY).build())
    return b.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_crls(env: Env, mount: str) -> None:
    _role(env, mount, "r", env.ca)
    revoked = env.pki.issue("gone", env.ca, eku=CLIENT)
    kept = env.pki.issue("kept", env.ca, eku=CLIENT)
    r = env.req("POST", f"auth/{mount}/crls/MyCRL",
                {"crl": _crl(env.ca, [revoked.cert.serial_number])})
    assert r.status_code == 204, r.text
    data = env.req("GET", f"auth/{mount}/crls/mycrl").json()["data"]
    assert data == {"serials": {str(revoked.cert.serial_number): {}}}
    assert env.req("LIST", f"auth/{mount}/crls").json()["data"]["keys"] == ["mycrl"]
    r = env.login(mount, revoked)
    assert r.status_code == 400 and "no chain matching" in _errors(r)[0]
    assert env.login(mount, kept).status_code == 200
    # a revoked CA serial revokes every chain through it
    r = env.req("POST", f"auth/{mount}/crls/root", {"crl": _crl(env.ca, [env.ca.cert.serial_number])})
    assert r.status_code == 204
    assert env.login(mount, kept).status_code == 400
    for name in ("mycrl", "root"):
        assert env.req("DELETE", f"auth/{mount}/crls/{name}").status_code == 204
    assert env.login(mount, revoked).status_code == 200
    assert env.req("LIST", f"auth/{mount}/crls").status_code == 404


@pytest.mark.parametrize("method, body, message", [
    ("POST", {"crl": "junk"}, "failed to parse CRL: "),
    ("POST", {"crl": 5}, "failed to parse CRL: "),
    ("POST", {"crl": "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"},
     "failed to parse CRL: "),
    ("POST", {}, "one of 'crl' or 'url' must be provided"),
    ("POST", {"url": "http://127.0.0.1:1/crl"}, "CRL distribution URLs are not supported"),
    ("GET", None, "no such CRL nope"),
    ("DELETE", None, "no such CRL nope"),
])
def test_crl_refusals(env: Env, mount: str, method: str, body: dict[str, Any] | None,
                      message: str) -> None:
    r = env.req(method, f"auth/{mount}/crls/nope", body)
    assert r.status_code == 400, r.text
    assert _errors(r)[0].startswith(message)
    assert env.req("GET", f"auth/{mount}/crls/nope").status_code == 400  # nothing written


def test_listener_client_cert_modes(env: Env, mount: str) -> None:
    """tls_disable_client_certs: not asked, so never presented; tls_require_and_verify_
    client_cert: demanded at the handshake, and the login still checks the roles."""
    _role(env, mount, "r", env.ca, allowed_common_names=["ok-*"])
    good = env.pki.issue("ok-1", env.ca, eku=CLIENT)
    r = env.login(mount, good, addr=env.no_ask)
    assert r.status_code == 400 and _errors(r) == ["client certificate must be supplied"]
    assert env.login(mount, good, addr=env.mtls).status_code == 200
    r = env.login(mount, env.pki.issue("no-1", env.ca, eku=CLIENT), addr=env.mtls)
    assert r.status_code == 400 and "no chain matching" in _errors(r)[0]
