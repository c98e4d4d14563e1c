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

The active renews every `renew_interval` (ttl/3) from a keep-alive task. A watchdog steps down
as soon as the last successful renew (monotonic, timed from *before* the request was sent)
is older than ttl − margin (margin = ttl/4): the fence is closed first, so this node stops
acknowledging writes before the lock can expire in Redis. A paused process cannot do even
that; then its writes carry a stale epoch and the backend refuses them (`errors.Fenced`).

Serving as active needs a fresh lock, checked per request (`serving`: one monotonic-clock
comparison against `_serve_until` = last successful renew + ttl − margin): a process resumed
after a pause longer than that answers nothing as active, not even encrypt from its caches,
whatever order its event loop runs the queued requests and the watchdog in. A fence error
(`deposed()`, from the core) or a refused renew ends serving at once the same way and wakes
the watchdog, which then leaves the term.

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
from typing import Any, Literal

from transit import metrics
from transit.cluster.advert import LeaderRecord, leader_key
from transit.cluster.identity import node_of
from transit.cluster.ports import RoleNode
from transit.errors import TransitError

# An epoch no lock value can carry: writes of a node in this state are refused by Redis.
FENCE_CLOSED = -1
# How long a request that arrives while this process is taking the active role waits for it
ACTIVATION_WAIT = 10.0

log = logging.getLogger("transit.cluster.ha")
# telemetry keys (transit/metrics.py): lock renewals by outcome
_RENEW_OK = ("vault.ha.lock_renewals", "ok")
_RENEW_REFUSED = ("vault.ha.lock_renewals", "refused")
_RENEW_ERROR = ("vault.ha.lock_renewals", "error")
_RENEW_TIMEOUT = ("vault.ha.lock_renewals", "timeout")

State = Literal["standby", "active"]
_Reason = Literal["lost", "overdue", "step-down", "release", "stop", "ready", "failed"]


class HAController:
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
        self._request: _Reason | None = None
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

    @property
    def activating(self) -> bool:
        """Whether this process holds the role's lock and is still loading the active state."""
        return self._activating is not None

    async def activated(self, timeout: float = ACTIVATION_WAIT) -> None:
        """Wait (at most `timeout`) while this process is taking the active role.

        A request that arrives mid-activation is served once the node is active rather than
        refused with "no active Vault instance found" (Vault holds it on its state lock).
        """
        event = self._activating
        if event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)

    def _activation_began(self) -> None:
        self._activating = asyncio.Event()

    def _activation_ended(self) -> None:
        event, self._activating = self._activating, None
        if event is not None:
            event.set()

    @property
    def serving(self) -> bool:
        """Whether this node may answer as the active node right now (hot path: one clock
        read, one comparison): active, and its lock confirmed within ttl − margin."""
        return self.state == "active" and self._clock() < self._serve_until

    def deposed(self, why: str = "fenced") -> None:
        """This node no longer holds the lock (a write was fenced, or a request found the
        lock unconfirmed for too long): stop serving as active now, and leave the term."""
        if self._serve_until != float("-inf"):
            log.warning("no longer the active node (%s); refusing active work from now on", why)
        self._serve_until = float("-inf")
        if not self._idle.is_set():  # a term is on: its watchdog leaves it
            self._signal_lost()

    @property
    def renew_age(self) -> float:
        """Seconds since the last successful renew started (monotonic)."""
        return self._clock() - self._last_renew

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

    async def leader(self) -> LeaderRecord | None:
        """The active node's advertisement: ours when active; else `core/leader/<holder>`
        read through the barrier, cached until the lock holder changes."""
        if self.is_active:
            return self._record
        if self._clock() - self._holder_at > self.leader_refresh:
            try:
                await self._refresh_holder()
            except Exception as exc:
                log.warning("cannot read the HA lock holder: %s", exc)
                return self._leader if self._leader_key == self._holder else None
        return await self._leader_for(self._holder)

    async def await_leader(self, timeout: float = ACTIVATION_WAIT) -> LeaderRecord | None:
        """The leader read afresh; while the lock is held by a node that has not advertised
        itself yet (it is still activating), wait for it, at most `timeout` seconds. Returns
        None when there is no holder, at the deadline, or once this process is active."""
        deadline = time.monotonic() + timeout
        while True:
            leader = await self.refresh_leader()
            if (leader is not None or self.is_active or self._holder is None
                    or time.monotonic() >= deadline):
                return None if self.is_active else leader
            await asyncio.sleep(0.05)

    def forget_leader(self) -> None:
        """Drop the cached advertisement (forwarding to it failed: e.g. an old term's cert)."""
        self._leader_key = None

    async def refresh_leader(self) -> LeaderRecord | None:
        """Re-read the lock holder and its advertisement now (forwarding to the cached
        leader just failed, or none was known): a new term may have begun moments ago."""
        self._holder_at = float("-inf")
        self._leader_key = None
        return await self.leader()

    # -- the loop ----------------------------------------------------------------------------
    def _signal(self, reason: _Reason) -> None:
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

    async def _term(self, epoch: int, acquired_at: float) -> None:
        """One term as active, from a fresh lock to its release."""
        self._idle.clear()
        self.epoch = epoch
        self._last_renew = acquired_at
        self._serve_until = acquired_at + self.lock_ttl - self.margin
        self.backend.fence = epoch
        record = LeaderRecord.create(self.node_id, self.api_addr, self.cluster_addr,
                                     owner=self.owner, epoch=epoch)
        log.info("acquired the HA lock (epoch %d); becoming active", epoch)
        self._activation_began()
        self._keepalive_task = asyncio.create_task(self._keepalive(epoch),
                                                   name=f"ha-renew-{self.node_id}")
        activation = asyncio.create_task(self.core.become_active(record))
        reason: _Reason = "failed"
        try:
            reason = await self._watch(activation)
            if reason == "ready":
                if activation.cancelled() or activation.exception() is not None:
                    exc = None if activation.cancelled() else activation.exception()
                    log.error("becoming active failed: %r", exc, exc_info=exc)
                    reason = "failed"
                else:
                    self._record = record
                    self.state = "active"
                    self.active_since = dt.datetime.now(dt.UTC)
                    log.info("active (epoch %d)", epoch)
                    self._activation_ended()
                    reason = await self._watch(None)
        finally:
            self._activation_ended()
            await self._leave(epoch, reason, activation)

    async def _watch(self, activation: asyncio.Task[None] | None) -> _Reason:
        """Wait for activation to finish (if given), a signal, lock loss, or the deadline."""
        while True:
            if self._request is not None:
                return self._request
            remaining = self._last_renew + self.lock_ttl - self.margin - self._clock()
            if remaining <= 0:
                return "overdue"
            waiter = asyncio.ensure_future(self._wake.wait())
            waits: set[asyncio.Future[Any]] = {waiter}
            if activation is not None:
                waits.add(activation)
            try:
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            self._wake.clear()
            if activation is not None and activation.done() and self._request is None:
                return "ready"

    async def _leave(self, epoch: int, reason: _Reason,
                     activation: asyncio.Task[None]) -> None:
        """Stop acknowledging writes first, release the lock, then tear down.

        The fence is closed (an epoch no lock can hold), not cleared: a write still in
        flight in this process is refused by Redis itself. That makes it safe to release the
        lock before the (possibly slow) teardown, so another node takes over at once."""
        self.backend.fence = FENCE_CLOSED
        self._serve_until = float("-inf")
        self.state = "standby"
        self.last_leave = (reason, self.renew_age)
        if reason in ("lost", "overdue"):
            log.warning("lost the HA lock (%s, last renew %.2fs ago); stepping down",
                        reason, self.renew_age)
        else:
            log.info("leaving active duty (%s)", reason)
        keepalive, self._keepalive_task = self._keepalive_task, None
        if keepalive is not None:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keepalive
        try:
            await asyncio.wait_for(self.backend.release_lock(self.owner, epoch),
                               max(self.retry, 1.0))
        except Exception as exc:
            log.warning("releasing the HA lock failed (it will expire): %s", exc)
        if not activation.done():
            # Its writes now fail (fence closed here, stale epoch in Redis); let it finish.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await activation
        try:
            await self.core.become_standby()
        except Exception:
            log.exception("core.become_standby failed")
        if reason == "step-down":
            self._cooldown_until = self._clock() + self.cooldown
        if self._request != "stop":
            self._request = None  # this term's signal is handled; standby ignores the rest
        self._record = None
        self.active_since = None
        self.epoch = None
        self._holder_at = float("-inf")
        self._idle.set()

    async def _keepalive(self, epoch: int) -> None:
        """Renew every `renew_interval`; report a refused renew as "lost"."""
        next_at = self._last_renew + self.renew_interval
        while True:
            await asyncio.sleep(max(0.0, next_at - self._clock()))
            sent = self._clock()
            deadline = self._last_renew + self.lock_ttl - self.margin
            try:
                ok = await asyncio.wait_for(self.backend.renew_lock(self.owner, epoch),
                                            max(0.001, deadline - sent))
            except TimeoutError:
                metrics.incr(_RENEW_TIMEOUT)
                return  # past ttl − margin: the watchdog steps down
            except Exception as exc:
                metrics.incr(_RENEW_ERROR)
                log.warning("renewing the HA lock failed: %s", exc)
                next_at = sent + min(self.retry, self.renew_interval)
                continue
            metrics.incr(_RENEW_OK if ok else _RENEW_REFUSED)
            if not ok:
                self._serve_until = float("-inf")
                self._signal_lost()
                return
            self._last_renew = max(self._last_renew, sent)
            if self._serve_until != float("-inf"):  # not deposed meanwhile
                self._serve_until = self._last_renew + self.lock_ttl - self.margin
            next_at = sent + self.renew_interval

    def _signal_lost(self) -> None:
        self._serve_until = float("-inf")
        if self._request is None:
            self._request = "lost"
        self._wake.set()

    # -- standby's view of the leader ----------------------------------------------------------
    async def _refresh_holder(self) -> tuple[str, int] | None:
        self._holder = await self.backend.lock_holder()
        self._holder_at = self._clock()
        if self._holder is not None:
            self._saw_epoch(self._holder[1])
        return self._holder

    async def _leader_for(self, holder: tuple[str, int] | None) -> LeaderRecord | None:
        if holder is None or holder[0] == self.owner:
            return None  # no holder, or our own stale lock: no active node right now
        if holder == self._leader_key:
            return self._leader
        node = node_of(holder[0])
        try:  # from the primary: a lagging replica may still hold an earlier term's record
            raw = (await self.core.barrier.get_versioned(leader_key(node))).value
        except Exception as exc:
            log.warning("cannot read the advertisement of %s: %s", node, exc)
            return None
        if raw is None:
            return None  # not advertised yet: read again next time
        try:
            record = LeaderRecord.from_json(raw)
        except ValueError as exc:
            log.warning("bad advertisement of %s: %s", node, exc)
            return None
        if not record.advertises(holder[0]) or record.epoch not in (0, holder[1]):
            # A previous holder's record under the same node id (possibly our own), or the
            # holder's record of an earlier term: the holder has not advertised this term
            # yet. Read again next time.
            return None
        self._leader_key, self._leader = holder, record
        return record


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
