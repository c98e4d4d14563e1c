"""The role of a node's sibling worker processes (transit/workers.py, DESIGN §6).

A node runs several worker processes that share one node id and one lock *owner*
(`<node id>@<instance>`, made by the supervisor once per start: transit/cluster/identity.py).
Worker 0 runs the `HAController` (election, renewal, advertisement, cluster listener). Every
other worker runs a `RoleFollower`: it never acquires anything, it only watches the lock
(`backend.lock_holder()`, every `poll` seconds) and takes the role worker 0 won:

- lock holds `<our owner>:<epoch>` → `backend.fence = epoch`, `core.become_active(None)` (the
  active role without advertisement or cluster listener; it may report `NotReady` while worker 0
  is still creating what a first activation creates, and is then retried at the next poll);
- anything else (no holder, another node — including another server started with our node
  id, whose owner differs —, or no confirmation for longer than the lock could
  still be ours: `lock_ttl - margin`, e.g. Redis errors or a paused process) → the fence is
  closed (`FENCE_CLOSED`: Redis refuses every write), `core.become_standby()`.

A follower serves as active only until the lock it last saw ours expires, minus `margin` (the
holder and its remaining TTL are read together: worker 0 may have renewed it long before the
follower looked, or be gone) — `serving`, checked per request; `_serve_until` —, and a fence error (`deposed()`) ends that at
once and leaves the role. Writes stay safe whatever this view lags: each one is a Lua script that checks the lock still
holds `<owner>:<fence>`. The standby's view of the leader (`leader()`, for forwarding) is the
HAController's own, reading `core/leader/<holder>`; this class reuses it and feeds it the holder
it polls. `step_down()` is asked of worker 0 through `relay` (the supervisor's pipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from transit.cluster.activeterm import ACTIVATION_WAIT, FENCE_CLOSED
from transit.cluster.advert import LeaderRecord, leader_key
from transit.cluster.ha import HAController
from transit.cluster.ports import RoleNode

log = logging.getLogger("transit.cluster.follower")

Relay = Callable[[str, dict[str, Any]], Awaitable[None]]


class NotReady(Exception):
    """The active role cannot be taken yet (worker 0 has not finished its activation)."""


class RoleFollower(HAController):
    """Follow the lock worker 0 of this node holds; see the module docstring."""

    def __init__(
        self, core: RoleNode, backend: Any, node_id: str, api_addr: str, cluster_addr: str,
        lock_ttl: float | None = None, *, poll: float = 0.25, relay: Relay | None = None,
        clock: Callable[[], float] = time.monotonic, owner: str | None = None,
    ) -> None:
        super().__init__(core, backend, node_id, api_addr, cluster_addr, lock_ttl, clock=clock,
                         leader_refresh=poll, owner=owner)
        self.poll = poll
        self.relay = relay
        self._last_seen = float("-inf")  # when the lock was last seen holding our epoch
        # what the lock had left then (its real expiry: worker 0 may have renewed it long
        # before we looked, or may be gone)
        self._lock_left = self.lock_ttl
        self._leaving: asyncio.Task[None] | None = None

    def deposed(self, why: str = "fenced") -> None:
        """A write was fenced (or the lock went unconfirmed too long): stop serving as active
        now and leave the role in the background (the next poll takes it again if ours)."""
        if self._serve_until != float("-inf"):
            log.warning("worker no longer serves the active role (%s)", why)
        self._serve_until = float("-inf")
        if self.is_active and (self._leaving is None or self._leaving.done()):
            self._leaving = asyncio.ensure_future(self._leave_if_active(why))

    async def _leave_if_active(self, why: str) -> None:
        if self.is_active:
            await self._deactivate(why)

    # -- public surface (HAController's) ---------------------------------------------------------
    @property
    def activating(self) -> bool:
        """Worker 0 of this node holds the lock (lately confirmed) and this process has not
        taken the role yet: the node is, or is about to be, active. A request arriving now
        waits for this process to follow (`activated`) instead of answering as a standby —
        sys/health and sys/leader included: they describe the node."""
        holder = self._holder
        return (holder is not None and holder[0] == self.owner and not self.is_active
                and not self.core.sealed and self._clock() - self._holder_at < 4 * self.poll)

    async def activated(self, timeout: float = ACTIVATION_WAIT) -> None:
        deadline = time.monotonic() + timeout
        while self.activating and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def start(self) -> None:
        if not self.is_active:
            self.backend.fence = FENCE_CLOSED  # a standby never writes
        if self._task is None or self._task.done():
            self._request = None
            self._task = asyncio.create_task(self._run(), name=f"ha-follow-{self.node_id}")

    async def stop(self, timeout: float = 10.0) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout)
        if self.is_active:
            await self._deactivate("stop")

    async def step_down(self, *, wait: bool = True) -> None:
        """Worker 0 holds the lock: ask it (the role change reaches us through the lock)."""
        if self.relay is not None and self.is_active:
            await self.relay("step-down", {})

    async def release(self, *, wait: bool = True) -> None:
        if self.relay is not None and self.is_active:
            await self.relay("step-down", {})

    # -- the loop ----------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("role follower: unexpected error")
            await asyncio.sleep(self.poll)

    async def check(self) -> None:
        """One poll: read the lock and take the role it says this node has."""
        if self.core.sealed:
            if self.is_active:
                await self._deactivate("sealed")
            return
        if self.is_active and self._clock() - self._last_seen > self.lock_ttl - self.margin:
            # Not confirmed for longer than the lock could still be ours (a failing Redis, or
            # this process was paused): leave before anything else runs, like worker 0's
            # watchdog does; the next poll takes the role again if it is still ours.
            log.warning("the HA lock was last confirmed %.2fs ago; leaving the active role",
                        self._clock() - self._last_seen)
            await self._deactivate("overdue")
        sent = self._clock()
        try:
            holder = await self._refresh_holder()
        except Exception as exc:
            log.debug("cannot read the HA lock: %s", exc)
            return
        ours = holder is not None and holder[0] == self.owner
        if ours:
            assert holder is not None
            self._last_seen = sent
            if self.is_active and self.epoch == holder[1]:
                self._serve_until = sent + self._lock_left - self.margin
            if self.is_active:
                if self.epoch != holder[1]:
                    # Worker 0 started a new term (e.g. it was restarted). Our caches stayed
                    # current through the invalidation feed, so only the fence changes.
                    self.epoch = self.backend.fence = holder[1]
                    self._serve_until = sent + self._lock_left - self.margin
                    log.info("worker follows the active role into epoch %d", holder[1])
                return
            if await self._leader_for(holder) is None:
                return  # worker 0 is still activating this term: follow once it has
            await self._activate(holder[1])
        elif self.is_active:
            await self._deactivate("lost")

    async def _refresh_holder(self) -> tuple[str, int] | None:
        """The holder, with the time its lock has left when the backend can tell."""
        read = getattr(self.backend, "lock_holder_ttl", None)
        if read is None:
            self._lock_left = self.lock_ttl
            return await super()._refresh_holder()
        holder, left = await read()
        self._lock_left = min(self.lock_ttl, left)
        self._holder = holder
        self._holder_at = self._clock()
        if holder is not None:
            self._saw_epoch(holder[1])
        return holder

    async def _leader_for(self, holder: tuple[str, int] | None) -> LeaderRecord | None:
        """While worker 0 holds the lock and we are not active yet, forward to it (its
        advertisement may be mid-rewrite: read it, don't cache it)."""
        if holder is None or holder[0] != self.owner:
            return await super()._leader_for(holder)
        try:
            raw = (await self.core.barrier.get_versioned(leader_key(self.node_id))).value
            record = None if raw is None else LeaderRecord.from_json(raw)
        except Exception as exc:
            log.debug("cannot read our own advertisement: %s", exc)
            return None
        # not yet rewritten by worker 0 for this term: another holder's record under our
        # node id, or ours of an earlier term
        if record is None or not record.advertises(self.owner) or record.epoch != holder[1]:
            return None
        return record

    async def _activate(self, epoch: int) -> None:
        self.backend.fence = epoch
        try:
            await self.core.become_active(None)
        except NotReady as exc:
            log.debug("not taking the active role yet: %s", exc)
            self.backend.fence = FENCE_CLOSED
            await self._standby_again()
            return
        except Exception:
            log.exception("taking the active role (epoch %d) failed", epoch)
            self.backend.fence = FENCE_CLOSED
            await self._standby_again()
            return
        self.epoch = epoch
        self._record = LeaderRecord(self.node_id, self.api_addr, self.cluster_addr, "", "",
                                    self.owner)
        self._serve_until = self._last_seen + self._lock_left - self.margin
        self.state = "active"
        self.active_since = dt.datetime.now(dt.UTC)
        log.info("worker follows the active role (epoch %d)", epoch)

    async def _deactivate(self, reason: str) -> None:
        self.backend.fence = FENCE_CLOSED  # stop acknowledging writes first
        self._serve_until = float("-inf")
        self.state = "standby"
        self.last_leave = (reason, self._clock() - self._last_seen)
        self.epoch = None
        self._record = None
        self.active_since = None
        log.info("worker leaves the active role (%s)", reason)
        await self._standby_again()

    async def _standby_again(self) -> None:
        try:
            await self.core.become_standby()
        except Exception:
            log.exception("core.become_standby failed")
