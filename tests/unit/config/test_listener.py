"""Listener hardening keys: parsing and validation (transit/config/listener.py), the limits handed to
the protocol (transit/api/limits.py) and the SSL context (transit/api/tls.py)."""

from __future__ import annotations

import datetime
import ssl
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from transit.api.limits import (
    FD_RESERVE,
    MAX_HEADER_BYTES,
    REFUSAL_SLACK,
    connection_cap,
    listener_limits,
)
from transit.api.tls import server_context
from transit.config import ListenerConfig, parse_config
from transit.errors import ConfigError


def _listener(lines: str, tls: bool = False) -> ListenerConfig:
    files = 'tls_cert_file = "/c.pem"\n tls_key_file = "/k.pem"\n' if tls else "tls_disable = 1\n"
    cfg = parse_config(f'storage "inmem" {{}}\nlistener "tcp" {{\n {files} {lines}\n}}\n', env={})
    return cfg.listeners[0]


def test_defaults_are_vaults() -> None:
    lst = _listener("")
    assert (lst.http_read_header_timeout, lst.http_read_timeout, lst.http_write_timeout,
            lst.http_idle_timeout) == (10, 30, 0, 300)
    assert lst.max_request_duration == 0 and lst.max_connections == 0
    assert (lst.tls_min_version, lst.tls_max_version, lst.tls_cipher_suites) == (
        "tls12", "tls13", ())
    assert not (lst.tls_require_and_verify_client_cert or lst.tls_disable_client_certs)
    assert MAX_HEADER_BYTES == 1024 * 1024 + 4096


@pytest.mark.parametrize(("value", "header", "idle"), [
    ('"15s"', 15, 15), ("20", 20, 20), ('"1m30s"', 90, 90), ('"250ms"', 0.25, 0.25),
    ('"5"', 5, 5),
    ("0", 10, 300), ('"0s"', 10, 300), ('"-5s"', 10, 300),  # Vault: only > 0 overrides
])
def test_http_timeouts_are_vault_durations(value: str, header: float, idle: float) -> None:
    lst = _listener(f"http_read_header_timeout = {value}\n http_idle_timeout = {value}")
    assert (lst.http_read_header_timeout, lst.http_idle_timeout) == (header, idle)


def test_write_timeout_is_off_unless_set() -> None:
    assert _listener('http_write_timeout = "0"').http_write_timeout == 0
    assert _listener('http_write_timeout = "45s"').http_write_timeout == 45
    assert _listener('http_read_timeout = "1m"').http_read_timeout == 60


@pytest.mark.parametrize("line", [
    'http_read_timeout = "soon"', "http_idle_timeout = true", 'max_request_duration = "1x"',
    'max_connections = "many"', "max_connections = -1",
])
def test_bad_limits(line: str) -> None:
    with pytest.raises(ConfigError, match=line.split()[0]):
        _listener(line)


def test_max_request_duration_overrides_the_server_default() -> None:
    text = ('storage "inmem" {}\ndefault_max_request_duration = "5s"\n'
            'listener "tcp" {\n tls_disable = 1\n max_request_duration = "2m"\n}\n'
            'listener "tcp" {\n tls_disable = 1\n address = "127.0.0.1:9200"\n}\n')
    cfg = parse_config(text, env={})
    a, b = cfg.listeners
    assert a.max_request_duration == 120 and b.max_request_duration == 0
    assert listener_limits(a, cfg.default_max_request_duration, 2).max_request_duration == 120
    assert listener_limits(b, cfg.default_max_request_duration, 2).max_request_duration == 5
    assert listener_limits(b, 0, 2).max_request_duration == 90  # Vault's default


def test_limits_carry_the_listener_timeouts() -> None:
    lst = _listener('http_read_header_timeout = "2s"\n http_read_timeout = 3\n'
                    ' http_write_timeout = "4s"\n max_connections = 8')
    limits = listener_limits(lst, 90, 1)
    assert (limits.read_header_timeout, limits.read_timeout, limits.write_timeout) == (2, 3, 4)
    assert limits.max_connections == 8 and limits.max_header_bytes == MAX_HEADER_BYTES


def test_connection_cap_stays_under_the_file_descriptor_limit() -> None:
    fit = 1024 - FD_RESERVE - REFUSAL_SLACK
    assert connection_cap(0, 1, nofile=1024) == fit
    assert connection_cap(8, 1, nofile=1024) == 8
    assert connection_cap(5000, 1, nofile=1024) == fit
    assert connection_cap(0, 2, nofile=1024) == (1024 - FD_RESERVE) // 2 - REFUSAL_SLACK
    assert connection_cap(0, 1, nofile=50) == 1
    assert connection_cap(0, 1) > 0  # this process's own limit


# -- TLS keys ------------------------------------------------------------------------------


def test_tls_keys_are_parsed() -> None:
    lst = _listener(
        'tls_min_version = "tls12"\n tls_max_version = "tls12"\n'
        ' tls_cipher_suites = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, '
        'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"\n tls_prefer_server_cipher_suites = true\n'
        ' tls_require_and_verify_client_cert = "true"\n tls_client_ca_file = "/ca.pem"', tls=True)
    assert (lst.tls_min_version, lst.tls_max_version) == ("tls12", "tls12")
    assert lst.tls_cipher_suites == ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                                     "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305")
    assert lst.tls_prefer_server_cipher_suites is True
    assert lst.tls_require_and_verify_client_cert is True and lst.tls_client_ca_file == "/ca.pem"
    assert _listener("tls_disable_client_certs = 1", tls=True).tls_disable_client_certs is True
    # TLS 1.3 names are accepted (and, as in Go, change nothing) next to TLS 1.2 ones
    lst = _listener('tls_cipher_suites = "TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_GCM_SHA256"')
    assert lst.tls_cipher_suites == ("TLS_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256")
    assert _listener('tls_min_version = "tls13"\n tls_cipher_suites = "TLS_AES_128_GCM_SHA256"'
                     ).tls_cipher_suites == ("TLS_AES_128_GCM_SHA256",)


@pytest.mark.parametrize(("lines", "message"), [
    ('tls_min_version = "ssl3"', 'invalid tls_min_version "ssl3"'),
    ('tls_max_version = "tls14"', 'invalid tls_max_version "tls14"'),
    ('tls_min_version = "tls13"\n tls_max_version = "tls12"', "lower than tls_min_version"),
    ('tls_cipher_suites = "TLS_NOPE"', 'unsupported cipher "TLS_NOPE"'),
    ('tls_cipher_suites = "ECDHE-RSA-AES128-GCM-SHA256"', "unsupported cipher"),  # OpenSSL's
    ('tls_cipher_suites = "TLS_RSA_WITH_RC4_128_SHA"', "is not available in"),
    ('tls_cipher_suites = "TLS_AES_128_GCM_SHA256"', "only TLS 1.3 suites"),
    ("tls_require_and_verify_client_cert = true\n tls_disable_client_certs = true",
     "'tls_disable_client_certs' and 'tls_require_and_verify_client_cert' are mutually "
     "exclusive"),
    ("tls_require_and_verify_client_cert = true", "needs tls_client_ca_file"),
    ('tls_disable_client_certs = "maybe"', "tls_disable_client_certs"),
])
def test_bad_tls_keys(lines: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _listener(lines, tls=True)


@pytest.mark.parametrize("key", [
    "tls_alpn_protocols", "tls_skip_verify", "proxy_protocol_behavior",
    "proxy_protocol_authorized_addrs", "x_forwarded_for_authorized_addrs",
    "x_forwarded_for_hop_skips", "unauthenticated_metrics_access",
    "disable_unauthed_rekey_endpoints", "disable_unauthed_generate_root_endpoints",
    "enable_unauthenticated_access", "redact_addresses", "redact_version",
    "require_request_header", "disable_replication_status_endpoints", "chroot_namespace",
])
def test_unimplemented_security_keys_stop_the_server(key: str) -> None:
    with pytest.raises(ConfigError, match=f'"{key}" is not supported'):
        _listener(f'{key} = "x"')


def test_harmless_unknown_keys_are_still_accepted() -> None:
    lst = _listener('purpose = "api"\n cors_enabled = true\n some_future_key = 1\n'
                    ' telemetry { unauthenticated_metrics_access = true }')
    assert lst.raw["purpose"] == "api"


# -- the SSL context -----------------------------------------------------------------------


def _pem_pair(tmp: Path, stem: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / f"{stem}.crt", tmp / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_server_context_applies_the_keys(tmp_path: Path) -> None:
    cert, key = _pem_pair(tmp_path, "server")
    ca, _ = _pem_pair(tmp_path, "ca")
    base = ListenerConfig(tls_cert_file=cert, tls_key_file=key)
    ctx = server_context(base)
    assert (ctx.minimum_version, ctx.maximum_version) == (ssl.TLSVersion.TLSv1_2,
                                                          ssl.TLSVersion.TLSv1_3)
    # as Vault: asks for a client certificate (and accepts any: tests/integration/
    # test_cert_auth.py); tls_disable_client_certs does not ask
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    ctx = server_context(ListenerConfig(tls_cert_file=cert, tls_key_file=key,
                                        tls_disable_client_certs=True))
    assert ctx.verify_mode == ssl.CERT_NONE
    ctx = server_context(ListenerConfig(
        tls_cert_file=cert, tls_key_file=key, tls_min_version="tls13",
        tls_require_and_verify_client_cert=True, tls_client_ca_file=ca))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3 and ctx.verify_mode == ssl.CERT_REQUIRED
    ctx = server_context(ListenerConfig(
        tls_cert_file=cert, tls_key_file=key, tls_max_version="tls12",
        tls_cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256")))
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"}
    assert tls12 == {"ECDHE-ECDSA-AES256-GCM-SHA384"}
    with warnings.catch_warnings():  # the ssl module deprecates TLS 1.0/1.1
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = server_context(ListenerConfig(tls_cert_file=cert, tls_key_file=key,
                                            tls_min_version="tls11"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_1
    # what TLS 1.1 needs: SHA-1 suites (OpenSSL 3 drops them above security level 0)
    assert "ECDHE-ECDSA-AES128-SHA" in {c["name"] for c in ctx.get_ciphers()}


def test_server_context_refuses_unreadable_files(tmp_path: Path) -> None:
    cert, key = _pem_pair(tmp_path, "server")
    with pytest.raises(ConfigError, match="tls_cert_file"):
        server_context(ListenerConfig(tls_cert_file=str(tmp_path / "nope"), tls_key_file=key))
    with pytest.raises(ConfigError, match="tls_client_ca_file"):
        server_context(ListenerConfig(tls_cert_file=cert, tls_key_file=key,
                                      tls_require_and_verify_client_cert=True,
                                      tls_client_ca_file=str(tmp_path / "nope")))
