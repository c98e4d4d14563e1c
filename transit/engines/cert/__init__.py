"""The TLS certificate auth method (spec auth-api §4)."""

from transit.engines.cert.backend import CertBackend, cert_factory

__all__ = ["CertBackend", "cert_factory"]
