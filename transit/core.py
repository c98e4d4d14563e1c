"""The Vault core of one node: barrier and seal, mounts, tokens, ACL policies, audit, and
the request pipeline every logical request goes through (`Core.handle`).

The HTTP layer builds a `Request` and calls `handle`; nothing here knows HTTP. The order of
the pipeline is Vault's: sealed check, token lookup, existence check (UPDATE → CREATE), ACL
(with sudo for root-protected paths), audit request, handler, token use, response wrapping,
audit response.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import secrets
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from transit import __version__
from transit.acl.acl import Decision, requires_sudo
from transit.acl.store import AclPolicyStore
from transit.audit.broker import AuditBroker
from transit.barrier import Barrier
from transit.cluster.advert import LeaderRecord, leader_key
from transit.cluster.consistency import INDEX_KEY_PATH, encode_index, index_key, required_index
from transit.cluster.follower import NotReady, RoleFollower
from transit.cluster.forward import Forwarder, ForwardingError
from transit.cluster.ha import FENCE_CLOSED, HAController
from transit.cluster.invalidate import invalidate_all, invalidate_key
from transit.cluster.invalidation import DEFAULT_MAX_STALENESS, InvalidationSubscriber
from transit.cluster.listener import ClusterListener
from transit.engines.framework import Engine
from transit.engines.kv import kv_factory
from transit.engines.mounts import EngineFactory, MountTable
from transit.engines.system.backend import SystemBackend
from transit.engines.token.backend import TokenBackend
from transit.engines.transit.backend import TransitBackend
from transit.errors import (
    AuditFailed,
    Fenced,
    ForwardToActive,
    NoHandler,
    PermissionDenied,
    Sealed,
    StandbyError,
    StorageError,
    TransitError,
    UserError,
)
from transit.logical import CREATE, MOUNT_DEFAULT_TTL, UPDATE, Request, Response
from transit.quotas import QuotaStore
from transit.seal import SealManager
from transit.storage import Backend, StorageView
from transit.storage.update import get_or_create
from transit.tokens.expiration import ExpirationManager
from transit.tokens.store import TokenStore
from transit.tokens.wrapping import Wrapper, parse_wrap_ttl

log = logging.getLogger("transit.core")

ENGINE_FACTORIES: dict[str, EngineFactory] = {
    "transit": TransitBackend,
    "kv": kv_factory,
    "generic": kv_factory,
}

TOKEN_MOUNT = "auth/token/"
ECHO_PATH = "/v1/sys/internal/cluster-echo"
CLUSTER_INFO_KEY = "core/cluster/local/info"
POLICY_PREFIX = "sys/policy/"
BUILTIN_POLICIES = ("default", "response-wrapping")  # made by the active node (`_load`)
# A standby that cannot load its state yet retries after 50 ms, 100 ms, ... then every 2 s.
STANDBY_RETRY_FIRST = 0.05
STANDBY_RETRY_MAX = 2.0
AUTO_UNSEAL_POLL = 0.25  # an uninitialised node with a static seal looks this often

# Vault's wrapping special case: these validate the wrapping token before authentication
# (a spent one is a 400, not a 403), and the caller's own token may be the wrapping token.
WRAPPING_PATHS = frozenset({"sys/wrapping/lookup", "sys/wrapping/rewrap", "sys/wrapping/unwrap"})
UNAUTHENTICATED = frozenset({"sys/wrapping/lookup"})
# Unauthenticated in Vault's router too, but their handlers check the token themselves
# (transit/engines/system/internal.py): no ACL check here, with or without a token.
SELF_CHECKED = "sys/internal/ui/mounts"
OPEN_DECISION = Decision(True)
# What a node answers (503) once it is no longer the active node: a standby that forwarded the
# request recognises it and looks for the new active node.
NOT_ACTIVE = "node is not active"
# Requests whose success is that this node stops being active (checked after the request).
_GIVES_UP_THE_LOCK = frozenset({"sys/seal", "sys/step-down"})


@dataclass
class ClusterInfo:
    name: str = field(default_factory=lambda: f"vault-cluster-{secrets.token_hex(4)}")
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = __version__


class Core:
    def __init__(
        self, physical: Backend, *, storage_type: str = "inmem", cluster_name: str = "",
        static_seal_key: bytes | None = None,
    ) -> None:
        self.physical = physical
        self.storage_type = storage_type
        self.barrier = Barrier(physical)
        self.seal = SealManager(physical, self.barrier, static_key=static_seal_key)
        self.mounts = MountTable(self.barrier, ENGINE_FACTORIES)
        self.tokens = TokenStore(StorageView(self.barrier, "sys/token/"))
        self.policies = AclPolicyStore(StorageView(self.barrier, "sys/policy/"))
        self.audit = AuditBroker(StorageView(self.barrier, ""))
        self.quotas = QuotaStore(StorageView(self.barrier, ""))
        self.wrapping = Wrapper(self.tokens, StorageView(self.barrier, "sys/wrapping/"))
        self.system = SystemBackend(self)
        self.token_backend = TokenBackend(self.tokens, self.policies)
        self.cluster = ClusterInfo(name=cluster_name) if cluster_name else ClusterInfo()
        self.initialized = False
        self.ha: HAController | None = None
        self.forwarder: Forwarder | None = None
        self.cluster_listener: ClusterListener | None = None
        self.node_id = ""
        self.api_addr = ""
        self.cluster_addr = ""
        self.cluster_listen = ""
        self.cluster_app: Any = None
        self.echoes: dict[str, dict[str, Any]] = {}
        self.perf_standby_enabled = False
        self._perf_loaded = False
        # Why this node is not (yet) serving as a performance standby ("" when it is, or
        # when it is not meant to): shown by sys/health and sys/ha-status. While it is set a
        # background task (`_standby_retry`) keeps trying, with backoff.
        self.standby_problem = ""
        # Set while start-up waits for storage it cannot reach yet (shown by sys/health).
        self.storage_problem = ""
        self._storage_back = asyncio.Event()
        self._standby_retry: asyncio.Task[None] | None = None
        self._standby_logged = float("-inf")
        self._sealing = False
        self.invalidator: InvalidationSubscriber | None = None
        # Several worker processes per node (transit/workers.py): the siblings of the active
        # worker write too, so every worker keeps an invalidation feed in both roles.
        self.shared_writes = False
        self._inval: dict[str, Any] = {}
        # Tells the node's sibling workers about init/seal/echo (set by transit/workers.py).
        self.relay: Any = None
        self._background: set[asyncio.Future[None]] = set()
        self.index_wait = 2.0  # how long a standby waits for a client's X-Vault-Index
        self._index_key: bytes | None = None
        self.default_mounts: list[tuple[str, str, str, dict[str, Any] | None]] = []

    @property
    def sealed(self) -> bool:
        return self.barrier.sealed

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Read whether storage is initialised; a static seal unseals right away — or, on
        storage nobody has initialised yet, as soon as another node has (`sys/init` on one
        node of a cluster; Vault's auto-unseal loop does the same).

        Storage that cannot be reached yet (Redis down, Sentinel mid-failover: "No master
        found") is waited for in the background, with backoff, saying why in the log and in
        `sys/health` (503, sealed) meanwhile: a node never gives up, or crash-loops its
        workers, while its configuration is valid."""
        try:
            await self._start_once()
        except StorageError as exc:
            self._note_storage_problem(exc)
            self._spawn(self._start_when_reachable())

    async def _start_once(self) -> None:
        self.initialized = await self.barrier.initialized()
        self.storage_problem = ""
        if self.initialized and self.seal.auto:
            if self.sealed:
                await self.seal.auto_unseal()
            await self.post_unseal()
        elif not self.initialized and self.seal.auto and self.ha is not None:
            self._spawn(self._auto_unseal_once_initialized())

    async def _start_when_reachable(self, first: float = 0.1, cap: float = 2.0) -> None:
        delay = first
        while True:
            # a sibling worker that got through wakes us at once (`storage_back`)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._storage_back.wait(),
                                       delay * (0.75 + random.random() / 2))
            self._storage_back.clear()
            try:
                await self._start_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage still away (or failing): keep trying
                self._note_storage_problem(exc)
                delay = min(delay * 2, cap)
                continue
            log.info("storage reachable: start-up of node %s continues", self.node_id)
            await self._relay("storage-back", {})
            return

    def storage_back(self) -> None:
        """A sibling worker reached storage: retry start-up now, not at the next backoff."""
        self._storage_back.set()

    def _note_storage_problem(self, exc: Exception) -> None:
        problem = f"storage unreachable at start-up, retrying: {exc}"
        if problem != self.storage_problem:
            log.warning("%s", problem)
        self.storage_problem = problem

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _auto_unseal_once_initialized(self, interval: float = AUTO_UNSEAL_POLL) -> None:
        seal = getattr(self.seal, "inner", self.seal)  # each worker process polls for itself
        while self.sealed:
            await asyncio.sleep(interval)
            if not self.sealed:
                return
            try:
                if not await self.barrier.initialized():
                    continue
                self.initialized = True
                if await seal.auto_unseal():
                    log.info("storage initialised by another node: unsealed")
                    await self.post_unseal()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage unreachable and the like: keep polling
                log.warning("waiting for initialised storage to auto-unseal: %r", exc)

    async def initialize(self, shares: int, threshold: int) -> dict[str, Any]:
        """`sys/init`: create the barrier, split its key, create the root token."""
        if await self.barrier.initialized():
            raise UserError("Vault is already initialized")
        keys, _root_key = await self.seal.initialize(shares, threshold)
        log.info("security barrier initialized: shares=%d threshold=%d", shares, threshold)
        await self._load()
        root = await self.tokens.create_root()
        self.initialized = True
        await self._unload()
        if self.seal.auto:
            await self.post_unseal()
        else:
            self.seal.seal()
        await self._relay("init", {})
        return {
            "keys": [k.hex() for k in keys],
            "keys_base64": [base64.b64encode(k).decode() for k in keys],
            "root_token": root.id,
        }

    async def setup_dev(self, root_token: str = "") -> tuple[str, bytes]:
        """Dev mode: initialised with one unseal key, unsealed, transit at `transit/` and
        KV v2 at `secret/`. Returns (root token, unseal key)."""
        self.default_mounts = [
            ("transit/", "transit", "", None),
            ("secret/", "kv", "key/value secret storage", {"version": "2"}),
        ]
        keys, _root_key = await self.seal.initialize(1, 1)
        await self._load()
        root = await self.tokens.create_root(root_token)
        self.initialized = True
        return root.id, keys[0]

    async def post_unseal(self) -> None:
        """After unseal: a single node serves at once; an HA node starts as a (performance)
        standby and competes for the lock (the controller calls `become_active`)."""
        log.info("vault is unsealed (%s)", "static seal" if self.seal.auto else "key shares")
        if self.ha is None:
            await self._load()
        else:
            # From now on this node writes only while it holds the lock (the controller opens
            # the fence with its epoch). Before unseal it may write unfenced: `sys/init`.
            self.physical.fence = FENCE_CLOSED
            try:
                await self._enter_standby()
            finally:  # whatever loading did, this node competes and forwards
                self.ha.start()
            log.info("node %s entered standby mode%s", self.node_id,
                     " (performance standby)" if self._perf_loaded else "")

    async def pre_seal(self) -> None:
        """Before sealing: give up the HA lock and forget every decrypted thing in memory;
        the node's other worker processes seal too."""
        log.info("sealing the node (sys/seal)")
        await self.pre_seal_local()
        await self._relay("seal", {})

    async def pre_seal_local(self) -> None:
        """`pre_seal` of this process only."""
        await self._stop_standby_retry()
        if self.invalidator is not None:
            await self.invalidator.stop()
        if self.ha is not None:
            self._sealing = True  # become_standby must not reload state we are dropping
            try:
                await self.ha.stop()
            finally:
                self._sealing = False
        await self._unload()

    async def _relay(self, kind: str, payload: dict[str, Any]) -> None:
        if self.relay is not None:
            await self.relay(kind, payload)

    # -- HA ---------------------------------------------------------------------------------
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

    # -- loading and unloading what lives behind the barrier --------------------------------
    async def _load(self, *, create: bool = True) -> None:
        """Load what lives behind the barrier. `create` (the active node, `sys/init`): make
        what is missing (salts, built-in policies, cluster identity, default mounts).
        Without it (a standby, or a worker following the active role) nothing is written:
        whatever is missing is a StorageError — not replicated here yet — and the caller
        waits and retries."""
        await self._load_cluster_identity(create=create)
        await self.tokens.setup(create=create)
        if create:
            await self.policies.setup()
        else:
            for name in BUILTIN_POLICIES:
                if await self.barrier.get(POLICY_PREFIX + name) is None:
                    raise StorageError(f"the {name!r} policy has not reached this node's "
                                       "storage yet")
            self.policies.invalidate()
        await self.mounts.load([])
        if create and not self.mounts.entries():
            for path, typ, description, options in self.default_mounts:
                await self.mounts.mount(path, typ, description=description, options=options)
        self.audit.mounts = self.mounts  # tuned audit_non_hmac_* keys live on mount entries
        await self.audit.setup(create=create)
        await self.quotas.load()

    async def reload_mounts(self) -> None:
        """Re-read the mount table (`core/mounts` changed on another worker or node)."""
        await self.mounts.load([], keep_engines=True)
        self.audit.mounts = self.mounts

    async def _load_cluster_identity(self, *, create: bool = True) -> None:
        """Cluster name and id are shared by every node (`core/cluster/local/info`), as is
        the key that authenticates X-Vault-Index values."""
        raw = await self.barrier.get(CLUSTER_INFO_KEY)
        if raw is None and create and not self.barrier.read_only:
            # first activation (or sys/init): once, cluster-wide
            raw = await get_or_create(self.barrier, CLUSTER_INFO_KEY, lambda: orjson.dumps(
                {"name": self.cluster.name, "id": self.cluster.id}))
        if raw is None and not create:
            raise StorageError(f"the cluster identity ({CLUSTER_INFO_KEY}) has not reached "
                               "this node's storage yet")
        if raw is not None:
            info = orjson.loads(raw)
            self.cluster.name, self.cluster.id = info["name"], info["id"]
        if hasattr(self.physical, "last_index"):
            try:
                self._index_key = await index_key(self.barrier)
            except TransitError:  # a standby whose replica has not got it yet
                self._index_key = None

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

    async def _unload(self) -> None:
        self._perf_loaded = False
        self.tokens.invalidate()
        self.policies.invalidate()
        self.audit.teardown()
        self.quotas.clear()
        self.mounts = MountTable(self.barrier, ENGINE_FACTORIES)  # drops engines and caches

    async def run_periodic(self, interval: float = 60.0) -> None:
        """Call every mounted engine's `periodic()` (auto-rotation) forever; beside it, the
        token expiration manager, which works only while this node is the active one."""
        expiration = asyncio.ensure_future(ExpirationManager(self.tokens).run(
            lambda: not self.sealed and not self.barrier.read_only
            and (self.ha is None or self.ha.is_active)))
        try:
            while True:
                await asyncio.sleep(interval)
                if self.sealed:
                    continue
                for entry in self.mounts.entries():
                    periodic = getattr(entry.engine, "periodic", None)
                    if periodic is None:
                        continue
                    try:
                        await periodic()
                    except Exception:
                        log.exception("periodic task of mount %s failed", entry.path)
        finally:
            expiration.cancel()

    def default_lease_ttl(self, mount_path: str) -> int:
        """The mount's tuned default_lease_ttl, else the server's (config `default_lease_ttl`)."""
        entry = self.mounts.get(mount_path)
        tuned = entry.config.get("default_lease_ttl") if entry is not None else 0
        return int(tuned or self.tokens.default_lease_ttl)

    # -- the request pipeline ---------------------------------------------------------------
    def route(self, path: str) -> tuple[Engine, str, Any, str, str, str]:
        """(engine, path inside it, storage, mount path, mount type, mount accessor)."""
        if path.startswith("sys/") or path == "sys":
            return self.system, path[4:], None, "sys/", "system", "system_00000000"
        if path.startswith(TOKEN_MOUNT) or path == TOKEN_MOUNT[:-1]:
            return (self.token_backend, path[len(TOKEN_MOUNT):], None, TOKEN_MOUNT, "token",
                    "auth_token_00000000")
        routed = self.mounts.route(path)
        if routed is None:
            raise NoHandler(f'no handler for route "{path}". route entry not found.')
        entry, inner = routed
        return entry.engine, inner, entry.storage, entry.path, entry.type, entry.accessor

    async def authenticate(self, path: str, client_token: str) -> Any:
        """The caller's token entry, looked up before the request body is decoded.

        PermissionDenied without a valid token; None (decide in `handle`) on the paths that
        validate a wrapping token themselves or are refused before authentication.
        """
        if path in WRAPPING_PATHS or self.barrier.sealed or (path == "sys/seal" and self.standby):
            return None
        token = await self.tokens.lookup(client_token) if client_token else None
        if token is None:
            raise PermissionDenied()
        return token

    async def audit_refused(self, req: Request, error: str = "permission denied") -> None:
        """Audit a request refused before the ACL: for its token (missing, unknown, expired,
        revoked or used up) or by a rate-limit quota (`error` is then the quota's), as Vault
        does: a request and a response entry, both with `error`, an empty auth block and the
        mount the path routes to. `req.path` is the whole path. Unlike Vault, the data is
        empty: such a body is never decoded. A failing audit device is logged, not raised:
        the answer is a refusal either way."""
        if not self.audit.enabled:
            return
        with contextlib.suppress(NoHandler):
            _, inner, _, mount_path, mount_type, accessor = self.route(req.path)
            req.path, req.mount_path = inner, mount_path
            req.mount_type, req.mount_accessor = mount_type, accessor
        try:
            await self.audit.log_request(req, None, error)
            await self.audit.log_response(req, None, None, error)
        except AuditFailed as exc:
            log.error("failed to audit a refused request to %s: %s",
                      req.mount_path + req.path, exc)

    async def handle(self, req: Request, path: str) -> Response | None:
        """Run one logical request (`path` is everything after /v1/).

        As the active node (DESIGN §4, §7): nothing is answered once the lock is no longer
        confirmed (`ha.serving`) — checked before and after the request, so a process paused
        mid-request does not acknowledge it after resuming — and a fence error deposes the
        node at once (`ha.deposed`), so cached encrypts stop with the writes."""
        ha = self.ha
        if ha is None:
            return await self._handle(req, path)
        epoch = None
        if ha.state == "active":
            if not ha.serving:
                ha.deposed("lock not confirmed within ttl - margin")
                raise Fenced(NOT_ACTIVE)
            epoch = ha.epoch
        try:
            resp = await self._handle(req, path)
        except Fenced:
            ha.deposed("a storage write was fenced")
            raise
        if epoch is not None and path not in _GIVES_UP_THE_LOCK and (
                not ha.serving or ha.epoch != epoch):
            ha.deposed("lock not confirmed within ttl - margin")
            raise Fenced(NOT_ACTIVE)
        return resp

    async def _handle(self, req: Request, path: str) -> Response | None:
        if self.barrier.sealed:
            raise Sealed()
        if path == "sys/seal" and self.standby:  # never forwarded (spec ha-and-sys §1.7)
            raise StandbyError("vault cannot seal when in standby mode; please restart instead")
        token = None
        if path in WRAPPING_PATHS:
            token = await self.wrapping.check_request(req)
        if token is None and req.client_token:
            # the HTTP layer may have looked it up already, before decoding the body
            token = req.token or await self.tokens.lookup(req.client_token)
        self_checked = path.startswith(SELF_CHECKED)
        open_path = path in UNAUTHENTICATED or self_checked
        if token is None and not open_path:
            await self.audit_refused(req)
            raise PermissionDenied()
        req.token = token
        try:
            engine, inner, storage, mount_path, mount_type, accessor = self.route(path)
        except NoHandler:
            if self.ha is None:
                raise
            # Another process of the cluster may have just mounted it and our invalidation
            # feed is behind (a loaded machine): check the stored table before saying 404.
            if not await self.mounts.changed():
                raise
            await self.reload_mounts()
            engine, inner, storage, mount_path, mount_type, accessor = self.route(path)
        req.path, req.storage, req.mount_path = inner, storage, mount_path
        req.mount_type, req.mount_accessor = mount_type, accessor
        req.perf_standby = self.perf_standby
        if req.operation == "list" and not inner.endswith("/"):
            req.path = inner = inner + "/"
        full_path = mount_path + inner
        if req.operation is UPDATE and not await engine.exists(req):
            req.operation = CREATE

        wrap_header = req.headers.get("x-vault-wrap-ttl")
        wrap_ttl = parse_wrap_ttl(wrap_header) if wrap_header else 0
        if token is None or self_checked:  # an unauthenticated path
            decision = OPEN_DECISION
        else:
            acl = await self.policies.acl_for(token.policies)
            decision = acl.allowed(full_path, req.operation, req.data, wrap_ttl)
        audit = self.audit.enabled
        if not decision.allowed or (
            requires_sudo(full_path, req.operation) and not decision.sudo
        ):
            if token is not None and token.num_uses:
                await self.tokens.use(token)  # as Vault: a refused request spends a use too
            if audit:
                await self.audit.log_request(req, decision)
                await self.audit.log_response(req, decision, None, "permission denied")
            raise PermissionDenied()

        if audit:
            await self.audit.log_request(req, decision)
        index_before = getattr(self.physical, "last_index", 0)
        if token is not None and token.num_uses:
            await self.tokens.use(token)  # before the handler, so a use is spent only once
        try:
            resp = await engine.handle(req)
            if resp is not None and resp.lease_duration == MOUNT_DEFAULT_TTL:
                resp.lease_duration = self.default_lease_ttl(mount_path)
        except ForwardToActive:
            raise  # not an outcome here: the active node handles and audits the request
        except TransitError as exc:
            if audit:
                await self.audit.log_response(req, decision, None, exc.message)
            raise
        index_after = getattr(self.physical, "last_index", 0)
        if index_after > index_before:
            req.index_header = self.index_header()
            if self.shared_writes and self.relay is not None:
                # Read-your-writes across the workers of this node: answer once every
                # sibling's invalidation feed has applied this write (transit/workers.py).
                await self.relay("index", {"index": index_after})
        if wrap_ttl and resp is not None:
            resp = await self.wrapping.wrap(resp, wrap_ttl, req)
        if audit:
            await self.audit.log_response(req, decision, resp, "")
        return resp
