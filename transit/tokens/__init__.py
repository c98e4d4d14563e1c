"""Tokens: the token store (entries, salted storage, revoke tree, roles) and response wrapping."""

from transit.tokens.entry import TokenEntry
from transit.tokens.store import TokenStore

__all__ = ["TokenEntry", "TokenStore"]
