"""The SSL context of a TLS listener, from Vault's `tls_*` listener keys.

Vault's names are Go's: versions `tls10`..`tls13` and crypto/tls cipher suite names, mapped
here to OpenSSL's. As in Go, `tls_cipher_suites` governs TLS 1.0-1.2 only: TLS 1.3 suites are
not configurable (their names are accepted and have no effect).

Client certificates, as Vault's listener: by default the handshake *asks* for one and accepts
whatever is presented, unverified (Go's `RequestClientCert`), so clients without a certificate
connect as usual and the TLS certificate auth method (transit/engines/cert) verifies the
certificate against its roles in the login handler, with Vault's errors.
`tls_disable_client_certs` does not ask; `tls_require_and_verify_client_cert` demands one that
chains to `tls_client_ca_file`.

Python's `ssl` cannot ask without verifying: `CERT_OPTIONAL` aborts the handshake when a
presented certificate does not chain to the context's CAs, and it has no verify callback. So
`_accept_any_client_cert` installs OpenSSL's verify callback on the context's `SSL_CTX`
through ctypes (one callback that accepts, kept alive here). The `SSL_CTX` pointer is read
from CPython's `PySSLContext` and checked against the context's own verify mode and options
before anything is written; if that check fails (another Python build), the listener does
not ask for certificates and says so in the log (cert logins then fail with Vault's `client
certificate must be supplied`). Imports only the stdlib and transit.errors: config.py
validates with it.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
from typing import TYPE_CHECKING

from transit.config.tls_names import LEGACY_LEVEL, openssl_ciphers
from transit.errors import ConfigError

if TYPE_CHECKING:
    from transit.config import ListenerConfig

log = logging.getLogger("transit.tls")

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "tls10": ssl.TLSVersion.TLSv1,
    "tls11": ssl.TLSVersion.TLSv1_1,
    "tls12": ssl.TLSVersion.TLSv1_2,
    "tls13": ssl.TLSVersion.TLSv1_3,
}

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
        ciphers = "DEFAULT" + LEGACY_LEVEL
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
    elif listener.tls_disable_client_certs or not _accept_any_client_cert(ctx):
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# -- asking for a client certificate without verifying it ------------------------------------

_SSL_VERIFY_PEER = 1
_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept(preverify_ok: int, store_ctx: int | None) -> int:
    return 1  # any certificate passes the handshake; the cert auth method verifies it


_ACCEPT = _VerifyCallback(_accept)  # must outlive every context that uses it
_libssl: ctypes.CDLL | None = None


def _openssl() -> ctypes.CDLL:
    """The OpenSSL that Python's `_ssl` is linked with (dlsym on the extension's handle
    searches its dependencies)."""
    global _libssl
    if _libssl is None:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.SSL_CTX_set_verify.restype = None
        _libssl = lib
    return _libssl


def _accept_any_client_cert(ctx: ssl.SSLContext) -> bool:
    """Make `ctx` request a client certificate and accept any (Go's RequestClientCert).
    False (ctx untouched) when the SSL_CTX cannot be found safely."""
    try:
        lib = _openssl()
        ctx.verify_mode = ssl.CERT_OPTIONAL  # SSL_VERIFY_PEER, no certificate required
        # PySSLContext: PyObject_HEAD, then `SSL_CTX *ctx`
        raw = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if (not raw or lib.SSL_CTX_get_verify_mode(raw) != _SSL_VERIFY_PEER
                or lib.SSL_CTX_get_options(raw) != int(ctx.options)):
            raise OSError("unexpected SSLContext layout")
        lib.SSL_CTX_set_verify(raw, _SSL_VERIFY_PEER, ctypes.cast(_ACCEPT, ctypes.c_void_p))
    except (OSError, AttributeError, ValueError) as exc:
        ctx.verify_mode = ssl.CERT_NONE
        log.warning("TLS listener: cannot request client certificates without verifying "
                    "them (%s); TLS certificate logins will fail", exc)
        return False
    return True
