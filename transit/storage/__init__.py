"""Physical storage: byte values under string keys. Knows nothing of crypto or HTTP."""

from transit.storage.base import Backend, StorageView

__all__ = ["Backend", "StorageView"]
