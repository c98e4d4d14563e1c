"""Go's TLS cipher-suite names and their OpenSSL equivalents: what `tls_cipher_suites` in a
listener stanza may name (validated by transit/config/listener.py, applied by
transit/api/tls.py). Standard library only: configuration owns the names, the API uses them."""

from __future__ import annotations

import ssl

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
LEGACY_LEVEL = ":@SECLEVEL=0"


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
    text = ":".join(dict.fromkeys(wanted)) + (LEGACY_LEVEL if legacy else "")
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
