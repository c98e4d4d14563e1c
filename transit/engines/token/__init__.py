"""The `auth/token/` engine (token auth method)."""

from transit.engines.token.backend import TokenBackend

__all__ = ["TokenBackend"]
