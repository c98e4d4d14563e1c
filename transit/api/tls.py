"""The SSL context of a TLS listener, from Vault's `tls_*` listener keys.

Vault's names are Go's: versions `tls10`..`tls13` and crypto/tls cipher suite names, mapped
here to OpenSSL's. As in Go, `tls_cipher_suites` governs TLS 1.0-1.2 only: TLS 1.3 suites are
not configurable (their names are accepted and have no effect). Go asks for a client
certificate by default without verifying it; OpenSSL cannot ask without verifying, and nothing
here reads an unverified certificate, so the default (like `tls_disable_client_certs`) is not
to ask. Imports only the stdlib and transit.errors: config.py validates with it.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from transit.errors import ConfigError

if TYPE_CHECKING:
    from transit.config import ListenerConfig

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "tls10": ssl.TLSVersion.TLSv1,
    "tls11": ssl.TLSVersion.TLSv1_1,
    "tls12": ssl.TLSVersion.TLSv1_2,
    "tls13": ssl.TLSVersion.TLSv1_3,
}

# crypto/tls name -> OpenSSL name, TLS 1.0-1.2 (crypto/tls CipherSuites + InsecureCipherSuites,
# and the older ChaCha20 names without "_SHA256")
GO_CIPHER_SUITES: dict[str, str] = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
GO_TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})

# TLS 1.0 and 1.1 need SHA-1 signatures, which OpenSSL 3 refuses above security level 0.
_LEGACY_LEVEL = ":@SECLEVEL=0"


def parse_cipher_suites(value: str) -> tuple[str, ...]:
    """Vault's comma-separated `tls_cipher_suites` -> Go names (ValueError for an unknown one,
    or one this OpenSSL cannot offer)."""
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    for name in names:
        if name not in GO_CIPHER_SUITES and name not in GO_TLS13_SUITES:
            raise ValueError(f'unsupported cipher "{name}"')
    openssl_ciphers(names)  # every one must be available
    return names


def openssl_ciphers(names: tuple[str, ...], legacy: bool = False) -> str | None:
    """The OpenSSL cipher string for these Go suite names; None when they name no TLS 1.0-1.2
    suite (nothing to set). ValueError if OpenSSL lacks one of them."""
    wanted = [GO_CIPHER_SUITES[n] for n in names if n in GO_CIPHER_SUITES]
    if not wanted:
        return None
    text = ":".join(dict.fromkeys(wanted)) + (_LEGACY_LEVEL if legacy else "")
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        probe.set_ciphers(text)
    except ssl.SSLError:
        available: set[str] = set()
    else:
        available = {c["name"] for c in probe.get_ciphers()}
    for name in names:
        if name in GO_CIPHER_SUITES and GO_CIPHER_SUITES[name] not in available:
            raise ValueError(f'cipher "{name}" is not available in {ssl.OPENSSL_VERSION}')
    return text


def server_context(listener: ListenerConfig) -> ssl.SSLContext:
    """The listener's server-side SSLContext; ConfigError for unreadable files."""
    where = f'listener "tcp" on {listener.address}'
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[listener.tls_min_version]
    ctx.maximum_version = TLS_VERSIONS[listener.tls_max_version]
    legacy = ctx.minimum_version < ssl.TLSVersion.TLSv1_2
    try:
        ciphers = openssl_ciphers(listener.tls_cipher_suites, legacy)
    except ValueError as exc:
        raise ConfigError(f"{where}: tls_cipher_suites: {exc}") from None
    if ciphers is None and legacy:
        ciphers = "DEFAULT" + _LEGACY_LEVEL
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    try:
        ctx.load_cert_chain(listener.tls_cert_file, listener.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}: cannot load tls_cert_file {listener.tls_cert_file!r} "
                          f"and tls_key_file {listener.tls_key_file!r}: {exc}") from None
    if listener.tls_require_and_verify_client_cert:
        try:
            ctx.load_verify_locations(cafile=listener.tls_client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{where}: cannot load tls_client_ca_file "
                              f"{listener.tls_client_ca_file!r}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
