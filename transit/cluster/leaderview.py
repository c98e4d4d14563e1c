"""The standby's view of the active node, for forwarding (DESIGN §4 "Advertisement").

`LeaderView` answers "who is active, and how do I reach it": the lock holder
(`backend.lock_holder()`, re-read at most every `leader_refresh` seconds) and its
advertisement `core/leader/<node id>`, read through the barrier from the primary and cached
until the holder (owner, epoch) changes. A record that does not advertise the current holder
(a previous holder's under the same node id, or the holder's of an earlier term) is not taken:
the holder has not advertised itself yet. It is a mixin of `HAController`
(transit/cluster/ha.py), which constructs the state declared below; `RoleFollower`
(transit/cluster/follower.py) reuses it and feeds it the holder it polls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transit.cluster.activeterm import ACTIVATION_WAIT
from transit.cluster.advert import LeaderRecord, leader_key
from transit.cluster.identity import node_of
from transit.cluster.ports import RoleNode

# the controller's logger: these lines belong to the HA module (`cluster.ha`) in the logs
log = logging.getLogger("transit.cluster.ha")


class LeaderView:
    """The lock holder and its advertisement, as a standby sees them (module docstring)."""

    # constructed by HAController.__init__ (transit/cluster/ha.py)
    core: RoleNode
    backend: Any
    owner: str
    leader_refresh: float
    _clock: Callable[[], float]
    _record: LeaderRecord | None
    _holder: tuple[str, int] | None
    _holder_at: float
    _leader_key: tuple[str, int] | None
    _leader: LeaderRecord | None

    if TYPE_CHECKING:  # the controller's (transit/cluster/ha.py)
        @property
        def is_active(self) -> bool: ...

        def _saw_epoch(self, epoch: int) -> None: ...

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
