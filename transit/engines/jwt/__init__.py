"""The JWT auth method, JWT mode (spec auth-api §5): types `jwt` and `oidc`."""

from transit.engines.jwt.backend import JWTBackend, jwt_factory, oidc_factory

__all__ = ["JWTBackend", "jwt_factory", "oidc_factory"]
