"""HTTP transport: the ASGI app speaking Vault's wire format. No business logic here."""
