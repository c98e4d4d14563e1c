"""The `identity/` engine: always mounted, token required (spec auth-api §6)."""
