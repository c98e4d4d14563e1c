"""Read-modify-write of stored entries, safe across worker processes and nodes (DESIGN §7).

    result = await update(storage, ["policy/k", "archive/k"], change)

reads every key from storage itself (`get_versioned`: the primary, never a replica or a
cache), calls `change(values)` — a dict key → bytes | None — which returns the writes to make
and a result, and commits them guarded on the versions it read. When another writer changed
one of the entries in between (`errors.Conflict`, nothing written), it reads again and calls
`change` again, with a short random back-off. `change` therefore must be a pure function of
the values it is given (it may raise to abort: nothing is written). Callers that also hold a
process-local lock per entry keep conflicts to the rare cross-process case. A writer that
loses `CLAIM_AFTER` races in a row claims the entry where the backend can (`Backend.claim`),
so that a process that is always a little late (another process rewrites the entry in a
tight loop) still gets its turn instead of giving up. A backend owned by this one process
(inmem, file) has no claims: there such a writer waits its turn on a process-local lock per
entry instead (`_Turns`), so that many tasks racing for one entry all get through.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from transit.errors import Conflict, TransitError
from transit.storage.base import ABSENT, Backend, Write

ATTEMPTS = 24
CLAIM_AFTER = 3  # lost races in a row before claiming the entry (`Backend.claim`)
CLAIM_TTL = 2.0  # seconds a claim holds if its writer dies


class _Turns:
    """Process-local turns per (storage object, key), for backends without claims: a writer
    that keeps losing queues here; only writers that lost as often contend with it then.
    Advisory like a claim (the guards keep the data right); an entry lives only while a
    writer holds or waits for it, so the table stays as small as the contention."""

    def __init__(self) -> None:
        self._locks: dict[tuple[int, str], tuple[asyncio.Lock, int]] = {}

    async def take(self, storage: object, key: str) -> asyncio.Lock:
        where = (id(storage), key)
        lock, users = self._locks.get(where) or (asyncio.Lock(), 0)
        self._locks[where] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._leave(where)
            raise
        return lock

    def give(self, storage: object, key: str, lock: asyncio.Lock) -> None:
        lock.release()
        self._leave((id(storage), key))

    def _leave(self, where: tuple[int, str]) -> None:
        lock, users = self._locks[where]
        if users <= 1:
            del self._locks[where]
        else:
            self._locks[where] = (lock, users - 1)


_turns = _Turns()


async def update(
    storage: Backend, keys: Sequence[str], change: Callable[..., Any], *,
    durable: bool = False, attempts: int = ATTEMPTS,
) -> Any:
    """Run `change` on the stored values of `keys` and commit its writes atomically, guarded
    on what was read; retry on `Conflict`. Returns what `change` returned as its result.

    Raises `Conflict` (503, nothing written) after `attempts` lost races."""
    claim = getattr(storage, "claim", None)
    many = getattr(storage, "get_versioned_many", None) if len(keys) > 1 else None
    token = ""
    turn: asyncio.Lock | None = None
    lost = 0  # races lost to a concurrent change (a claim by another writer does not count)
    deadline = time.monotonic() + 2 * CLAIM_TTL
    try:
        while True:
            if many is not None:
                snapshot = dict(zip(keys, await many(keys), strict=True))
            else:
                snapshot = {k: await storage.get_versioned(k) for k in keys}
            out = change({k: v.value for k, v in snapshot.items()})
            if inspect.isawaitable(out):
                out = await out
            writes, result = out
            if not writes:
                return result
            try:
                await storage.commit(
                    writes, {k: v.version for k, v in snapshot.items()}, durable=durable,
                    **({"claim": token} if token else {}),
                )
                return result
            except Conflict as exc:
                if exc.claimed:  # another writer's turn: it commits within a round trip
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.001)
                    continue
                lost += 1
                if lost >= attempts:
                    break
                if not token and claim is not None and lost >= CLAIM_AFTER:
                    token = await claim(keys[0], CLAIM_TTL) or ""
                elif claim is None and turn is None and lost >= CLAIM_AFTER:
                    turn = await _turns.take(storage, keys[0])
                    continue  # our turn: read again at once
                if not token:
                    await asyncio.sleep(random.uniform(0, 0.002 * min(lost, 5)))
    finally:
        if turn is not None:
            _turns.give(storage, keys[0], turn)
        if token:  # best effort: an unreleased claim expires after CLAIM_TTL anyway
            with contextlib.suppress(TransitError):
                await storage.release_claim(keys[0], token)  # type: ignore[attr-defined]
    raise Conflict(
        f"too many concurrent writes to {', '.join(keys)}; nothing was changed, retry"
    )


async def get_or_create(
    storage: Backend, key: str, make: Callable[[], bytes], *, durable: bool = False
) -> bytes:
    """The value at `key`, created with `make()` when missing — once: when several workers
    or nodes create it at the same time, one value wins and every caller gets that one (a
    salt or an HMAC key that two processes each made up would split the data between them)."""
    value = await storage.get(key)
    if value is not None:
        return value
    value = make()
    try:
        await storage.commit([Write(key, value)], {key: ABSENT}, durable=durable)
        return value
    except Conflict:
        stored = await storage.get_versioned(key)
        if stored.value is None:  # created and deleted again meanwhile: give up cleanly
            raise
        return stored.value
