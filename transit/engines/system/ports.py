"""What the system engine may ask of the node it serves: the `NodeControl` port.

`sys/*` handlers seal the node, step it down, read its HA status, and manage its mounts,
audit devices, ACL policies, quotas and wrapping tokens. They get exactly that surface, not
the node: `transit.core.Core` satisfies `NodeControl` structurally (nothing here imports it),
and unit tests pass a small fake. Every member is read-only so that the node's own, wider
types (`HAController`, a worker's seal) still satisfy it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from transit.acl.store import AclPolicyStore
    from transit.audit.broker import AuditBroker
    from transit.barrier import Barrier
    from transit.engines.framework import Engine
    from transit.engines.mounts import MountTable
    from transit.lockout import Lockout
    from transit.quotas import QuotaStore
    from transit.seal.manager import SealManager
    from transit.storage import Backend
    from transit.tokens.store import TokenStore
    from transit.tokens.wrapping import Wrapper

# (engine, path inside it, storage, mount path, mount type, mount accessor): `NodeControl.route`
Routed = tuple["Engine", str, Any, str, str, str]
# Tells the node's sibling worker processes about an event (kind, payload).
Relay = Callable[[str, dict[str, Any]], Awaitable[None]]


class HARole(Protocol):
    """The node's HA role as `sys/step-down`, `sys/ha-status` and rekey see it."""

    @property
    def is_active(self) -> bool: ...

    @property
    def epoch(self) -> int | None: ...

    async def step_down(self, *, wait: bool = True) -> None: ...


class NodeControl(Protocol):
    """The node as the system engine's handlers (and the raw rekey/generate-root handlers)
    use it."""

    # -- seal and HA ---------------------------------------------------------------------
    @property
    def sealed(self) -> bool: ...

    @property
    def standby(self) -> bool: ...

    @property
    def ha(self) -> HARole | None: ...

    @property
    def seal(self) -> SealManager: ...

    @property
    def barrier(self) -> Barrier: ...

    @property
    def physical(self) -> Backend: ...

    async def pre_seal(self) -> None:
        """Give up the HA lock and drop everything decrypted (before `seal.seal()`)."""

    # -- who this node is (sys/ha-status) ------------------------------------------------
    @property
    def node_id(self) -> str: ...

    @property
    def api_addr(self) -> str: ...

    @property
    def cluster_addr(self) -> str: ...

    @property
    def echoes(self) -> dict[str, dict[str, Any]]: ...

    @property
    def relay(self) -> Relay | None: ...

    # -- what lives behind the barrier ---------------------------------------------------
    @property
    def mounts(self) -> MountTable:
        """Replaced on seal: read it per request, never cache it."""

    @property
    def auth_mounts(self) -> MountTable:
        """The auth method table (`core/auth`); replaced on seal like `mounts`."""

    @property
    def lockout(self) -> Lockout:
        """Failed-login counters and locked users (transit/lockout.py)."""

    async def revoke_mount_tokens(self, mount_path: str) -> int:
        """Revoke every token issued through the auth mount at `mount_path` (`auth/x/`)."""

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def policies(self) -> AclPolicyStore: ...

    @property
    def audit(self) -> AuditBroker: ...

    @property
    def quotas(self) -> QuotaStore: ...

    @property
    def wrapping(self) -> Wrapper: ...

    def route(self, path: str) -> Routed:
        """Where a full path (after /v1/) goes; raises NoHandler."""
