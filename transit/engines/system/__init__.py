"""The `sys/` engine: mounts, tools (later: policies, audit, seal, HA endpoints)."""
