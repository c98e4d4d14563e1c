"""Logins through auth mounts: which paths are login paths, and turning a method's `Login`
(transit/engines/authmethod.py) into a token and the response's `auth` block, the same way
for every method (Vault's `handleLoginRequest` / `RegisterAuth`; spec auth-api §1.6-1.7).

`NodeLogin` is a component `transit.core.Core` owns (`core.login`), given the token store,
the lockout counters, the identity store and a view of the node's auth mount table
(transit/ports.py `LoginNode`): the request pipeline calls `login_path` before it looks at
the token, and `complete_login` after a login handler answered. `login_identity` is the one
hook into the identity store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from transit.engines.authmethod import Login
from transit.errors import InternalError, PermissionDenied, UserError
from transit.lockout import Settings
from transit.logical import Request, Response
from transit.tokens.roles import sanitize_policies
from transit.tokens.ttl import RenewLimits, calculate_ttl
from transit.tokenutil import BATCH, DEFAULT, SERVICE, TokenParams, addr_allowed

if TYPE_CHECKING:
    from transit.engines.framework import Engine
    from transit.identity.store import IdentityStore
    from transit.lockout import Lockout
    from transit.ports import LoginNode
    from transit.tokens.entry import TokenEntry
    from transit.tokens.store import TokenStore

log = logging.getLogger("transit.core")

AUTH_PREFIX = "auth/"
TOKEN_MOUNT = "auth/token/"
# Vault's mount token_type values (sys/auth config and tune).
MOUNT_TOKEN_TYPES = ("default-service", "default-batch", "service", "batch")
_NOT_ASSIGNABLE = ("response-wrapping", "control-group")


class NodeLogin:
    """Login paths and token creation for logins (a component of `Core`)."""

    def __init__(self, node: LoginNode, tokens: TokenStore, lockout: Lockout,
                 identity: IdentityStore) -> None:
        self.node = node
        self.tokens = tokens
        self.lockout = lockout
        self.identity = identity

    def login_path(self, path: str) -> bool:
        """Whether `path` (after /v1/) is an unauthenticated path of an auth mount: the
        request needs no token, and any X-Vault-Token it carries is ignored."""
        if not path.startswith(AUTH_PREFIX) or path.startswith(TOKEN_MOUNT):
            return False
        routed = self.node.auth_mounts.route(path[len(AUTH_PREFIX):])
        if routed is None:
            return False
        entry, inner = routed
        return entry.engine is not None and entry.engine.is_unauthenticated(inner)

    async def login_identity(
        self, mount_accessor: str, mount_type: str, alias_name: str,
        alias_metadata: dict[str, str], group_aliases: list[str] | None = None,
    ) -> tuple[str, list[str]]:
        """The entity a login belongs to: (entity_id, identity_policies) — Vault's
        CreateOrFetchEntity: find or create the entity with an alias (mount_accessor,
        alias_name), refresh the alias metadata, sync the external groups the method asserts
        (`group_aliases`), and return the entity's policies and those of its groups."""
        return await self.identity.login_entity(
            mount_accessor, mount_type, alias_name, alias_metadata, group_aliases)

    async def complete_login(self, req: Request, resp: Response, alias: str = "") -> Response:
        """Create the token a login handler described and build the `auth` block (§1.7).
        `req.mount_path` is the auth mount (`auth/userpass/`), `req.path` the path in it;
        `alias` the lockout look-ahead's answer (its failure counter is cleared)."""
        login: Login | None = resp.login
        assert login is not None  # the pipeline calls this only for such a response
        params = login.token
        entry = self.node.auth_mounts.get(req.mount_path[len(AUTH_PREFIX):])
        config: dict[str, Any] = entry.config if entry is not None else {}
        if login.check_bound_cidrs and not addr_allowed(req.remote_addr, params.bound_cidrs):
            raise PermissionDenied()

        for policy in params.policies:
            if policy in _NOT_ASSIGNABLE:
                raise UserError(f'"{policy}" cannot be assigned as a policy')
        token_policies = sanitize_policies(params.policies, not params.no_default_policy)
        if params.no_default_policy:
            token_policies = [p for p in token_policies if p != "default"]
        if "root" in token_policies:
            raise UserError("auth methods cannot create root tokens")

        token_type = token_type_for(params.type, str(config.get("token_type") or ""))
        if token_type == BATCH and (params.period or params.num_uses):
            bad = "period" if params.period else "num_uses"
            raise UserError(f'batch tokens cannot have "{bad}" set')

        now = self.tokens.clock()
        ttl, warnings = calculate_ttl(
            increment=0, backend_ttl=params.ttl, period=params.period,
            explicit_max_ttl=params.explicit_max_ttl, start=now, now=now,
            backend_max_ttl=params.max_ttl,
            default_ttl=int(config.get("default_lease_ttl") or self.tokens.default_lease_ttl),
            max_ttl=int(config.get("max_lease_ttl") or self.tokens.max_lease_ttl),
        )
        if alias:
            await self.lockout.succeeded(req.mount_accessor, alias)
        entity_id, identity_policies = await self.login_identity(
            req.mount_accessor, req.mount_type, login.alias_name, dict(login.alias_metadata),
            list(login.group_aliases) if login.group_aliases is not None else None)

        source = req.mount_path[len(AUTH_PREFIX):].replace("/", "-")
        token = await self.tokens.create(
            None, policies=token_policies, meta=login.metadata,
            display_name=(source + login.display_name).rstrip("-"),
            num_uses=params.num_uses, ttl=ttl,
            explicit_max_ttl=params.explicit_max_ttl, period=params.period,
            renewable=(login.renewable or params.period > 0) and token_type == SERVICE,
            orphan=True, path=req.mount_path + req.path, type=token_type,
            entity_id=entity_id, bound_cidrs=params.bound_cidrs,
            internal_data=dict(login.internal_data) or None,
        )
        out = Response(warnings=None)
        # the handler's, the framework's (unrecognized parameters), then the TTL caps
        for warning in [*login.warnings, *(resp.warnings or []), *warnings]:
            out.add_warning(warning)
        out.auth = token.auth_block(identity_policies=sorted(set(identity_policies)))
        return out

    async def renew_login(self, token: TokenEntry) -> RenewLimits | None:
        """The token store's `login_renewer`: ask the auth method that made `token` whether
        it may be renewed and with which limits (None: renew as usual)."""
        path = token.path
        if not path.startswith(AUTH_PREFIX) or path.startswith(TOKEN_MOUNT):
            return None
        routed = self.node.auth_mounts.route(path[len(AUTH_PREFIX):])
        if routed is None or routed[0].engine is None:
            return None
        entry, engine = routed[0], routed[0].engine
        try:
            params: TokenParams | None = await engine.renew_login(token)
        except InternalError as exc:
            raise InternalError(f"failed to renew entry: {exc.message}") from None
        if params is None:
            return None
        return RenewLimits(
            ttl=params.ttl, max_ttl=params.max_ttl, period=params.period,
            default_ttl=int(entry.config.get("default_lease_ttl") or self.tokens.default_lease_ttl),
            max_lease_ttl=int(entry.config.get("max_lease_ttl") or self.tokens.max_lease_ttl),
        )

    # -- user lockout (transit/lockout.py) ------------------------------------------------
    async def login_lockout_check(self, engine: Engine, req: Request) -> str:
        """Before a login handler runs: the alias it is for ("" when the method has no
        look-ahead); PermissionDenied while that alias is locked."""
        alias = await engine.login_alias(req)
        if alias and await self.lockout.locked(req.mount_accessor, alias,
                                               self._lockout_settings(req.mount_path)):
            raise PermissionDenied()
        return alias

    async def login_failed(self, req: Request, alias: str) -> None:
        await self.lockout.failed(req.mount_accessor, alias,
                                  self._lockout_settings(req.mount_path))

    def _lockout_settings(self, mount_path: str) -> Settings:
        entry = self.node.auth_mounts.get(mount_path[len(AUTH_PREFIX):])
        return Settings.of(entry.config if entry is not None else {})


def token_type_for(role_type: str, mount_type: str) -> str:
    """The token type of a login: a mount tuned to `service`/`batch` forces it; else the
    role's type; a role at `default` takes the mount's default (spec §1.7)."""
    if mount_type in (SERVICE, BATCH):
        return mount_type
    if role_type in (SERVICE, BATCH):
        return role_type
    if role_type in ("", DEFAULT) and mount_type == "default-batch":
        return BATCH
    return SERVICE
