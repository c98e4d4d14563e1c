"""The transit secrets engine (spec transit-api.md)."""
