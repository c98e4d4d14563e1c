"""What the transit engine's handlers use of their backend: the `TransitPort` protocol.

Handlers live one module per path group and take the backend first; typing them with this
protocol (which `TransitBackend` satisfies) rather than the backend class keeps the handler
modules below `backend.py`, which imports them all for its route table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from transit.engines.transit.policies import PolicyStore


class TransitPort(Protocol):
    """One transit mount's shared state."""

    storage: Any  # the mount's StorageView (the storage Backend protocol)
    policies: PolicyStore  # the mount's keys (cached policies, locks, archives)
    disable_upsert: bool  # config/keys: encrypt may not create a missing key
    cache_size: int  # config/cache-config, stored and reported only
