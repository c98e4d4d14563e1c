"""Size bounds for the in-memory caches over storage (tokens, token roles).

A cache here is a plain dict, so a hit stays one dict probe (plus a `metrics.incr`).
The bound is enforced on insert only, by dropping the oldest insertions (FIFO, not LRU): an
entry that is still in use is simply read from storage again and re-inserted. Evicting a
batch (an eighth of the bound) at a time keeps the amortised cost per insert O(1) even though
CPython dicts leave deleted slots at the front until they resize.
"""

from __future__ import annotations

from itertools import islice
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

TOKEN_CACHE_SIZE = 10_000  # TokenStore: cached token entries (each ~1 KiB)
ROLE_CACHE_SIZE = 1_000  # RoleStore: cached token roles


def make_room(cache: dict[K, V], limit: int) -> list[V]:
    """Before inserting a key that `cache` does not hold: if it is full, drop its oldest
    eighth and return the dropped values (the caller may have to unlink them elsewhere)."""
    if len(cache) < limit:
        return []
    old = list(islice(cache, max(1, limit // 8)))
    return [cache.pop(k) for k in old]
