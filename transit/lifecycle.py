"""The lifecycle of one node: start (waiting for storage, auto-unseal), `sys/init`, dev
mode, unseal and seal, loading and dropping what lives behind the barrier, and the periodic
tasks (engines' auto-rotation, token expiration).

Two components `transit.core.Core` owns, each over a narrow view of the node
(transit/ports.py): `StateLoader` (`core.loader`) loads and drops what lives behind the
barrier; `NodeLifecycle` (`core.lifecycle`) starts, initialises, unseals and seals the node.
After unseal an HA node enters the standby role (`transit/cluster/roles.py` `NodeRoles`,
which loads and drops state through the same `StateLoader`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from transit.cluster.activeterm import FENCE_CLOSED
from transit.cluster.consistency import index_key
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
    from transit.cluster.roles import NodeRoles
    from transit.ports import LifecycleNode, LoaderNode

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


class StateLoader:
    """Loads and drops what lives behind the barrier (a component of `Core`): the lifecycle
    and the HA role switch (`transit.cluster.ports.StateLoader`) both go through it."""

    def __init__(self, node: LoaderNode) -> None:
        self.node = node
        # What `load(create=True)` mounts on a node that has no mounts yet (dev mode).
        self.default_mounts: list[tuple[str, str, str, dict[str, Any] | None]] = []

    async def load(self, *, create: bool = True) -> None:
        """Load what lives behind the barrier. `create` (the active node, `sys/init`): make
        what is missing (salts, built-in policies, cluster identity, default mounts).
        Without it (a standby, or a worker following the active role) nothing is written:
        whatever is missing is a StorageError — not replicated here yet — and the caller
        waits and retries."""
        node = self.node
        await self._load_cluster_identity(create=create)
        node.identity.unload()  # issue 17: loaded again on first use
        await node.tokens.setup(create=create)
        if create:
            await node.policies.setup()
        else:
            for name in BUILTIN_POLICIES:
                if await node.barrier.get(POLICY_PREFIX + name) is None:
                    raise StorageError(f"the {name!r} policy has not reached this node's "
                                       "storage yet")
            node.policies.invalidate()
        await node.mounts.load([])
        await node.auth_mounts.load([])
        if create and not node.mounts.entries():
            for path, typ, description, options in self.default_mounts:
                await node.mounts.mount(path, typ, description=description, options=options)
        # tuned audit_non_hmac_* keys live on mount entries
        node.audit.mounts = AllMounts(node.mounts, node.auth_mounts)
        await node.audit.setup(create=create)
        await node.quotas.load()

    async def reload_mounts(self) -> None:
        """Re-read the mount tables (`core/mounts` or `core/auth` changed on another worker
        or node)."""
        node = self.node
        await node.mounts.load([], keep_engines=True)
        await node.auth_mounts.load([], keep_engines=True)
        node.audit.mounts = AllMounts(node.mounts, node.auth_mounts)

    async def _load_cluster_identity(self, *, create: bool = True) -> None:
        """Cluster name and id are shared by every node (`core/cluster/local/info`), as is
        the key that authenticates X-Vault-Index values."""
        node = self.node
        barrier, cluster = node.barrier, node.cluster
        raw = await barrier.get(CLUSTER_INFO_KEY)
        if raw is None and create and not barrier.read_only:
            # first activation (or sys/init): once, cluster-wide
            raw = await get_or_create(barrier, CLUSTER_INFO_KEY, lambda: orjson.dumps(
                {"name": cluster.name, "id": cluster.id}))
        if raw is None and not create:
            raise StorageError(f"the cluster identity ({CLUSTER_INFO_KEY}) has not reached "
                               "this node's storage yet")
        if raw is not None:
            info = orjson.loads(raw)
            cluster.name, cluster.id = info["name"], info["id"]
        if hasattr(node.physical, "last_index"):
            try:
                node.index_hmac_key = await index_key(barrier)
            except TransitError:  # a standby whose replica has not got it yet
                node.index_hmac_key = None

    async def unload(self) -> None:
        """Forget every decrypted thing in memory: caches, audit devices, mount engines."""
        node = self.node
        node.perf_loaded = False
        node.tokens.invalidate()
        node.policies.invalidate()
        node.identity.unload()  # issue 17
        node.audit.teardown()
        node.quotas.clear()
        node.mounts = MountTable(node.barrier, ENGINE_FACTORIES)  # drops engines and caches
        node.auth_mounts = MountTable(node.barrier, AUTH_FACTORIES, AUTH)


class NodeLifecycle:
    """Start, init, unseal, seal and periodic tasks (a component of `Core`)."""

    def __init__(self, node: LifecycleNode, loader: StateLoader, roles: NodeRoles) -> None:
        self.node = node
        self.loader = loader
        self.roles = roles
        self._storage_back = asyncio.Event()
        self._background: set[asyncio.Future[Any]] = set()

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
        node = self.node
        node.initialized = await node.barrier.initialized()
        node.storage_problem = ""
        if node.initialized and node.seal.auto:
            if node.sealed:
                await node.seal.auto_unseal()
            await self.post_unseal()
        elif not node.initialized and node.seal.auto and node.ha is not None:
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
            log.info("storage reachable: start-up of node %s continues", self.node.node_id)
            await self._relay("storage-back", {})
            return

    def storage_back(self) -> None:
        """A sibling worker reached storage: retry start-up now, not at the next backoff."""
        self._storage_back.set()

    def _note_storage_problem(self, exc: Exception) -> None:
        problem = f"storage unreachable at start-up, retrying: {exc}"
        if problem != self.node.storage_problem:
            log.warning("%s", problem)
        self.node.storage_problem = problem

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _auto_unseal_once_initialized(self, interval: float = AUTO_UNSEAL_POLL) -> None:
        node = self.node
        seal = getattr(node.seal, "inner", node.seal)  # each worker process polls for itself
        while node.sealed:
            await asyncio.sleep(interval)
            if not node.sealed:
                return
            try:
                if not await node.barrier.initialized():
                    continue
                node.initialized = True
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
        node = self.node
        if await node.barrier.initialized():
            raise UserError("Vault is already initialized")
        keys, _root_key = await node.seal.initialize(shares, threshold)
        log.info("security barrier initialized: shares=%d threshold=%d", shares, threshold)
        await self.loader.load()
        root = await node.tokens.create_root()
        node.initialized = True
        await self.loader.unload()
        if node.seal.auto:
            await self.post_unseal()
        else:
            node.seal.seal()
        await self._relay("init", {})
        return {
            "keys": [k.hex() for k in keys],
            "keys_base64": [base64.b64encode(k).decode() for k in keys],
            "root_token": root.id,
        }

    async def setup_dev(self, root_token: str = "") -> tuple[str, bytes]:
        """Dev mode: initialised with one unseal key, unsealed, transit at `transit/` and
        KV v2 at `secret/`. Returns (root token, unseal key)."""
        node = self.node
        self.loader.default_mounts = [
            ("transit/", "transit", "", None),
            ("secret/", "kv", "key/value secret storage", {"version": "2"}),
        ]
        keys, _root_key = await node.seal.initialize(1, 1)
        await self.loader.load()
        root = await node.tokens.create_root(root_token)
        node.initialized = True
        return root.id, keys[0]

    async def post_unseal(self) -> None:
        """After unseal: a single node serves at once; an HA node starts as a (performance)
        standby and competes for the lock (the controller calls `become_active`)."""
        node = self.node
        log.info("vault is unsealed (%s)", "static seal" if node.seal.auto else "key shares")
        ha = node.ha
        if ha is None:
            await self.loader.load()
        else:
            # From now on this node writes only while it holds the lock (the controller opens
            # the fence with its epoch). Before unseal it may write unfenced: `sys/init`.
            node.physical.fence = FENCE_CLOSED
            try:
                await self.roles.enter_standby()
            finally:  # whatever loading did, this node competes and forwards
                ha.start()
            log.info("node %s entered standby mode%s", node.node_id,
                     " (performance standby)" if node.perf_loaded else "")

    async def pre_seal(self) -> None:
        """Before sealing: give up the HA lock and forget every decrypted thing in memory;
        the node's other worker processes seal too."""
        log.info("sealing the node (sys/seal)")
        await self.pre_seal_local()
        await self._relay("seal", {})

    async def pre_seal_local(self) -> None:
        """`pre_seal` of this process only."""
        await self.roles.leave_for_seal()
        await self.loader.unload()

    async def _relay(self, kind: str, payload: dict[str, Any]) -> None:
        relay = self.node.relay
        if relay is not None:
            await relay(kind, payload)

    async def run_periodic(self, interval: float = 60.0) -> None:
        """Call every mounted engine's `periodic()` (transit's auto-rotation, AppRole's
        secret-ID tidy) forever, and beside it run the token expiration manager: both only
        while this node is the active one (they write; a standby's writes would only fail)."""
        node = self.node

        def writable() -> bool:
            return (not node.sealed and not node.barrier.read_only
                    and (node.ha is None or node.ha.is_active))

        expiration = asyncio.ensure_future(ExpirationManager(node.tokens).run(writable))
        try:
            while True:
                await asyncio.sleep(interval)
                if not writable():
                    continue
                for entry in [*node.mounts.entries(), *node.auth_mounts.entries()]:
                    if entry.engine is None:
                        continue
                    try:
                        await entry.engine.periodic()
                    except Exception:
                        log.exception("periodic task of mount %s failed", entry.path)
        finally:
            expiration.cancel()
