"""One term of the HA controller as the active node (DESIGN §4; transit/cluster/ha.py).

`ActiveTerm` holds everything between a fresh lock and its release: taking the active role
(`core.become_active(record)`, while requests wait on `activated`), the keep-alive that renews
the lock, the watchdog that leaves the term, the per-request `serving` gate and `deposed()`.
It is a mixin of `HAController` (transit/cluster/ha.py), which constructs the state declared
below and runs the election loop that starts each term (`_term`); it is kept apart so the
controller's module holds only the election.

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

Every `become_active` is paired with exactly one `become_standby`, even when activation failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, Literal

from transit import metrics
from transit.cluster.advert import LeaderRecord
from transit.cluster.ports import RoleNode

# An epoch no lock value can carry: writes of a node in this state are refused by Redis.
FENCE_CLOSED = -1
# How long a request that arrives while this process is taking the active role waits for it
ACTIVATION_WAIT = 10.0

# the controller's logger: a term's lines belong to the HA module (`cluster.ha`) in the logs
log = logging.getLogger("transit.cluster.ha")
# telemetry keys (transit/metrics.py): lock renewals by outcome
_RENEW_OK = ("vault.ha.lock_renewals", "ok")
_RENEW_REFUSED = ("vault.ha.lock_renewals", "refused")
_RENEW_ERROR = ("vault.ha.lock_renewals", "error")
_RENEW_TIMEOUT = ("vault.ha.lock_renewals", "timeout")

State = Literal["standby", "active"]
Reason = Literal["lost", "overdue", "step-down", "release", "stop", "ready", "failed"]


class ActiveTerm:
    """One term as active: activation, keep-alive, watchdog, serving gate (module docstring)."""

    # constructed by HAController.__init__ (transit/cluster/ha.py)
    core: RoleNode
    backend: Any
    owner: str
    node_id: str
    api_addr: str
    cluster_addr: str
    lock_ttl: float
    retry: float
    renew_interval: float
    margin: float
    cooldown: float
    state: State
    active_since: dt.datetime | None
    epoch: int | None
    last_leave: tuple[str, float] | None
    _clock: Callable[[], float]
    _record: LeaderRecord | None
    _last_renew: float
    _serve_until: float
    _cooldown_until: float
    _request: Reason | None
    _wake: asyncio.Event
    _idle: asyncio.Event
    _activating: asyncio.Event | None
    _keepalive_task: asyncio.Task[None] | None
    _holder_at: float

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
        reason: Reason = "failed"
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

    async def _watch(self, activation: asyncio.Task[None] | None) -> Reason:
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

    async def _leave(self, epoch: int, reason: Reason,
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
