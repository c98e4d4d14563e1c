"""What the cluster code may ask of the node it runs in: narrow ports, not the whole `Core`.

Each protocol lists exactly what one part of `cluster/` uses of the node; `transit.core.Core`
satisfies every one structurally (nothing here imports it), and unit tests pass small fakes.
Members are read-only properties where the code only reads, so that the node's own, wider
types still satisfy them (as `transit/engines/system/ports.py` NodeControl does).

- `RoleNode`: the HA controller and its follower (transit/cluster/ha.py, follower.py) switch
  the node's role and read the leader's advertisement through the barrier.
- `CacheNode`: invalidation (transit/cluster/invalidate.py) drops or reloads the node's caches.
- `SiblingNode`: a worker's sibling link (transit/cluster/siblings.py) applies its siblings'
  events (init, unseal, seal, step-down, echo, keyring) and answers their calls (NodeControl).
- `RoleHost` and `StateLoader`: the node's HA role switch (transit/cluster/roles.py
  `NodeRoles`, a component `Core` owns) reads and sets the node's role state through
  `RoleHost`, and loads or drops what lives behind the barrier through `StateLoader`
  (transit/lifecycle.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from transit.engines.system.ports import NodeControl

if TYPE_CHECKING:
    from transit.acl.store import AclPolicyStore
    from transit.audit.broker import AuditBroker
    from transit.barrier import Barrier
    from transit.cluster.advert import LeaderRecord
    from transit.cluster.forward import Forwarder
    from transit.cluster.identity import ClusterInfo
    from transit.cluster.invalidation import InvalidationSubscriber
    from transit.engines.mounts import MountTable
    from transit.engines.system.ports import Relay
    from transit.quotas import QuotaStore
    from transit.storage.base import Versioned
    from transit.tokens.store import TokenStore


class VersionedReader(Protocol):
    """The barrier as the HA controller reads the leader's advertisement."""

    async def get_versioned(self, key: str) -> Versioned: ...


class RoleNode(Protocol):
    """The node as the HA controller (and a sibling worker's follower) drive it."""

    @property
    def sealed(self) -> bool: ...

    @property
    def barrier(self) -> VersionedReader: ...

    async def become_active(self, record: LeaderRecord | None) -> None:
        """Take the active role (the lock is held and writes are fenced by now)."""

    async def become_standby(self) -> None:
        """Leave active duty (lock lost, step-down, seal)."""


class CacheNode(Protocol):
    """The node's caches as invalidation sees them. Optional members, read with `getattr`
    (fakes of older tests leave them out): `identity`, `auth_mounts`, `reload_mounts`."""

    @property
    def sealed(self) -> bool: ...

    @property
    def barrier(self) -> Barrier: ...

    @property
    def mounts(self) -> MountTable: ...

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def policies(self) -> AclPolicyStore: ...

    @property
    def audit(self) -> AuditBroker: ...

    @property
    def quotas(self) -> QuotaStore: ...


class SiblingNode(NodeControl, Protocol):
    """The node as its sibling worker processes reach it (plus NodeControl for their calls:
    rekey and root-generation steps run on worker 0)."""

    initialized: bool  # set once a sibling initialized or unsealed the shared storage

    @property
    def invalidator(self) -> InvalidationSubscriber | None: ...

    @property
    def index_wait(self) -> float: ...

    async def post_unseal(self) -> None: ...

    async def pre_seal_local(self) -> None: ...

    def record_echo(self, info: dict[str, Any], now: float, *, relayed: bool = False) -> None: ...

    def storage_back(self) -> None: ...


class HAControl(Protocol):
    """The node's HA controller (transit/cluster/ha.py, or a worker's follower) as the role
    switch and the lifecycle drive it."""

    @property
    def is_active(self) -> bool: ...

    def start(self) -> None: ...

    async def stop(self, timeout: float = 10.0) -> None: ...

    async def leader(self) -> LeaderRecord | None: ...


class StateLoader(Protocol):
    """What lives behind the barrier, as a role switch loads and drops it
    (transit/lifecycle.py `StateLoader`)."""

    async def load(self, *, create: bool = True) -> None:
        """Load it; `create` (the active node) makes what is missing, else StorageError."""

    async def unload(self) -> None:
        """Forget every decrypted thing in memory (engines, caches)."""


class RoleHost(CacheNode, Protocol):
    """The node as its HA role switch (transit/cluster/roles.py `NodeRoles`) sees it: the
    role state it reads and sets, and the caches invalidation drops (`CacheNode`)."""

    node_id: str
    api_addr: str
    cluster_addr: str
    perf_standby_enabled: bool
    perf_loaded: bool  # the performance standby state is loaded (set on load, drop, activate)
    shared_writes: bool
    invalidator: InvalidationSubscriber | None
    index_hmac_key: bytes | None  # authenticates X-Vault-Index values (`_load` reads it)

    @property
    def physical(self) -> Any:
        """The storage backend; its HA extras (read_from_replica, check_persistence,
        write_index, primary_address, connection) are read by name where configured."""

    @property
    def ha(self) -> HAControl | None: ...

    @property
    def forwarder(self) -> Forwarder | None: ...

    @property
    def cluster(self) -> ClusterInfo: ...

    @property
    def echoes(self) -> dict[str, dict[str, Any]]: ...

    @property
    def relay(self) -> Relay | None: ...

    @property
    def index_wait(self) -> float: ...

    @property
    def storage_problem(self) -> str: ...

    @property
    def standby(self) -> bool: ...

    @property
    def perf_standby(self) -> bool: ...
