"""Token buckets for rate-limit quotas, shared by every worker process of a node.

A node is one rate limiter, as in Vault (each node limits what reaches it), however many
worker processes serve it: the buckets live in an anonymous shared memory map created by the
supervisor before it forks the workers (`Buckets.create()`), guarded by one process-shared
lock. A single-process server makes its own.

One bucket per (rule, client address), go-limiter's memorystore semantics: `tokens` requests
per window of `interval` seconds, the window starting at the client's first request; a client
over the limit is refused until the window ends, or for `block_interval` seconds after the
refusal when that is set. The table is a fixed array of slots (open addressing, a short
probe); a bucket idle for three minutes past its window is free for reuse, and when every
probed slot is busy the oldest is taken, which can only make a limit more lenient, never
refuse a request that should pass. `time.monotonic()` is the same clock in every process.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import multiprocessing
import struct
import time
from dataclasses import dataclass
from typing import Any

_SLOT = struct.Struct("=Qddd")  # key, window start, tokens left, blocked until
SLOTS = 65_536  # 2 MiB
PROBE = 16
IDLE = 180.0  # seconds after which an idle client's bucket may be reused (go-limiter: 3 min)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the window ends (or the block lifts)

    @property
    def reset_seconds(self) -> int:
        """`reset` in whole seconds, rounded up, for the `Retry-After` style headers.

        `(now + block) - now` on monotonic-clock floats can come out a few ulps above
        `block`; rounding to the microsecond first keeps a one-hour block at 3600, not 3601.
        """
        return math.ceil(round(self.reset, 6))


class Buckets:
    def __init__(self, memory: mmap.mmap, lock: Any, slots: int) -> None:
        self._mem = memory
        self._lock = lock
        self._slots = slots

    @classmethod
    def create(cls, slots: int = SLOTS) -> Buckets:
        """A table in anonymous shared memory: processes forked after this share it."""
        memory = mmap.mmap(-1, slots * _SLOT.size)  # MAP_SHARED | MAP_ANONYMOUS, zeroed
        return cls(memory, multiprocessing.get_context("fork").Lock(), slots)

    @staticmethod
    def key(rule: str, client: str) -> int:
        """A non-zero 64-bit key for (rule identity, client address)."""
        digest = hashlib.blake2b(f"{rule}\0{client}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") or 1

    def take(self, key: int, tokens: int, interval: float, block: float,
             now: float | None = None) -> Verdict:
        """Spend one request of bucket `key` (`tokens` per `interval` seconds)."""
        now = time.monotonic() if now is None else now
        mem, size, slots = self._mem, _SLOT.size, self._slots
        home = key % slots
        with self._lock:
            slot, oldest, oldest_start = -1, -1, math.inf
            for i in range(PROBE):
                at = ((home + i) % slots) * size
                k, start, left, blocked = _SLOT.unpack_from(mem, at)
                if k == key:
                    slot = at
                    break
                if k == 0 or (now - start > interval + IDLE and now > blocked + IDLE):
                    if slot < 0:
                        slot, k = at, 0
                        start = -1.0
                    continue
                if start < oldest_start:
                    oldest, oldest_start = at, start
            else:
                if slot < 0:
                    slot = oldest
                k = 0
            if k != key:  # a new bucket, full
                start, left, blocked = now, float(tokens), 0.0
            if blocked > now:
                _SLOT.pack_into(mem, slot, key, start, left, blocked)
                return Verdict(False, tokens, 0, blocked - now)
            if now - start >= interval:  # a new window: full again
                start += interval * math.floor((now - start) / interval)
                left = float(tokens)
            allowed = left >= 1
            if allowed:
                left -= 1
            elif block > 0:
                blocked = now + block
            _SLOT.pack_into(mem, slot, key, start, left, blocked)
        reset = (blocked if blocked > now else start + interval) - now
        return Verdict(allowed, tokens, int(left), reset)
