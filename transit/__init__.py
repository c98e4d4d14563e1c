"""transit: a Vault-compatible encryption-as-a-service server."""

__version__ = "0.1.0"
