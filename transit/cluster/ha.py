"""The HA election loop (spec §1.3, §1.5; DESIGN §4; contract §6.2).

    standby ──acquire──▶ fence = epoch ──▶ core.become_active(record) ──▶ active
       ▲                                                                    │
       └── fence closed, release, core.become_standby() ◀── lost / overdue / step-down / seal

The lock is held by an *owner*, `<node id>@<instance>` (transit/cluster/identity.py): one
running server, shared only by the worker processes of one node. Two processes started with
the same node id are two owners, so at most one of them is active and the other forwards to it
(the advertisement `core/leader/<node id>` carries the owner, so a record left by a previous
holder of the same node id is never taken for the current one).

A standby tries the lock every `retry` seconds. When the lock is held by an owner whose Redis
connections are all gone (`holder_gone`: that process crashed or was killed), it deletes that
holder's lock value (`break_lock`, a compare-and-delete that first checks the holder is gone)
and takes the lock at once instead of waiting out the TTL; fencing makes that safe. It never
deletes the lock of a live process, whatever its node id; its own stale lock (a term of this
server it left without releasing, e.g. before worker 0 was restarted) it releases at once.

Epochs only move forward: the controller remembers the highest epoch it has seen (its own
terms, every lock holder it read, the stored counter while a standby) and asks for a higher
one (`acquire_lock(owner, min_epoch)`), so a failover to a Redis replica that missed some
INCRs does not hand out an epoch again.

`HAController` is assembled from three modules: this one holds its construction, its
lifecycle (`start`, `stop`, `step_down`, `release`) and the election loop; one term as active
(activation, renewal, the watchdog, the per-request `serving` gate, leaving) is
`ActiveTerm` (transit/cluster/activeterm.py); the standby's view of the leader (`leader()`,
for forwarding) is `LeaderView` (transit/cluster/leaderview.py).

The controller talks to the core only through `become_active(record)`, `become_standby()`
and `sealed`, and to the backend only through the §6.1 lock methods and `fence`. Every
`become_active` is paired with exactly one `become_standby`, even when activation failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from transit.cluster.activeterm import ActiveTerm, Reason, State
from transit.cluster.advert import LeaderRecord
from transit.cluster.identity import node_of
from transit.cluster.leaderview import LeaderView
from transit.cluster.ports import RoleNode
from transit.errors import TransitError

log = logging.getLogger("transit.cluster.ha")


class HAController(LeaderView, ActiveTerm):
    def __init__(
        self, core: RoleNode, backend: Any, node_id: str, api_addr: str, cluster_addr: str,
        lock_ttl: float | None = None, *, retry: float = 1.0, renew_interval: float | None = None,
        margin: float | None = None, cooldown: float = 10.0, leader_refresh: float = 2.5,
        clock: Callable[[], float] = time.monotonic, owner: str | None = None,
    ) -> None:
        backend_ttl = getattr(backend, "lock_ttl", None)
        if lock_ttl is None:
            lock_ttl = float(backend_ttl) if backend_ttl else 10.0
        elif backend_ttl and abs(float(backend_ttl) - lock_ttl) > 1e-9:
            log.warning("HA lock_ttl %.3fs differs from the backend's %.3fs", lock_ttl,
                        backend_ttl)
        if lock_ttl <= 0:
            raise ValueError("lock_ttl must be positive")
        self.core = core
        self.backend = backend
        self.owner = lock_owner(backend, node_id, owner)
        self.node_id = node_of(self.owner)  # what users see; the lock compares owners
        self.api_addr = api_addr
        self.cluster_addr = cluster_addr
        self.lock_ttl = lock_ttl
        self.retry = retry
        self.renew_interval = renew_interval if renew_interval is not None else lock_ttl / 3
        self.margin = margin if margin is not None else lock_ttl / 4
        self.cooldown = cooldown
        self.leader_refresh = leader_refresh
        self._clock = clock

        self.state: State = "standby"
        self.active_since: dt.datetime | None = None
        self.epoch: int | None = None
        self.max_epoch = 0  # the highest epoch seen: the next acquisition asks for more
        # why and when the last term ended: (reason, seconds since its last successful renew)
        self.last_leave: tuple[str, float] | None = None
        self._record: LeaderRecord | None = None
        self._last_renew = 0.0
        # Until when (monotonic) this node may act as active: last renew + ttl − margin while
        # a term is on; -inf otherwise, and at once on a fence error or a refused renew.
        self._serve_until = float("-inf")
        self._cooldown_until = 0.0
        self._hold_off_until = 0.0  # after release(): don't compete until sealed (or this)
        self._request: Reason | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set whenever no term is in progress
        self._idle.set()
        # set while this process is taking the active role (held the lock, loading state)
        self._activating: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        # standby's view of the leader
        self._holder: tuple[str, int] | None = None
        self._holder_at = float("-inf")
        self._leader_key: tuple[str, int] | None = None
        self._leader: LeaderRecord | None = None

    # -- public surface ----------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        return self.state == "active"

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._request = None
            self._task = asyncio.create_task(self._run(), name=f"ha-{self.node_id}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Leave active duty (become_standby, release the lock) and end the loop."""
        task = self._task
        if task is None:
            return
        self._signal("stop")
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.error("HA loop did not stop in %.1fs; cancelling it", timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None

    async def step_down(self, *, wait: bool = True) -> None:
        """`sys/step-down`: give up the lock and sit out `cooldown` seconds. With `wait`,
        return once this node is a standby; a request handler whose own request would be
        drained by `become_standby` must pass `wait=False`."""
        if not self.is_active:
            return
        self._signal("step-down")
        if wait:
            await self._idle.wait()

    async def release(self, *, wait: bool = True) -> None:
        """On seal: leave active duty, release the lock, and don't compete again until the
        core has been sealed and unsealed (or `cooldown` passed without a seal)."""
        self._hold_off_until = self._clock() + self.cooldown
        if not self.is_active and self._idle.is_set():
            return
        self._signal("release")
        if wait:
            await self._idle.wait()

    # -- the loop ----------------------------------------------------------------------------
    def _signal(self, reason: Reason) -> None:
        if self._request != "stop":
            self._request = reason
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early for stop/step-down/release signals."""
        if seconds <= 0 or self._request == "stop":
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _run(self) -> None:
        while self._request != "stop":
            self._wake.clear()
            if self._request in ("step-down", "release"):
                self._request = None  # nothing to leave: we are not active
            try:
                now = self._clock()
                if now < self._cooldown_until:
                    await self._sleep(self._cooldown_until - now)
                    continue
                if self.core.sealed:
                    self._hold_off_until = 0.0
                    await self._sleep(self.retry)
                    continue
                if now < self._hold_off_until:
                    await self._sleep(min(self.retry, self._hold_off_until - now))
                    continue
                got = await self._try_acquire()
                if got is None:
                    await self._sleep(self.retry)
                    continue
                if (self._request in ("stop", "release") or self.core.sealed
                        or self._clock() < self._hold_off_until):
                    await self.backend.release_lock(self.owner, got[0])  # changed our mind
                    continue
                await self._term(*got)
                if self.last_leave is not None and self.last_leave[0] == "failed":
                    await self._sleep(self.retry)  # e.g. the cluster port is taken: don't spin
            except asyncio.CancelledError:
                raise
            except TransitError as exc:  # storage unreachable and the like
                log.warning("HA loop: %s; retrying in %.1fs", exc, self.retry)
                await self._sleep(self.retry)
            except Exception:
                log.exception("HA loop error; retrying in %.1fs", self.retry)
                await self._sleep(self.retry)

    async def _try_acquire(self) -> tuple[int, float] | None:
        """(epoch, monotonic time the acquiring request was sent), or None."""
        started = self._clock()
        epoch = await self._acquire()
        if epoch is not None:
            return epoch, started
        holder = await self._refresh_holder()
        await self._read_stored_epoch()
        if holder is None:
            return None
        owner, held_epoch = holder
        if owner == self.owner:
            # Our own stale lock (a term of this server we left without releasing it, or
            # worker 0 restarted by the supervisor): nobody else can take it before it
            # expires, so drop it now.
            log.info("releasing our own stale lock (epoch %d)", held_epoch)
            await self.backend.release_lock(self.owner, held_epoch)  # compare-and-delete
        elif not await self._break(owner, held_epoch):
            await self._leader_for(holder)  # warm the advertisement cache for forwarding
            return None
        else:
            log.warning("lock holder %s (epoch %d) has no Redis connection; taking over",
                        owner, held_epoch)
        started = self._clock()
        epoch = await self._acquire()
        return None if epoch is None else (epoch, started)

    async def _acquire(self) -> int | None:
        epoch = await self.backend.acquire_lock(self.owner, self.max_epoch)
        if epoch is not None:
            self._saw_epoch(epoch)
        return epoch

    async def _break(self, owner: str, epoch: int) -> bool:
        """Delete the lock of `owner` (another process) if, and only if, it is gone."""
        breaker = getattr(self.backend, "break_lock", None)
        if breaker is not None:
            return bool(await breaker(owner, epoch))
        if not await self.backend.holder_gone(owner):
            return False
        await self.backend.release_lock(owner, epoch)
        return True

    def _saw_epoch(self, epoch: int) -> None:
        self.max_epoch = max(self.max_epoch, int(epoch))

    async def _read_stored_epoch(self) -> None:
        """Remember the stored epoch counter too (standbys, once per retry): a later failover
        to a replica that missed some INCRs must not hand out these epochs again."""
        read = getattr(self.backend, "stored_epoch", None)
        if read is None:
            return
        try:
            self._saw_epoch(await read())
        except Exception as exc:  # only a hint: never let it stop an election
            log.debug("cannot read the stored epoch: %s", exc)


def lock_owner(backend: Any, node_id: str, owner: str | None = None) -> str:
    """The owner a controller for `node_id` holds the lock as: `owner` when given, else the
    backend's identity when it belongs to `node_id` (the server sets it to
    `<node id>@<instance>` before HA starts), else `node_id` itself."""
    if owner:
        return owner
    ident = getattr(backend, "owner", None)
    if isinstance(ident, str) and ident and node_of(ident) == node_id:
        return ident
    return node_id
