"""HA role switching of one node (DESIGN §4, §5): becoming the active node, a (performance)
standby, or a worker process following the active role its worker 0 won; the invalidation
feed of each role; the standby's echo heartbeat; client-controlled consistency (X-Vault-Index).

`NodeRoles` is a component `transit.core.Core` owns (`core.roles`). It sees the node through
`RoleHost` (transit/cluster/ports.py): the role state it reads and sets, and the caches the
invalidation feed drops. It loads and drops what lives behind the barrier through a
`StateLoader` (the node's lifecycle, transit/lifecycle.py). The HA controller
(`cluster/ha.py`) and the follower (`cluster/follower.py`) drive it: `become_active` /
`become_standby`; the lifecycle enters the standby role after unseal (`enter_standby`) and
leaves every role before sealing (`leave_for_seal`). Nothing here imports the node's modules
above `cluster/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import orjson

from transit.cluster.advert import LeaderRecord, leader_key
from transit.cluster.consistency import INDEX_KEY_PATH, encode_index, index_key, required_index
from transit.cluster.follower import NotReady, RoleFollower
from transit.cluster.forward import Forwarder, ForwardingError
from transit.cluster.ha import HAController
from transit.cluster.invalidate import invalidate_all, invalidate_key
from transit.cluster.invalidation import DEFAULT_MAX_STALENESS, InvalidationSubscriber
from transit.cluster.listener import ClusterListener, HttpProtocol
from transit.cluster.ports import RoleHost, StateLoader
from transit.errors import StorageError, TransitError

log = logging.getLogger("transit.core")  # the node's one logger, as before the split

ECHO_PATH = "/v1/sys/internal/cluster-echo"
# A standby that cannot load its state yet retries after 50 ms, 100 ms, ... then every 2 s.
STANDBY_RETRY_FIRST = 0.05
STANDBY_RETRY_MAX = 2.0


@dataclass(frozen=True)
class HaOptions:
    """How a node takes part in an HA cluster (`Core.enable_ha`; transit/server.py).

    With several worker processes per node (`shared_writes`), worker 0 elects and the others
    are `follower`s (`RoleFollower`), and every worker keeps an invalidation feed: on
    `invalidation_primary_address` while active, on `invalidation_address` (the local
    replica) while a standby. An empty address (Sentinel without `read_address`) is the
    primary the backend finds at each (re)subscribe. A performance standby serves from its
    caches only while the feed says they are at most `max_staleness` seconds old. `app` is
    what the cluster listener serves while this node is active, over the HTTP protocol
    `http` (the API's: transit/api/protocol.py)."""

    node_id: str
    api_addr: str
    cluster_addr: str
    cluster_listen: str
    lock_ttl: float
    http: HttpProtocol
    app: Any = None  # the ASGI app the cluster listener serves
    perf_standby: bool = True
    invalidation_address: str = ""
    invalidation_prefix: str = "transit"
    follower: bool = False
    shared_writes: bool = False
    invalidation_primary_address: str = ""
    max_staleness: float = DEFAULT_MAX_STALENESS


class NodeRoles:
    """The node's HA roles (a component of `Core`, over its `RoleHost` view)."""

    def __init__(self, node: RoleHost, loader: StateLoader) -> None:
        self.node = node
        self.loader = loader
        # Why this node is not (yet) serving as a performance standby ("" when it is, or
        # when it is not meant to): shown by sys/health and sys/ha-status. While it is set a
        # background task (`_standby_retry`) keeps trying, with backoff.
        self.standby_problem = ""
        self._standby_retry: asyncio.Task[None] | None = None
        self._standby_logged = float("-inf")
        self._sealing = False  # set while `leave_for_seal` stops the HA controller
        self.cluster_listener: ClusterListener | None = None
        self.cluster_listen = ""
        self.cluster_app: Any = None
        self.cluster_http: HttpProtocol = "h11"  # set by `enable_ha` (`HaOptions.http`)
        self.max_staleness = DEFAULT_MAX_STALENESS
        self._inval: dict[str, str] = {}
        self._background: set[asyncio.Future[Any]] = set()

    @property
    def sealed(self) -> bool:  # `RoleNode`: the HA controller reads the node through us
        return self.node.sealed

    @property
    def barrier(self) -> Any:
        return self.node.barrier

    def _spawn(self, aw: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(aw)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- HA role -----------------------------------------------------------------------------
    def enable_ha(self, backend: Any, options: HaOptions) -> tuple[HAController, Forwarder]:
        """Make this node one of an HA cluster over `backend` (which holds the lock); returns
        its HA controller and forwarding client (`Core.enable_ha` keeps them)."""
        node = self.node
        ha: HAController
        if options.follower:
            ha = RoleFollower(self, backend, options.node_id, options.api_addr,
                              options.cluster_addr, options.lock_ttl, relay=self._relay)
        else:
            ha = HAController(self, backend, options.node_id, options.api_addr,
                              options.cluster_addr, options.lock_ttl)
        forwarder = Forwarder(options.node_id)
        node.node_id = options.node_id
        node.api_addr = options.api_addr
        node.cluster_addr = options.cluster_addr
        self.cluster_listen = options.cluster_listen
        self.cluster_app = options.app
        self.cluster_http = options.http
        node.perf_standby_enabled = options.perf_standby
        node.shared_writes = options.shared_writes
        self._inval = {"standby": options.invalidation_address,
                       "active": options.invalidation_primary_address
                       or options.invalidation_address,
                       "prefix": options.invalidation_prefix}
        self.max_staleness = options.max_staleness
        if (options.perf_standby or options.shared_writes) and (
                options.invalidation_address or hasattr(node.physical, "primary_address")):
            node.invalidator = self._make_invalidator(options.invalidation_address)
        return ha, forwarder

    async def _relay(self, kind: str, payload: dict[str, Any]) -> None:
        relay = self.node.relay
        if relay is not None:
            await relay(kind, payload)

    def _make_invalidator(self, address: str) -> InvalidationSubscriber:
        node = self.node
        physical = node.physical
        return InvalidationSubscriber(
            address, self._inval["prefix"],
            lambda key: invalidate_key(node, key), lambda: invalidate_all(node),
            client_name=f"transit-{node.node_id}-inval",
            primary_index=getattr(physical, "write_index", None),
            max_staleness=self.max_staleness,
            resolve=None if address else physical.primary_address,
            **physical.connection,  # same auth and TLS as the node's storage
        )

    async def _feed_for(self, role: str) -> None:
        """With shared writes: run the invalidation feed on the address for `role`."""
        current = self.node.invalidator
        if current is None:
            return
        address = self._inval[role]
        if current.address != address:
            # Stopping can take a while (redis-py closing a pubsub mid-read): not on the way
            # into a role. Both feeds briefly invalidating the same keys is harmless.
            self._spawn(current.stop())
            self.node.invalidator = current = self._make_invalidator(address)
        if not current.running:
            current.start()  # its first (re)subscribe drops every cache

    @property
    def serving_problem(self) -> str:
        """Why this standby does not serve as a performance standby right now ("" when it
        does, or is not meant to): shown by sys/health and sys/ha-status."""
        node = self.node
        if node.storage_problem:
            return node.storage_problem
        if self.standby_problem:
            return self.standby_problem
        feed = node.invalidator
        if (node.perf_standby_enabled and node.perf_loaded and node.standby
                and feed is not None and not feed.fresh):
            return f"not serving locally: {feed.problem}"
        return ""

    async def become_active(self, record: LeaderRecord | None) -> None:
        """Called by the HA controller once it holds the lock (writes are fenced by now).

        `record` None: a sibling worker process (`RoleFollower`) takes the active role worker
        0 won — no advertisement, no cluster listener, and nothing created that worker 0's
        activation creates (NotReady until worker 0 has made the X-Vault-Index key)."""
        node = self.node
        await self._stop_standby_retry()
        self.standby_problem = ""
        was_replica = bool(getattr(node.physical, "read_from_replica", False))
        self._read_from_replica(False)
        if record is None and hasattr(node.physical, "last_index"):
            if await node.barrier.get(INDEX_KEY_PATH) is None:
                self._read_from_replica(was_replica)
                raise NotReady("the active worker has not finished activating")
        if node.invalidator is not None and not node.shared_writes:
            await node.invalidator.stop()
        # Keep serving as a performance standby until the active state has loaded (the
        # controller marks us active only after this returns): drop the caches, but do not
        # go dark — `load` rebuilds the mount engines in place.
        node.tokens.invalidate()
        node.policies.invalidate()
        if record is None:
            node.barrier.read_only = True  # load exactly like a standby: never create
            await self.loader.load(create=False)
            node.barrier.read_only = False
            if node.shared_writes:
                await self._feed_for("active")
            node.perf_loaded = False
            log.info("worker of node %s follows the active role", node.node_id)
            return
        node.barrier.read_only = False
        await self._check_persistence()
        await self.loader.load()
        # Forwarded requests are short; idle keep-alive connections (echoes) must not hold up
        # a step-down or shutdown for uvicorn's usual grace period.
        self.cluster_listener = ClusterListener(
            self.cluster_app, self.cluster_listen, record, http=self.cluster_http,
            graceful_shutdown=1.0,
        )
        await self.cluster_listener.start()
        node.echoes.clear()
        if node.shared_writes:
            await self._feed_for("active")
        node.perf_loaded = False
        # Advertise last: standbys forward to it and sibling workers follow it, so it must
        # not appear before this node can serve (its cluster listener is up, state loaded).
        await node.barrier.put(leader_key(record.node_id), record.to_json())
        log.info("node %s is now the active node", record.node_id)

    async def become_standby(self) -> None:
        """Called by the HA controller when it leaves active duty (lock lost, step-down)."""
        listener, self.cluster_listener = self.cluster_listener, None
        if listener is not None:
            await listener.stop()
        await self.enter_standby()
        log.info("node %s is now a standby", self.node.node_id)

    async def enter_standby(self) -> None:
        """Drop what the active role loaded; a performance standby reloads it read-only,
        reading from its local replica when one is configured. Never writes.

        When that state cannot be loaded yet (the replica has not received what the active
        node or `sys/init` wrote moments ago, or storage trouble) the node forwards every
        request meanwhile, says why (`standby_problem`: sys/health, sys/ha-status, the log)
        and retries in the background with backoff until it can (`_retry_standby`)."""
        node = self.node
        await self._stop_standby_retry()
        await self.loader.unload()
        node.barrier.read_only = True
        self.standby_problem = ""
        if not node.perf_standby_enabled or self._sealing:
            if node.shared_writes and node.invalidator is not None:
                await node.invalidator.stop()  # a plain standby caches nothing
            return
        self._read_from_replica(True)
        try:
            await self.loader.load(create=False)
        except Exception as exc:
            await self.loader.unload()
            self._standby_failed(exc, first=True)
            self._standby_retry = asyncio.ensure_future(self._retry_standby())
            return
        await self._standby_loaded()

    async def leave_for_seal(self) -> None:
        """Before sealing (`pre_seal`): stop retrying the standby state, stop the
        invalidation feed and give up the HA role, reloading nothing on the way out."""
        node = self.node
        await self._stop_standby_retry()
        if node.invalidator is not None:
            await node.invalidator.stop()
        if node.ha is not None:
            self._sealing = True  # become_standby must not reload state we are dropping
            try:
                await node.ha.stop()
            finally:
                self._sealing = False

    async def _standby_loaded(self) -> None:
        node = self.node
        self.standby_problem = ""
        node.perf_loaded = True
        if node.shared_writes:
            await self._feed_for("standby")
        elif node.invalidator is not None and not node.invalidator.running:
            node.invalidator.start()  # its first (re)subscribe drops every cache again

    def _standby_failed(self, exc: BaseException, *, first: bool = False) -> None:
        """Record (and log, without flooding) why the performance standby state did not load."""
        reason = (exc.message if isinstance(exc, TransitError) else repr(exc)) or repr(exc)
        problem = f"cannot load state for performance standby mode yet: {reason}"
        now = asyncio.get_running_loop().time()
        if first or problem != self.standby_problem or now - self._standby_logged > 10.0:
            self._standby_logged = now
            log.warning("node %s %s; forwarding every request meanwhile, retrying with backoff",
                        self.node.node_id, problem)
        self.standby_problem = problem

    async def _retry_standby(self) -> None:
        """Load the performance standby state again, with backoff, until it loads or the node
        leaves the standby role (becomes active, seals)."""
        node = self.node
        delay, attempts = STANDBY_RETRY_FIRST, 1
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, STANDBY_RETRY_MAX)
            if node.sealed or node.ha is None or node.ha.is_active or not node.barrier.read_only:
                return
            attempts += 1
            try:
                await self.loader.load(create=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self.loader.unload()
                self._standby_failed(exc)
                continue
            self._standby_retry = None  # done: `_stop_standby_retry` must not cancel us now
            await self._standby_loaded()
            log.info("node %s is a performance standby now (loaded after %d attempts)",
                     node.node_id, attempts)
            return

    async def _stop_standby_retry(self) -> None:
        task, self._standby_retry = self._standby_retry, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    def _read_from_replica(self, on: bool) -> None:
        physical = self.node.physical
        if hasattr(physical, "read_from_replica"):  # no replica configured: primary
            physical.read_from_replica = on

    def record_echo(self, info: dict[str, Any], now: float, *, relayed: bool = False) -> None:
        """A standby's heartbeat, shown by `sys/ha-status` (on every worker of the node)."""
        relay = self.node.relay
        if relay is not None and not relayed:
            self._spawn(relay("echo", {"info": dict(info), "now": now}))
        node = str(info["node_id"])
        self.node.echoes[node] = {
            "hostname": str(info.get("hostname", "")),
            "api_address": str(info.get("api_address", "")),
            "cluster_address": str(info.get("cluster_address", "")),
            "performance_standby": bool(info.get("performance_standby", False)),
            "standby_problem": str(info.get("standby_problem", "")),
            "last_echo": now,
        }

    async def run_echo(self, interval: float = 5.0) -> None:
        """While a standby, tell the active node we exist (Vault's Echo heartbeat)."""
        node = self.node
        hostname = socket.gethostname()
        while True:
            await asyncio.sleep(interval)
            if node.ha is None or not node.standby:
                continue
            leader = await node.ha.leader()
            if leader is None:
                continue
            body = orjson.dumps({
                "node_id": node.node_id, "hostname": hostname, "api_address": node.api_addr,
                "cluster_address": node.cluster_addr, "performance_standby": node.perf_standby,
                "standby_problem": self.serving_problem})
            forwarder = node.forwarder
            assert forwarder is not None  # set together with node.ha
            try:
                await forwarder.forward(leader, "POST", ECHO_PATH, [], body)
            except ForwardingError as exc:
                log.debug("echo to the active node failed: %s", exc)

    async def _check_persistence(self) -> None:
        """Before acknowledging any write as active: would the storage primary lose it?
        Refuse to activate (the default) or warn loudly (DESIGN §7)."""
        physical = self.node.physical
        check = getattr(physical, "check_persistence", None)
        if check is None:
            return
        problems = await check()
        if not problems:
            return
        text = "; ".join(problems)
        if getattr(physical, "persistence_check", "refuse") == "warn":
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
        node = self.node
        index = getattr(node.physical, "last_index", 0)
        if not index or node.index_hmac_key is None:
            return ""
        return encode_index(node.cluster.id, index, node.index_hmac_key)

    async def index_reached(self, header_values: list[str]) -> bool:
        """Whether this standby's replica has the state a client saw (waits up to
        `index_wait`). Raises UserError on a forged or malformed value."""
        node = self.node
        if node.index_hmac_key is None:
            node.index_hmac_key = await index_key(node.barrier)
        needed = required_index(header_values, node.cluster.id, node.index_hmac_key)
        if node.invalidator is None or needed <= node.invalidator.applied_index:
            return True
        return await node.invalidator.wait_for_index(needed, node.index_wait)
