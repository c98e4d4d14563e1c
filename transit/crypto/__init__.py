"""Pure crypto core: key types, policies (named keys with versions), byte-exact Vault formats.

No I/O, no asyncio, no storage and no HTTP here; see docs/dev/contracts.md §2.
"""
