"""One node's state and the components that own its concerns besides the request pipeline
(transit/core.py `Core`, which is this node plus its pipeline).

`Node` holds the node's state, set here once, and owns its components, each given a narrow
view of the node (transit/ports.py, transit/cluster/ports.py) or just the stores it needs:
`loader` and `lifecycle` (transit/lifecycle.py: what lives behind the barrier; start, init,
unseal, seal, periodic tasks), `roles` (transit/cluster/roles.py: HA role switching, the
invalidation feed, echoes, X-Vault-Index) and `login` (transit/login.py: login paths and the
tokens logins create). The methods below the state are the node's surface that the API, the
system engine and sibling workers call through their ports; most delegate to a component.
"""

from __future__ import annotations

from typing import Any

from transit.acl.store import AclPolicyStore
from transit.audit.broker import AuditBroker
from transit.barrier import Barrier
from transit.cluster.forward import Forwarder
from transit.cluster.ha import HAController
from transit.cluster.identity import ClusterInfo
from transit.cluster.invalidation import InvalidationSubscriber
from transit.cluster.roles import HaOptions, NodeRoles
from transit.engines.framework import Engine
from transit.engines.identity.backend import IdentityBackend
from transit.engines.mounts import AUTH, MountTable
from transit.engines.system.backend import SystemBackend
from transit.engines.system.ports import Relay
from transit.engines.token.backend import TokenBackend
from transit.errors import NoHandler
from transit.identity.store import IdentityStore
from transit.lifecycle import AUTH_FACTORIES, ENGINE_FACTORIES, NodeLifecycle, StateLoader
from transit.lockout import Lockout
from transit.login import AUTH_PREFIX, TOKEN_MOUNT, NodeLogin
from transit.quotas import QuotaStore
from transit.seal.manager import SealManager
from transit.storage import Backend, StorageView
from transit.tokens.store import TokenStore
from transit.tokens.wrapping import Wrapper

TOKEN_ACCESSOR = "auth_token_00000000"
# -- identity (issue 17) ---------------------------------------------------------------------
IDENTITY_MOUNT = "identity/"
IDENTITY_ACCESSOR = "identity_00000000"
IDENTITY_STORAGE = "sys/identity/"  # the identity store's corner of the barrier


class Node:
    """One node: its state, set here once; its components; its surface for the ports."""

    def __init__(
        self, physical: Backend, *, storage_type: str = "inmem", cluster_name: str = "",
        static_seal_key: bytes | None = None,
    ) -> None:
        self.physical = physical
        self.storage_type = storage_type
        self.barrier = Barrier(physical)
        self.seal = SealManager(physical, self.barrier, static_key=static_seal_key)
        self.mounts = MountTable(self.barrier, ENGINE_FACTORIES)
        self.auth_mounts = MountTable(self.barrier, AUTH_FACTORIES, AUTH)  # core/auth
        self.lockout = Lockout(self.barrier)  # failed-login counters (transit/lockout.py)
        self.tokens = TokenStore(StorageView(self.barrier, "sys/token/"))
        self.policies = AclPolicyStore(StorageView(self.barrier, "sys/policy/"))
        self.audit = AuditBroker(StorageView(self.barrier, ""))
        self.quotas = QuotaStore(StorageView(self.barrier, ""))
        self.wrapping = Wrapper(self.tokens, StorageView(self.barrier, "sys/wrapping/"))
        self.system = SystemBackend(self)
        self.token_backend = TokenBackend(self.tokens, self.policies)
        # -- identity (issue 17): the store, its engine at identity/, identity-aware ACLs
        self.identity = IdentityStore(StorageView(self.barrier, IDENTITY_STORAGE),
                                      mounts=self.identity_mount)
        self.identity_backend = IdentityBackend(self.identity)
        self.policies.identity = self.identity
        self.token_backend.identity = self.identity  # token roles' entity_alias
        self.cluster = ClusterInfo(name=cluster_name) if cluster_name else ClusterInfo()
        self.initialized = False
        # Set while start-up waits for storage it cannot reach yet (shown by sys/health).
        self.storage_problem = ""
        # -- HA (set by `enable_ha`; the role switch, `roles`, keeps the role state)
        self.ha: HAController | None = None
        self.forwarder: Forwarder | None = None
        self.node_id = ""
        self.api_addr = ""
        self.cluster_addr = ""
        self.echoes: dict[str, dict[str, Any]] = {}
        self.perf_standby_enabled = False
        self.perf_loaded = False  # the performance standby state is loaded
        self.invalidator: InvalidationSubscriber | None = None
        # Several worker processes per node (transit/workers.py): the siblings of the active
        # worker write too, so every worker keeps an invalidation feed in both roles.
        self.shared_writes = False
        # Tells the node's sibling workers about init/seal/echo (set by transit/workers.py).
        self.relay: Relay | None = None
        self.index_wait = 2.0  # how long a standby waits for a client's X-Vault-Index
        self.index_hmac_key: bytes | None = None  # authenticates X-Vault-Index values
        # -- the components, each over a narrow view of this node
        self.loader = StateLoader(self)
        self.roles = NodeRoles(self, self.loader)
        self.lifecycle = NodeLifecycle(self, self.loader, self.roles)
        self.login = NodeLogin(self, self.tokens, self.lockout, self.identity)
        self.tokens.login_renewer = self.login.renew_login  # auth methods' renewal checks

    @property
    def sealed(self) -> bool:
        return self.barrier.sealed

    @property
    def standby(self) -> bool:
        return self.ha is not None and not self.sealed and not self.ha.is_active

    @property
    def perf_standby(self) -> bool:
        """A standby that serves reads, encrypt and decrypt itself (DESIGN §5), while its
        caches are fresh (bounded staleness: transit/cluster/invalidation.py). Read on every
        request: kept here, over the node's own state."""
        if not (self.perf_standby_enabled and self.perf_loaded and self.standby):
            return False
        feed = self.invalidator
        return feed is None or feed.fresh

    # -- the node's surface: what the API, the system engine and sibling workers call ------
    def enable_ha(self, backend: Any, options: HaOptions) -> None:
        """Make this node one of an HA cluster over `backend` (`NodeRoles.enable_ha`)."""
        self.ha, self.forwarder = self.roles.enable_ha(backend, options)

    async def start(self) -> None:
        await self.lifecycle.start()

    async def setup_dev(self, root_token: str = "") -> tuple[str, bytes]:
        return await self.lifecycle.setup_dev(root_token)

    async def initialize(self, shares: int, threshold: int) -> dict[str, Any]:
        return await self.lifecycle.initialize(shares, threshold)

    async def post_unseal(self) -> None:
        await self.lifecycle.post_unseal()

    async def pre_seal(self) -> None:
        await self.lifecycle.pre_seal()

    async def pre_seal_local(self) -> None:
        await self.lifecycle.pre_seal_local()

    def storage_back(self) -> None:
        self.lifecycle.storage_back()

    async def reload_mounts(self) -> None:
        await self.loader.reload_mounts()

    @property
    def serving_problem(self) -> str:
        return self.roles.serving_problem

    def record_echo(self, info: dict[str, Any], now: float, *, relayed: bool = False) -> None:
        self.roles.record_echo(info, now, relayed=relayed)

    async def index_reached(self, header_values: list[str]) -> bool:
        return await self.roles.index_reached(header_values)

    async def revoke_mount_tokens(self, mount_path: str) -> int:
        """Revoke every token issued through an auth mount (`auth/<path>/`); their children
        go with them. Returns how many were revoked."""
        return await self.tokens.revoke_path_prefix(mount_path)

    # -- mounts: TTL defaults and accessors ------------------------------------------------
    def default_lease_ttl(self, mount_path: str) -> int:
        """The mount's tuned default_lease_ttl, else the server's (config `default_lease_ttl`)."""
        entry = self.mounts.get(mount_path)
        tuned = entry.config.get("default_lease_ttl") if entry is not None else 0
        return int(tuned or self.tokens.default_lease_ttl)

    def max_lease_ttl(self, mount_path: str) -> int:
        """The mount's tuned max_lease_ttl (a secret or an `auth/` mount), else the server's."""
        if mount_path.startswith(AUTH_PREFIX):
            entry = self.auth_mounts.get(mount_path[len(AUTH_PREFIX):])
        else:
            entry = self.mounts.get(mount_path)
        tuned = entry.config.get("max_lease_ttl") if entry is not None else 0
        return int(tuned or self.tokens.max_lease_ttl)

    def identity_mount(self, accessor: str) -> tuple[str, str, bool] | None:
        """(path, type, local) of the mount with `accessor` (identity aliases name their
        mount by accessor; issue 17), None when there is none."""
        if accessor == TOKEN_ACCESSOR:
            return TOKEN_MOUNT, "token", False
        for entry in self.mounts.entries():
            if entry.accessor == accessor:
                return entry.path, entry.type, entry.local
        for entry in self.auth_mounts.entries():
            if entry.accessor == accessor:
                return AUTH_PREFIX + entry.path, entry.type, entry.local
        return None

    # -- where a path goes: the pipeline routes once (transit/core.py) ---------------------
    def route(self, path: str) -> tuple[Engine, str, Any, str, str, str]:
        """(engine, path inside it, storage, mount path, mount type, mount accessor)."""
        if path.startswith("sys/") or path == "sys":
            return self.system, path[4:], None, "sys/", "system", "system_00000000"
        if path.startswith(TOKEN_MOUNT) or path == TOKEN_MOUNT[:-1]:
            return (self.token_backend, path[len(TOKEN_MOUNT):], None, TOKEN_MOUNT, "token",
                    "auth_token_00000000")
        if path.startswith(IDENTITY_MOUNT) or path == IDENTITY_MOUNT[:-1]:  # issue 17
            return (self.identity_backend, path[len(IDENTITY_MOUNT):], None, IDENTITY_MOUNT,
                    "identity", IDENTITY_ACCESSOR)
        if path.startswith(AUTH_PREFIX):  # auth methods: longest prefix over core/auth
            routed = self.auth_mounts.route(path[len(AUTH_PREFIX):])
            prefix = AUTH_PREFIX
        else:
            routed = self.mounts.route(path)
            prefix = ""
        if routed is None:
            raise NoHandler(f'no handler for route "{path}". route entry not found.')
        entry, inner = routed
        assert entry.engine is not None  # the table indexes entries once their engine is set up
        return (entry.engine, inner, entry.storage, prefix + entry.path, entry.type,
                entry.accessor)
