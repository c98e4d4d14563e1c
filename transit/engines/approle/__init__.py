"""The AppRole auth method (spec auth-api §2)."""

from transit.engines.approle.backend import AppRoleBackend, approle_factory

__all__ = ["AppRoleBackend", "approle_factory"]
