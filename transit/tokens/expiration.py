"""The expiration manager: revokes expired tokens in the background on the active node.

Vault revokes a token when its lease ends, whether or not anyone uses it again: the token
goes with its whole tree (a child never outlives an expired parent), and an expired
response-wrapping token takes its cubbyhole data with it (the wrapper's revoke hook). Lookups
still revoke an expired token they find (`TokenStore.lookup`); this does it without them.

Only the active node runs it, in the one process per node that runs `NodeLifecycle.run_periodic`
(`active()` is checked every tick: a standby never writes). Its schedule lives in memory:

- a min-heap of (expire time, token hash), with `_due` (hash → the time it is scheduled for)
  to drop superseded heap items; tokens that never expire (root, ttl 0) are not in it. Memory:
  ~250 bytes per expiring token;
- built when the process becomes active, and again whenever the token store says everything
  may have changed (`TokenStore.invalidate()`: activation, an invalidation feed resubscribe),
  by a scan of `id/` in steps of `scan_batch` entries — the only full scan;
- kept current by the token store: tokens this process writes (create, renew) are scheduled
  directly; tokens another worker of the node changed arrive as invalidations and are re-read
  from storage (at most `batch` per tick; past `max_recheck` pending, a scan instead).

A tick does bounded work: at most `batch` re-reads and `batch` expired tokens (each revoked
with its tree); when more is due, the next tick follows at once. An idle tick costs a heap
peek, so the default interval is short (1 s). Each due token is re-read from storage (never
the cache, DESIGN §7): a renewed one is rescheduled; an expired one is first marked used up
by a guarded write (`num_uses = -1`: every lookup fails from then on; a renewal racing with
us either commits first — then we see the new expiry — or keeps the mark, and a marked token
is revoked whatever its expiry says), then revoked the way `TokenStore.revoke` always does
(leaves first, fenced deletes, the entry itself last, so an interrupted revoke is redone). A
storage error ends the tick (logged); the token is retried at the next one.

The first scan over a token store that has no `lease-index` marker also gives every leased
token stored before the lease index existed its index entry (transit/tokens/leases.py,
guarded writes), and writes the marker once the scan has seen every token.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable

from transit.errors import TransitError
from transit.storage.base import Write
from transit.storage.update import update
from transit.tokens import leases
from transit.tokens.entry import TokenEntry
from transit.tokens.store import TokenStore

log = logging.getLogger("transit.tokens.expiration")

INTERVAL = 1.0  # seconds between ticks while idle
BATCH = 200  # expired tokens revoked (and changed tokens re-read) per tick at most
SCAN_BATCH = 500  # stored entries read per step of a full scan
MAX_RECHECK = 50_000  # pending re-reads beyond which a full scan is cheaper to keep


class ExpirationManager:
    """Schedules and revokes expiring tokens of one `TokenStore` (see the module docstring)."""

    def __init__(
        self, store: TokenStore, *, interval: float = INTERVAL, batch: int = BATCH,
        scan_batch: int = SCAN_BATCH, max_recheck: int = MAX_RECHECK,
    ) -> None:
        self.store = store
        self.interval = interval
        self.batch = batch
        self.scan_batch = scan_batch
        self.max_recheck = max_recheck
        self.running = False  # True while this process is the node's active one
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._recheck: set[str] = set()
        self._rescan = False  # a full scan is wanted
        self._scan: list[str] | None = None  # the scan in progress: hashes left, next last
        self._backfill = False  # the scan in progress also backfills the lease index
        store.expiry = self

    # --- what the token store tells us ----------------------------------------------

    def scheduled(self, token_hash: str, expire_time: float) -> None:
        if self.running:
            self._schedule(token_hash, expire_time)

    def changed(self, token_hash: str | None) -> None:
        if not self.running:
            return
        if token_hash is None or len(self._recheck) >= self.max_recheck:
            self._rescan = True
            self._recheck.clear()
        elif not self._rescan:
            self._recheck.add(token_hash)

    def forget(self, token_hash: str) -> None:
        self._due.pop(token_hash, None)  # its heap item is skipped when it comes up

    def _schedule(self, token_hash: str, expire_time: float) -> None:
        if not expire_time:
            self._due.pop(token_hash, None)
            return
        if self._due.get(token_hash) == expire_time:
            return
        self._due[token_hash] = expire_time
        heapq.heappush(self._heap, (expire_time, token_hash))
        if len(self._heap) > 2 * len(self._due) + 1024:  # mostly superseded items: compact
            self._heap = [(t, h) for h, t in self._due.items()]
            heapq.heapify(self._heap)

    @property
    def pending(self) -> int:
        """Tokens scheduled to expire (for tests and diagnostics)."""
        return len(self._due)

    # --- the loop --------------------------------------------------------------------

    def start(self) -> None:
        """This process became the node's active one: build the schedule from storage."""
        self.running = True
        self._rescan = True

    def stop(self) -> None:
        """Not active any more: forget the schedule (a standby keeps none)."""
        self.running = False
        self._heap, self._due, self._recheck = [], {}, set()
        self._rescan, self._scan, self._backfill = False, None, False

    async def run(self, active: Callable[[], bool]) -> None:
        """Tick forever; work only while `active()` (this node is the unsealed active one)."""
        while True:
            busy = False
            try:
                if active():
                    if not self.running:
                        self.start()
                    busy = await self.tick()
                elif self.running:
                    self.stop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage trouble, fenced, ...: the next tick retries
                log.warning("token expiration: %s; retrying in %gs", _reason(exc), self.interval)
            await asyncio.sleep(0.001 if busy else self.interval)

    async def tick(self) -> bool:
        """One bounded round: a scan step, re-reads, expired tokens. True if work is left."""
        if self._scan is None and self._rescan:
            self._backfill = await self.store.storage.get(leases.INDEXED_MARKER) is None
            listed = await self.store.storage.list("id/")
            self._rescan = False
            self._scan = [h.rstrip("/") for h in reversed(listed)]  # popped from the end
            log.debug("token expiration: scanning %d stored tokens", len(self._scan))
        if self._scan is not None:
            await self._scan_step()
        await self._recheck_step()
        left = await self._expire_due()
        return bool(self._scan or self._rescan or self._recheck or left)

    async def _scan_step(self) -> None:
        scan = self._scan
        assert scan is not None
        for _ in range(min(self.scan_batch, len(scan))):
            token_hash = scan[-1]
            await self._reread(token_hash)
            if self._backfill:
                await leases.ensure_indexed(self.store, token_hash)
            scan.pop()
        if not scan:
            if self._backfill:
                await self.store.storage.put(leases.INDEXED_MARKER, b"1")
                self._backfill = False
            self._scan = None
            log.debug("token expiration: scan done, %d tokens scheduled", len(self._due))

    async def _recheck_step(self) -> None:
        for _ in range(min(self.batch, len(self._recheck))):
            token_hash = self._recheck.pop()
            try:
                await self._reread(token_hash)
            except BaseException:
                self._recheck.add(token_hash)
                raise

    async def _reread(self, token_hash: str) -> None:
        before = self._due.get(token_hash)
        raw = await self.store.storage.get("id/" + token_hash)
        if self._due.get(token_hash) != before:
            return  # this process rescheduled it meanwhile: that is newer than our read
        if raw is None:
            self.forget(token_hash)
        else:
            self._schedule(token_hash, TokenEntry.from_json(raw).expire_time)

    async def _expire_due(self) -> bool:
        """Revoke up to `batch` due tokens; True if more are due already."""
        now = self.store.clock()
        done = 0
        while self._heap and self._heap[0][0] <= now:  # (`_schedule` may replace the list)
            if done >= self.batch:
                return True
            expire_time, token_hash = heapq.heappop(self._heap)
            if self._due.get(token_hash) != expire_time:
                continue  # superseded (renewed, rescheduled) or gone
            del self._due[token_hash]
            done += 1
            try:
                await self._expire(token_hash, now)
            except BaseException:
                self._schedule(token_hash, expire_time)  # again at the next tick
                raise
        return False

    async def _expire(self, token_hash: str, now: float) -> None:
        """Revoke one token (with its tree) if storage says it has expired."""
        key = "id/" + token_hash

        def mark(values: dict[str, bytes | None]) -> tuple[list[Write], TokenEntry | None]:
            raw = values[key]
            if raw is None:
                return [], None
            stored = TokenEntry.from_json(raw, hash=token_hash)
            if stored.num_uses < 0 or not _expired(stored, now):
                return [], stored  # already marked (or used up), or renewed meanwhile
            stored.num_uses = -1  # revocation pending: lookups fail from now on
            return [Write(key, stored.to_json())], stored

        stored = await update(self.store.storage, [key], mark)
        if stored is None:
            return
        if stored.num_uses >= 0:  # (not expired: a renewal committed before the mark)
            self._schedule(token_hash, stored.expire_time)
            return
        await self.store.revoke(stored)
        log.debug("revoked expired token (accessor %s) and its descendants",
                  stored.accessor or "-")


def _expired(entry: TokenEntry, now: float) -> bool:
    return bool(entry.expire_time) and entry.expire_time <= now


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, TransitError) and exc.message else repr(exc)
