"""The `sys/` engine's route table (the one visible table of system routes).

Unauthenticated status endpoints that answer raw JSON (health, seal-status, leader, init,
unseal) are served by `transit/api/status.py`; everything here passes the core's pipeline
(token, ACL, audit). Handlers take the node first, as its narrow `NodeControl` port
(`transit/engines/system/ports.py`): this engine never sees the node's class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from transit.engines.framework import Engine, Handler, Route
from transit.engines.system import (
    audit,
    auth,
    ha,
    internal,
    leases,
    mounts,
    operator,
    policies,
    quotas,
    seal,
    wrapping,
)
from transit.engines.transit import tools
from transit.fields import FieldData
from transit.logical import DELETE, LIST, READ, UPDATE, Request, Response

if TYPE_CHECKING:
    from transit.engines.mounts import MountTable
    from transit.engines.system.ports import NodeControl

# A system handler: the node's port first, then the request and its fields.
SystemHandler = Callable[["NodeControl", Request, FieldData], Awaitable[Response | None]]


class SystemBackend(Engine):
    mount_type = "system"

    @property
    def mounts(self) -> MountTable:
        return self.node.mounts  # replaced on seal, so never cached here

    def __init__(self, node: NodeControl) -> None:
        self.node = node
        self.lease_tidy = leases.LeaseTidy()

        def h(fn: SystemHandler) -> Handler:
            return partial(fn, node)

        super().__init__(
            [
                # mounts (spec ha-and-sys §4.8)
                Route(r"mounts/?", {READ: h(mounts.list_mounts)}, {}),
                # an auth mount's tune through sys/mounts (spec auth-api §1.5)
                Route(
                    r"mounts/auth/(?P<path>.+)/tune",
                    {READ: h(auth.read_tune), UPDATE: h(auth.write_tune)},
                    auth.AUTH_TUNE_FIELDS,
                ),
                Route(
                    r"mounts/(?P<path>.+)/tune",
                    {READ: h(mounts.read_tune), UPDATE: h(mounts.write_tune)},
                    mounts.TUNE_FIELDS,
                ),
                Route(
                    r"mounts/(?P<path>.+)",
                    {
                        READ: h(mounts.read_mount),
                        UPDATE: h(mounts.create_mount),
                        DELETE: h(mounts.delete_mount),
                    },
                    mounts.MOUNT_FIELDS,
                ),
                Route(r"remount", {UPDATE: h(mounts.remount)}, mounts.REMOUNT_FIELDS),
                # auth method mounts (spec auth-api §1.1-1.5)
                Route(r"auth/?", {READ: h(auth.list_auth)}, {}),
                Route(r"locked-users/?", {READ: h(auth.list_locked_users)}, {}),
                Route(
                    r"locked-users/(?P<mount_accessor>[^/]+)/unlock/(?P<alias_identifier>.+)",
                    {UPDATE: h(auth.unlock_user)}, auth.UNLOCK_FIELDS,
                ),
                Route(
                    r"auth/(?P<path>.+)/tune",
                    {READ: h(auth.read_tune), UPDATE: h(auth.write_tune)},
                    auth.AUTH_TUNE_FIELDS,
                ),
                Route(
                    r"auth/(?P<path>.+)",
                    {
                        READ: h(auth.read_auth),
                        UPDATE: h(auth.enable_auth),
                        DELETE: h(auth.disable_auth),
                    },
                    auth.ENABLE_FIELDS,
                ),
                Route(
                    r"remount/status/(?P<migration_id>.+)",
                    {READ: h(mounts.remount_status)},
                    mounts.REMOUNT_STATUS_FIELDS,
                ),
                Route(r"internal/ui/mounts/?", {READ: h(internal.list_ui_mounts)}, {}),
                Route(
                    r"internal/ui/mounts/(?P<path>.+)",
                    {READ: h(internal.read_ui_mount)},
                    internal.UI_MOUNT_FIELDS,
                ),
                # seal and barrier keys (§4.6, §5.1)
                Route(r"seal", {UPDATE: h(seal.seal)}, {}),
                Route(r"rotate", {UPDATE: h(seal.rotate)}, {}),
                Route(r"key-status", {READ: h(seal.key_status)}, {}),
                # rekey backup (operations-api §1.6); sys/rekey/{init,update,verify} and
                # sys/generate-root/* are raw handlers (transit/engines/system/operator.py)
                Route(r"rekey/backup",
                      {READ: h(operator.read_backup), DELETE: h(operator.delete_backup)}, {}),
                # telemetry (operations-api §4): the app renders the raw body once the
                # pipeline has passed the read (transit/api/app.py, transit/metrics.py)
                Route(r"metrics", {READ: h(_metrics_read)}, {}),
                Route(r"monitor", {READ: h(_metrics_read)}, {}),  # streamed by the app
                # high availability (§1.6, §4.13)
                Route(r"step-down", {UPDATE: h(ha.step_down)}, {}),
                Route(r"ha-status", {READ: h(ha.ha_status)}, {}),
                # rate-limit quotas (operations-api §7)
                Route(r"quotas/rate-limit/?", {LIST: h(quotas.list_rate_limits)}, {}),
                Route(
                    r"quotas/rate-limit/(?P<name>.+)",
                    {
                        READ: h(quotas.read_rate_limit),
                        UPDATE: h(quotas.write_rate_limit),
                        DELETE: h(quotas.delete_rate_limit),
                    },
                    quotas.RATE_LIMIT_FIELDS,
                ),
                Route(
                    r"quotas/config",
                    {READ: h(quotas.read_config), UPDATE: h(quotas.write_config)},
                    quotas.CONFIG_FIELDS,
                ),
                # ACL policies (§4.9)
                Route(r"policies/acl/?", {LIST: h(policies.list_policies)}, {}),
                Route(
                    r"policies/acl/(?P<name>.+)",
                    {
                        READ: h(policies.read_policy),
                        UPDATE: h(policies.write_policy),
                        DELETE: h(policies.delete_policy),
                    },
                    policies.POLICY_FIELDS,
                ),
                Route(
                    r"policy/?",
                    {READ: h(policies.list_policies_legacy), LIST: h(policies.list_policies)},
                    {},
                ),
                Route(
                    r"policy/(?P<name>.+)",
                    {
                        READ: h(policies.read_policy_legacy),
                        UPDATE: h(policies.write_policy_legacy),
                        DELETE: h(policies.delete_policy),
                    },
                    policies.LEGACY_POLICY_FIELDS,
                ),
                Route(
                    r"capabilities-self",
                    {UPDATE: h(policies.capabilities_self)},
                    policies.CAPABILITIES_FIELDS,
                ),
                Route(
                    r"capabilities",
                    {UPDATE: h(policies.capabilities)},
                    policies.CAPABILITIES_FIELDS,
                ),
                Route(
                    r"capabilities-accessor",
                    {UPDATE: h(policies.capabilities_accessor)},
                    policies.CAPABILITIES_FIELDS,
                ),
                # audit (§4.11)
                Route(r"audit/?", {READ: h(audit.list_devices)}, {}),
                Route(
                    r"audit/(?P<path>.+)",
                    {UPDATE: h(audit.enable_device), DELETE: h(audit.disable_device)},
                    audit.ENABLE_FIELDS,
                ),
                Route(r"audit-hash/(?P<path>.+)", {UPDATE: h(audit.audit_hash)}, audit.HASH_FIELDS),
                # leases (auth-api §7): token leases; the legacy sys/renew, sys/revoke* too
                Route(r"leases/lookup/(?P<prefix>.*)", {LIST: h(leases.list_leases)},
                      leases.LIST_FIELDS),
                Route(r"leases/lookup", {UPDATE: h(leases.lookup)}, leases.LOOKUP_FIELDS),
                Route(r"(?:leases/)?renew(?:/(?P<url_lease_id>.+))?", {UPDATE: h(leases.renew)},
                      leases.RENEW_FIELDS),
                Route(r"(?:leases/)?revoke(?:/(?P<url_lease_id>.+))?",
                      {UPDATE: h(leases.revoke)}, leases.REVOKE_FIELDS),
                Route(r"(?:leases/)?revoke-prefix/(?P<prefix>.+)",
                      {UPDATE: h(leases.revoke_prefix)}, leases.PREFIX_FIELDS),
                Route(r"(?:leases/)?revoke-force/(?P<prefix>.+)",
                      {UPDATE: h(leases.revoke_force)}, leases.FORCE_FIELDS),
                Route(r"leases/tidy", {UPDATE: h(self.lease_tidy.handle)}, {}),
                Route(r"leases/count", {READ: h(leases.count_irrevocable)},
                      leases.IRREVOCABLE_FIELDS),
                Route(r"leases", {READ: h(leases.list_irrevocable)}, leases.IRREVOCABLE_FIELDS),
                # response wrapping
                Route(r"wrapping/wrap", {UPDATE: h(wrapping.wrap)}, {}),
                Route(r"wrapping/unwrap", {UPDATE: h(wrapping.unwrap)}, wrapping.TOKEN_FIELDS),
                Route(
                    r"wrapping/lookup",
                    {UPDATE: h(wrapping.lookup), READ: h(wrapping.lookup)},
                    wrapping.TOKEN_FIELDS,
                ),
                Route(r"wrapping/rewrap", {UPDATE: h(wrapping.rewrap)}, wrapping.TOKEN_FIELDS),
                # the transit engine's stateless tools, also served under sys/ like Vault
                Route(
                    r"tools/random(?:/(?P<source>[^/]+))?(?:/(?P<urlbytes>[^/]+))?",
                    {UPDATE: h(tools.random)},
                    tools.RANDOM_FIELDS,
                ),
                Route(r"tools/hash(?:/(?P<urlalgorithm>.+))?", {UPDATE: h(tools.hash)}, tools.HASH_FIELDS),
            ]
        )


async def _metrics_read(node: NodeControl, req: Request, d: FieldData) -> None:
    """`sys/metrics` and `sys/monitor` as logical reads: only their ACL and audit matter
    here; the app answers them (transit/api/app.py)."""
    return None
