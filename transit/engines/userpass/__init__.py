"""The userpass auth method (spec auth-api §3)."""

from transit.engines.userpass.backend import UserpassBackend, userpass_factory

__all__ = ["UserpassBackend", "userpass_factory"]
