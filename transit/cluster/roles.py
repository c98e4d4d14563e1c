"""HA role switching of one node (DESIGN §4, §5): becoming the active node, a (performance)
standby, or a worker process following the active role its worker 0 won; the invalidation
feed of each role; the standby's echo heartbeat; client-controlled consistency (X-Vault-Index).

`NodeRoles` is a mixin of `transit.core.Core`, over the node's one set of state (declared
below for type checkers; `Core.__init__` sets it). The HA controller (`cluster/ha.py`) and the
follower (`cluster/follower.py`) call `become_active` / `become_standby`; the lifecycle
(`transit/lifecycle.py`) enters the standby role after unseal, and provides `_load` /
`_unload` (what lives behind the barrier), which these methods call. Nothing here imports
the node's modules above `cluster/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Any

import orjson

from transit.cluster.advert import LeaderRecord, leader_key
from transit.cluster.consistency import INDEX_KEY_PATH, encode_index, index_key, required_index
from transit.cluster.follower import NotReady, RoleFollower
from transit.cluster.forward import Forwarder, ForwardingError
from transit.cluster.ha import HAController
from transit.cluster.invalidate import invalidate_all, invalidate_key
from transit.cluster.invalidation import DEFAULT_MAX_STALENESS, InvalidationSubscriber
from transit.cluster.listener import ClusterListener
from transit.errors import StorageError, TransitError

if TYPE_CHECKING:
    from transit.acl.store import AclPolicyStore
    from transit.audit.broker import AuditBroker
    from transit.barrier import Barrier
    from transit.cluster.identity import ClusterInfo
    from transit.engines.mounts import MountTable
    from transit.quotas import QuotaStore
    from transit.tokens.store import TokenStore

log = logging.getLogger("transit.core")  # the node's one logger, as before the split

ECHO_PATH = "/v1/sys/internal/cluster-echo"
# A standby that cannot load its state yet retries after 50 ms, 100 ms, ... then every 2 s.
STANDBY_RETRY_FIRST = 0.05
STANDBY_RETRY_MAX = 2.0


class NodeRoles:
    """The node's HA roles (a mixin of `Core`)."""

    if TYPE_CHECKING:
        physical: Any
        barrier: Barrier
        tokens: TokenStore
        policies: AclPolicyStore
        mounts: MountTable
        audit: AuditBroker
        quotas: QuotaStore
        cluster: ClusterInfo
        ha: HAController | None
        forwarder: Forwarder | None
        cluster_listener: ClusterListener | None
        invalidator: InvalidationSubscriber | None
        node_id: str
        api_addr: str
        cluster_addr: str
        cluster_listen: str
        cluster_app: Any
        echoes: dict[str, dict[str, Any]]
        perf_standby_enabled: bool
        shared_writes: bool
        max_staleness: float
        standby_problem: str
        storage_problem: str
        relay: Any
        index_wait: float
        _perf_loaded: bool
        _sealing: bool
        _standby_retry: asyncio.Task[None] | None
        _standby_logged: float
        _inval: dict[str, Any]
        _background: set[asyncio.Future[None]]
        _index_key: bytes | None

        @property
        def sealed(self) -> bool: ...
        async def _load(self, *, create: bool = True) -> None: ...
        async def _unload(self) -> None: ...
        async def _relay(self, kind: str, payload: dict[str, Any]) -> None: ...

    # -- HA role -----------------------------------------------------------------------------
    def enable_ha(
        self, backend: Any, *, node_id: str, api_addr: str, cluster_addr: str,
        cluster_listen: str, lock_ttl: float, app: Any = None, perf_standby: bool = True,
        invalidation_address: str = "", invalidation_prefix: str = "transit",
        follower: bool = False, shared_writes: bool = False,
        invalidation_primary_address: str = "", max_staleness: float = DEFAULT_MAX_STALENESS,
    ) -> None:
        """Make this node one of an HA cluster over `backend` (which holds the lock).

        With several worker processes per node (`shared_writes`), worker 0 elects and the
        others are `follower`s (`RoleFollower`), and every worker keeps an invalidation feed:
        on `invalidation_primary_address` while active, on `invalidation_address` (the local
        replica) while a standby. An empty address (Sentinel without `read_address`) is the
        primary the backend finds at each (re)subscribe. A performance standby serves from
        its caches only while the feed says they are at most `max_staleness` seconds old."""
        if follower:
            self.ha = RoleFollower(self, backend, node_id, api_addr, cluster_addr, lock_ttl,
                                   relay=self._relay)
        else:
            self.ha = HAController(self, backend, node_id, api_addr, cluster_addr, lock_ttl)
        self.forwarder = Forwarder(node_id)
        self.node_id = node_id
        self.api_addr = api_addr
        self.cluster_addr = cluster_addr
        self.cluster_listen = cluster_listen
        self.cluster_app = app
        self.perf_standby_enabled = perf_standby
        self.shared_writes = shared_writes
        self._inval = {"standby": invalidation_address,
                       "active": invalidation_primary_address or invalidation_address,
                       "prefix": invalidation_prefix}
        self.max_staleness = max_staleness
        if (perf_standby or shared_writes) and (
                invalidation_address or hasattr(self.physical, "primary_address")):
            self.invalidator = self._make_invalidator(invalidation_address)

    def _make_invalidator(self, address: str) -> InvalidationSubscriber:
        physical = self.physical
        return InvalidationSubscriber(
            address, self._inval["prefix"],
            lambda key: invalidate_key(self, key), lambda: invalidate_all(self),
            client_name=f"transit-{self.node_id}-inval",
            primary_index=getattr(physical, "write_index", None),
            max_staleness=self.max_staleness,
            resolve=None if address else physical.primary_address,
            **physical.connection,  # same auth and TLS as the node's storage
        )

    async def _feed_for(self, role: str) -> None:
        """With shared writes: run the invalidation feed on the address for `role`."""
        current = self.invalidator
        if current is None:
            return
        address = self._inval[role]
        if current.address != address:
            # Stopping can take a while (redis-py closing a pubsub mid-read): not on the way
            # into a role. Both feeds briefly invalidating the same keys is harmless.
            task = asyncio.ensure_future(current.stop())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            self.invalidator = current = self._make_invalidator(address)
        if not current.running:
            current.start()  # its first (re)subscribe drops every cache

    @property
    def standby(self) -> bool:
        return self.ha is not None and not self.sealed and not self.ha.is_active

    @property
    def perf_standby(self) -> bool:
        """A standby that serves reads, encrypt and decrypt itself (DESIGN §5), while its
        caches are fresh (bounded staleness: transit/cluster/invalidation.py)."""
        if not (self.perf_standby_enabled and self._perf_loaded and self.standby):
            return False
        feed = self.invalidator
        return feed is None or feed.fresh

    @property
    def serving_problem(self) -> str:
        """Why this standby does not serve as a performance standby right now ("" when it
        does, or is not meant to): shown by sys/health and sys/ha-status."""
        if self.storage_problem:
            return self.storage_problem
        if self.standby_problem:
            return self.standby_problem
        feed = self.invalidator
        if (self.perf_standby_enabled and self._perf_loaded and self.standby
                and feed is not None and not feed.fresh):
            return f"not serving locally: {feed.problem}"
        return ""

    async def become_active(self, record: LeaderRecord | None) -> None:
        """Called by the HA controller once it holds the lock (writes are fenced by now).

        `record` None: a sibling worker process (`RoleFollower`) takes the active role worker
        0 won — no advertisement, no cluster listener, and nothing created that worker 0's
        activation creates (NotReady until worker 0 has made the X-Vault-Index key)."""
        await self._stop_standby_retry()
        self.standby_problem = ""
        was_replica = bool(getattr(self.physical, "read_from_replica", False))
        self._read_from_replica(False)
        if record is None and hasattr(self.physical, "last_index"):
            if await self.barrier.get(INDEX_KEY_PATH) is None:
                self._read_from_replica(was_replica)
                raise NotReady("the active worker has not finished activating")
        if self.invalidator is not None and not self.shared_writes:
            await self.invalidator.stop()
        # Keep serving as a performance standby until the active state has loaded (the
        # controller marks us active only after this returns): drop the caches, but do not
        # go dark — `_load` rebuilds the mount engines in place.
        self.tokens.invalidate()
        self.policies.invalidate()
        if record is None:
            self.barrier.read_only = True  # load exactly like a standby: never create
            await self._load(create=False)
            self.barrier.read_only = False
            if self.shared_writes:
                await self._feed_for("active")
            self._perf_loaded = False
            log.info("worker of node %s follows the active role", self.node_id)
            return
        self.barrier.read_only = False
        await self._check_persistence()
        await self._load()
        # Forwarded requests are short; idle keep-alive connections (echoes) must not hold up
        # a step-down or shutdown for uvicorn's usual grace period.
        self.cluster_listener = ClusterListener(
            self.cluster_app, self.cluster_listen, record, graceful_shutdown=1.0
        )
        await self.cluster_listener.start()
        self.echoes.clear()
        if self.shared_writes:
            await self._feed_for("active")
        self._perf_loaded = False
        # Advertise last: standbys forward to it and sibling workers follow it, so it must
        # not appear before this node can serve (its cluster listener is up, state loaded).
        await self.barrier.put(leader_key(record.node_id), record.to_json())
        log.info("node %s is now the active node", record.node_id)

    async def become_standby(self) -> None:
        """Called by the HA controller when it leaves active duty (lock lost, step-down)."""
        listener, self.cluster_listener = self.cluster_listener, None
        if listener is not None:
            await listener.stop()
        await self._enter_standby()
        log.info("node %s is now a standby", self.node_id)

    async def _enter_standby(self) -> None:
        """Drop what the active role loaded; a performance standby reloads it read-only,
        reading from its local replica when one is configured. Never writes.

        When that state cannot be loaded yet (the replica has not received what the active
        node or `sys/init` wrote moments ago, or storage trouble) the node forwards every
        request meanwhile, says why (`standby_problem`: sys/health, sys/ha-status, the log)
        and retries in the background with backoff until it can (`_retry_standby`)."""
        await self._stop_standby_retry()
        await self._unload()
        self.barrier.read_only = True
        self.standby_problem = ""
        if not self.perf_standby_enabled or self._sealing:
            if self.shared_writes and self.invalidator is not None:
                await self.invalidator.stop()  # a plain standby caches nothing
            return
        self._read_from_replica(True)
        try:
            await self._load(create=False)
        except Exception as exc:
            await self._unload()
            self._standby_failed(exc, first=True)
            self._standby_retry = asyncio.ensure_future(self._retry_standby())
            return
        await self._standby_loaded()

    async def _standby_loaded(self) -> None:
        self.standby_problem = ""
        self._perf_loaded = True
        if self.shared_writes:
            await self._feed_for("standby")
        elif self.invalidator is not None and not self.invalidator.running:
            self.invalidator.start()  # its first (re)subscribe drops every cache again

    def _standby_failed(self, exc: BaseException, *, first: bool = False) -> None:
        """Record (and log, without flooding) why the performance standby state did not load."""
        reason = (exc.message if isinstance(exc, TransitError) else repr(exc)) or repr(exc)
        problem = f"cannot load state for performance standby mode yet: {reason}"
        now = asyncio.get_running_loop().time()
        if first or problem != self.standby_problem or now - self._standby_logged > 10.0:
            self._standby_logged = now
            log.warning("node %s %s; forwarding every request meanwhile, retrying with backoff",
                        self.node_id, problem)
        self.standby_problem = problem

    async def _retry_standby(self) -> None:
        """Load the performance standby state again, with backoff, until it loads or the node
        leaves the standby role (becomes active, seals)."""
        delay, attempts = STANDBY_RETRY_FIRST, 1
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, STANDBY_RETRY_MAX)
            if self.sealed or self.ha is None or self.ha.is_active or not self.barrier.read_only:
                return
            attempts += 1
            try:
                await self._load(create=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._unload()
                self._standby_failed(exc)
                continue
            self._standby_retry = None  # done: `_stop_standby_retry` must not cancel us now
            await self._standby_loaded()
            log.info("node %s is a performance standby now (loaded after %d attempts)",
                     self.node_id, attempts)
            return

    async def _stop_standby_retry(self) -> None:
        task, self._standby_retry = self._standby_retry, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    def _read_from_replica(self, on: bool) -> None:
        if hasattr(self.physical, "read_from_replica"):  # no replica configured: primary
            self.physical.read_from_replica = on

    def record_echo(self, info: dict[str, Any], now: float, *, relayed: bool = False) -> None:
        """A standby's heartbeat, shown by `sys/ha-status` (on every worker of the node)."""
        if self.relay is not None and not relayed:
            task = asyncio.ensure_future(self.relay("echo", {"info": dict(info), "now": now}))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        node = str(info["node_id"])
        self.echoes[node] = {
            "hostname": str(info.get("hostname", "")),
            "api_address": str(info.get("api_address", "")),
            "cluster_address": str(info.get("cluster_address", "")),
            "performance_standby": bool(info.get("performance_standby", False)),
            "standby_problem": str(info.get("standby_problem", "")),
            "last_echo": now,
        }

    async def run_echo(self, interval: float = 5.0) -> None:
        """While a standby, tell the active node we exist (Vault's Echo heartbeat)."""
        hostname = socket.gethostname()
        while True:
            await asyncio.sleep(interval)
            if self.ha is None or not self.standby:
                continue
            leader = await self.ha.leader()
            if leader is None:
                continue
            body = orjson.dumps({
                "node_id": self.node_id, "hostname": hostname, "api_address": self.api_addr,
                "cluster_address": self.cluster_addr, "performance_standby": self.perf_standby,
                "standby_problem": self.serving_problem})
            assert self.forwarder is not None  # set together with self.ha
            try:
                await self.forwarder.forward(leader, "POST", ECHO_PATH, [], body)
            except ForwardingError as exc:
                log.debug("echo to the active node failed: %s", exc)

    async def _check_persistence(self) -> None:
        """Before acknowledging any write as active: would the storage primary lose it?
        Refuse to activate (the default) or warn loudly (DESIGN §7)."""
        check = getattr(self.physical, "check_persistence", None)
        if check is None:
            return
        problems = await check()
        if not problems:
            return
        text = "; ".join(problems)
        if getattr(self.physical, "persistence_check", "refuse") == "warn":
            log.warning("storage would lose acknowledged writes (persistence_check = warn, "
                        "serving anyway): %s", text)
            return
        raise StorageError(
            f"refusing to become active: storage would lose acknowledged writes: {text} "
            '(fix the Redis configuration, or set persistence_check = "warn")'
        )

    # -- client-controlled consistency (X-Vault-Index) --------------------------------------
    def index_header(self) -> str:
        """X-Vault-Index for a response after this node's latest write ("" without one)."""
        index = getattr(self.physical, "last_index", 0)
        if not index or self._index_key is None:
            return ""
        return encode_index(self.cluster.id, index, self._index_key)

    async def index_reached(self, header_values: list[str]) -> bool:
        """Whether this standby's replica has the state a client saw (waits up to
        `index_wait`). Raises UserError on a forged or malformed value."""
        if self._index_key is None:
            self._index_key = await index_key(self.barrier)
        needed = required_index(header_values, self.cluster.id, self._index_key)
        if self.invalidator is None or needed <= self.invalidator.applied_index:
            return True
        return await self.invalidator.wait_for_index(needed, self.index_wait)
