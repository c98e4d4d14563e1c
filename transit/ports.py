"""What the node's own components may ask of the node: narrow ports, not the whole `Core`.

`transit.core.Core` owns its components and hands each a view of itself typed by one of
these protocols (it satisfies them structurally; nothing here imports it). Plain attributes
are the ones a component sets; read-only properties the ones it only reads, so that the
node's own, wider types still satisfy them (as transit/cluster/ports.py and
transit/engines/system/ports.py do for the cluster code and the system engine).

- `LoaderNode`: the state loader (transit/lifecycle.py `StateLoader`) loads and drops what
  lives behind the barrier: the mount tables (replaced on every drop), the stores' caches,
  the cluster identity and the X-Vault-Index key.
- `LifecycleNode`: the lifecycle (transit/lifecycle.py `NodeLifecycle`) starts, initialises,
  unseals and seals the node and runs its periodic tasks.
- `LoginNode`: logins (transit/login.py `NodeLogin`) find the auth mount a path or a token
  belongs to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from transit.acl.store import AclPolicyStore
    from transit.audit.broker import AuditBroker
    from transit.barrier import Barrier
    from transit.cluster.identity import ClusterInfo
    from transit.cluster.ports import HAControl
    from transit.engines.mounts import MountTable
    from transit.engines.system.ports import Relay
    from transit.identity.store import IdentityStore
    from transit.quotas import QuotaStore
    from transit.seal.manager import SealManager
    from transit.tokens.store import TokenStore


class LoginNode(Protocol):
    @property
    def auth_mounts(self) -> MountTable:
        """The auth method table (`core/auth`); replaced on seal: read it per use."""


class LoaderNode(Protocol):
    mounts: MountTable  # replaced (engines and caches dropped) on every unload
    auth_mounts: MountTable
    perf_loaded: bool  # cleared on unload: a performance standby's state is gone
    index_hmac_key: bytes | None  # authenticates X-Vault-Index values

    @property
    def physical(self) -> Any:
        """The storage backend (`last_index` where it counts writes)."""

    @property
    def barrier(self) -> Barrier: ...

    @property
    def cluster(self) -> ClusterInfo: ...

    @property
    def identity(self) -> IdentityStore: ...

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def policies(self) -> AclPolicyStore: ...

    @property
    def audit(self) -> AuditBroker: ...

    @property
    def quotas(self) -> QuotaStore: ...


class LifecycleNode(Protocol):
    initialized: bool
    storage_problem: str  # why start-up waits for storage ("" once reached)

    @property
    def perf_loaded(self) -> bool:
        """Whether the performance standby state loaded (logged on entering standby)."""

    @property
    def sealed(self) -> bool: ...

    @property
    def physical(self) -> Any:
        """The storage backend (its write fence is closed once an HA node is unsealed)."""

    @property
    def barrier(self) -> Barrier: ...

    @property
    def seal(self) -> SealManager:
        """Read per use: a worker process wraps it (transit/cluster/siblings.py)."""

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def mounts(self) -> MountTable: ...

    @property
    def auth_mounts(self) -> MountTable: ...

    @property
    def ha(self) -> HAControl | None: ...

    @property
    def node_id(self) -> str: ...

    @property
    def relay(self) -> Relay | None: ...
