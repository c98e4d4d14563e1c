"""What the KV v2 handlers use of their backend: the `KVv2Port` protocol.

The handlers (`v2_data`, `v2_metadata`) take the backend first; typing them with this protocol
(which `KVv2Backend` satisfies) rather than the backend class keeps the handler modules below
`backend.py`, which imports them all for its route table (as `engines/transit/ports.py` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from transit.engines.kv.common import PathLocks
    from transit.engines.kv.store import KVStore
    from transit.fields import FieldData
    from transit.logical import Request


class KVv2Port(Protocol):
    """One KV v2 mount's shared state."""

    store: KVStore  # the mount's versioned entries (metadata, versions, config)
    locks: PathLocks  # one lock per secret path for read-modify-write

    def path_of(self, req: Request, d: FieldData | None = None) -> str:
        """The secret path a request addresses."""
        ...
