"""SIGHUP: what a running node takes from its re-read configuration file, as Vault does.

Every process of a node handles its own SIGHUP (the supervisor forwards it to the workers):

- audit devices reopen their files (log rotation);
- `log_level`, when the file sets it and the value changed since the last read (a level
  from `-log-level` or `VAULT_LOG_LEVEL` stays until the file says otherwise, as in Vault);
- each TLS listener's `tls_cert_file` / `tls_key_file` are loaded again into the listener's
  live SSL context, so new connections get the new certificate and open ones are untouched.

Anything else that changed in the file (storage, seal, listeners' addresses, ...) needs a
restart, as in Vault. A file that no longer parses, or a certificate that does not load,
changes nothing: the error is logged and the node keeps serving with what it had.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from transit import logs
from transit.config import ListenerConfig, ServerConfig, load_config
from transit.errors import ConfigError

log = logging.getLogger("transit.reload")


class Reloader:
    def __init__(self, config: ServerConfig, contexts: dict[str, ssl.SSLContext],
                 reopen_audit: Callable[[], None]) -> None:
        """`contexts`: listener address -> the SSL context it serves with."""
        self._file_level = config.raw.get("log_level") if config.raw else None
        self._path = config.path
        self._contexts = contexts
        self._reopen_audit = reopen_audit

    def __call__(self) -> None:
        """The SIGHUP handler (on the event loop: a file parse and a certificate load)."""
        self._reopen_audit()
        if not self._path:
            return
        log.info("reloading configuration from %s", self._path)
        try:
            config = load_config(self._path)
        except ConfigError as exc:
            log.error("configuration not reloaded: %s", exc)
            return
        level = config.raw.get("log_level")
        if level is not None and level != self._file_level:
            self._file_level = level
            logs.set_level(config.log_level)
            log.info("log level set to %s", config.log_level)
            log.debug("debug lines are on")
        for listener in config.listeners:
            ctx = self._contexts.get(listener.address)
            if ctx is not None and not listener.tls_disable:
                _reload_certificate(listener, ctx)
        log.info("configuration reloaded")


def _reload_certificate(listener: ListenerConfig, ctx: ssl.SSLContext) -> None:
    try:  # validate first: a failed load_cert_chain could leave the live context half-set
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
            listener.tls_cert_file, listener.tls_key_file)
        ctx.load_cert_chain(listener.tls_cert_file, listener.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        log.error('listener "tcp" on %s: certificate not reloaded (%s, %s): %s',
                  listener.address, listener.tls_cert_file, listener.tls_key_file, exc)
        return
    log.info('listener "tcp" on %s: certificate reloaded from %s', listener.address,
             listener.tls_cert_file)
