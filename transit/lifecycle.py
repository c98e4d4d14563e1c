"""The lifecycle of one node: start (waiting for storage, auto-unseal), `sys/init`, dev
mode, unseal and seal, loading and dropping what lives behind the barrier, and the periodic
tasks (engines' auto-rotation, token expiration).

`NodeLifecycle` is a mixin of `transit.core.Core`, over the node's one set of state (declared
below for type checkers; `Core.__init__` sets it). After unseal an HA node enters the standby
role (`transit/cluster/roles.py`), which calls back into `_load` / `_unload` here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any

import orjson

from transit.cluster.consistency import index_key
from transit.cluster.ha import FENCE_CLOSED
from transit.engines.approle import approle_factory
from transit.engines.cert import cert_factory
from transit.engines.jwt import jwt_factory, oidc_factory
from transit.engines.kv import kv_factory
from transit.engines.mounts import AUTH, EngineFactory, MountTable
from transit.engines.transit.backend import TransitBackend
from transit.engines.userpass import userpass_factory
from transit.errors import StorageError, TransitError, UserError
from transit.storage.update import get_or_create
from transit.tokens.expiration import ExpirationManager

if TYPE_CHECKING:
    from transit.acl.store import AclPolicyStore
    from transit.audit.broker import AuditBroker
    from transit.barrier import Barrier
    from transit.cluster.ha import HAController
    from transit.cluster.identity import ClusterInfo
    from transit.cluster.invalidation import InvalidationSubscriber
    from transit.identity.store import IdentityStore
    from transit.quotas import QuotaStore
    from transit.seal import SealManager
    from transit.tokens.store import TokenStore

log = logging.getLogger("transit.core")  # the node's one logger, as before the split

ENGINE_FACTORIES: dict[str, EngineFactory] = {
    "transit": TransitBackend,
    "kv": kv_factory,
    "generic": kv_factory,
}

# Auth methods by type (`sys/auth` enable). `token` is built in, never in this table.
AUTH_FACTORIES: dict[str, EngineFactory] = {
    "approle": approle_factory,
    "userpass": userpass_factory,
    "jwt": jwt_factory,
    "oidc": oidc_factory,  # Vault's one plugin under both names (JWT mode only here)
    "cert": cert_factory,
}

CLUSTER_INFO_KEY = "core/cluster/local/info"
POLICY_PREFIX = "sys/policy/"
BUILTIN_POLICIES = ("default", "response-wrapping")  # made by the active node (`_load`)
AUTO_UNSEAL_POLL = 0.25  # an uninitialised node with a static seal looks this often


class AllMounts:
    """Both mount tables as one `.get(mount_path)` (the audit broker's view: tuned
    audit_non_hmac_* keys of secret and auth mounts; auth mount paths start with `auth/`)."""

    def __init__(self, mounts: MountTable, auth_mounts: MountTable) -> None:
        self.mounts, self.auth_mounts = mounts, auth_mounts

    def get(self, path: str) -> Any:
        if path.startswith("auth/"):
            return self.auth_mounts.get(path[len("auth/"):])
        return self.mounts.get(path)


class NodeLifecycle:
    """Start, init, unseal, seal, load and unload, periodic tasks (a mixin of `Core`)."""

    if TYPE_CHECKING:
        physical: Any
        barrier: Barrier
        seal: SealManager
        mounts: MountTable
        auth_mounts: MountTable
        tokens: TokenStore
        policies: AclPolicyStore
        identity: IdentityStore
        audit: AuditBroker
        quotas: QuotaStore
        cluster: ClusterInfo
        initialized: bool
        ha: HAController | None
        invalidator: InvalidationSubscriber | None
        node_id: str
        storage_problem: str
        relay: Any
        default_mounts: list[tuple[str, str, str, dict[str, Any] | None]]
        _storage_back: asyncio.Event
        _background: set[asyncio.Future[None]]
        _perf_loaded: bool
        _sealing: bool
        _index_key: bytes | None

        @property
        def sealed(self) -> bool: ...
        async def _enter_standby(self) -> None: ...
        async def _stop_standby_retry(self) -> None: ...

    # -- start, init, unseal, seal --------------------------------------------------------------------------
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

    # -- loading and unloading what lives behind the barrier --------------------------------
    async def _load(self, *, create: bool = True) -> None:
        """Load what lives behind the barrier. `create` (the active node, `sys/init`): make
        what is missing (salts, built-in policies, cluster identity, default mounts).
        Without it (a standby, or a worker following the active role) nothing is written:
        whatever is missing is a StorageError — not replicated here yet — and the caller
        waits and retries."""
        await self._load_cluster_identity(create=create)
        self.identity.unload()  # issue 17: loaded again on first use
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
        await self.auth_mounts.load([])
        if create and not self.mounts.entries():
            for path, typ, description, options in self.default_mounts:
                await self.mounts.mount(path, typ, description=description, options=options)
        # tuned audit_non_hmac_* keys live on mount entries
        self.audit.mounts = AllMounts(self.mounts, self.auth_mounts)
        await self.audit.setup(create=create)
        await self.quotas.load()

    async def reload_mounts(self) -> None:
        """Re-read the mount tables (`core/mounts` or `core/auth` changed on another worker
        or node)."""
        await self.mounts.load([], keep_engines=True)
        await self.auth_mounts.load([], keep_engines=True)
        self.audit.mounts = AllMounts(self.mounts, self.auth_mounts)

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

    async def _unload(self) -> None:
        self._perf_loaded = False
        self.tokens.invalidate()
        self.policies.invalidate()
        self.identity.unload()  # issue 17
        self.audit.teardown()
        self.quotas.clear()
        self.mounts = MountTable(self.barrier, ENGINE_FACTORIES)  # drops engines and caches
        self.auth_mounts = MountTable(self.barrier, AUTH_FACTORIES, AUTH)

    async def run_periodic(self, interval: float = 60.0) -> None:
        """Call every mounted engine's `periodic()` (transit's auto-rotation, AppRole's
        secret-ID tidy) forever, and beside it run the token expiration manager: both only
        while this node is the active one (they write; a standby's writes would only fail)."""

        def writable() -> bool:
            return (not self.sealed and not self.barrier.read_only
                    and (self.ha is None or self.ha.is_active))

        expiration = asyncio.ensure_future(ExpirationManager(self.tokens).run(writable))
        try:
            while True:
                await asyncio.sleep(interval)
                if not writable():
                    continue
                for entry in [*self.mounts.entries(), *self.auth_mounts.entries()]:
                    if entry.engine is None:
                        continue
                    try:
                        await entry.engine.periodic()
                    except Exception:
                        log.exception("periodic task of mount %s failed", entry.path)
        finally:
            expiration.cancel()
