"""What the API's gates may ask of the node: narrow ports, not the whole `Core`.

`transit.core.Core` satisfies both structurally (nothing here imports it); in-process tests
(tests/unit/api) pass the real core with a fake HA controller and forwarder in place. Members
are read-only properties so that the node's wider types (`HAController`, `Forwarder`,
`QuotaStore`) still satisfy them.

- `QuotaNode`: the rate-limit gate (transit/api/quota_gate.py) matches a request's mount
  against the quota rules and audits a refusal.
- `GateNode`: the forwarding gate (transit/api/forwarding.py) reads the node's HA role, sends
  a request to the active node, checks a client's X-Vault-Index, and records an echo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from transit.cluster.advert import LeaderRecord
    from transit.cluster.h1client import Headers
    from transit.engines.system.ports import Routed
    from transit.logical import Request
    from transit.quotas import QuotaStore


class QuotaNode(Protocol):
    @property
    def sealed(self) -> bool: ...

    @property
    def quotas(self) -> QuotaStore: ...

    def route(self, path: str) -> Routed:
        """Where a full path (after /v1/) goes; raises NoHandler."""

    async def audit_refused(self, req: Request, error: str = "permission denied") -> None: ...


class HaView(Protocol):
    """The HA controller as the forwarding gate reads it."""

    @property
    def is_active(self) -> bool: ...

    @property
    def activating(self) -> bool: ...

    async def activated(self) -> None:
        """Wait (bounded) until an activation in progress has finished."""

    async def leader(self) -> LeaderRecord | None: ...

    async def await_leader(self) -> LeaderRecord | None:
        """The leader, waiting (bounded) for the lock holder's advertisement."""

    async def refresh_leader(self) -> LeaderRecord | None:
        """The leader, re-read from storage (the cached one has just failed)."""

    def forget_leader(self) -> None: ...


class ForwardPort(Protocol):
    """The client side of the cluster port (transit/cluster/forward.py Forwarder)."""

    async def forward(self, record: LeaderRecord, method: str, path_qs: str, headers: Headers,
                      body: bytes) -> tuple[int, Headers, bytes]: ...


class GateNode(Protocol):
    @property
    def sealed(self) -> bool: ...

    @property
    def ha(self) -> HaView | None: ...

    @property
    def forwarder(self) -> ForwardPort | None: ...

    @property
    def perf_standby(self) -> bool:
        """A standby that serves reads, encrypt and decrypt itself (fresh caches)."""

    async def index_reached(self, header_values: list[str]) -> bool:
        """Whether this standby's replica has the state a client saw (X-Vault-Index)."""

    def record_echo(self, info: dict[str, Any], now: float, *, relayed: bool = False) -> None:
        """A standby's heartbeat (sys/ha-status)."""
