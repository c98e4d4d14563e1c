"""The Vault core of one node, and the request pipeline every logical request goes through
(`Core.handle`).

The HTTP layer builds a `Request` and calls `handle`; nothing here knows HTTP. The order of
the pipeline is Vault's: sealed check, token lookup, route (once), existence check
(UPDATE → CREATE), ACL on the full path (with sudo for root-protected paths), audit request,
handler, token use, response wrapping, audit response.

`Core` is the node (transit/node.py `Node`: its state, and the components that own its
lifecycle, HA roles and logins) plus this pipeline. The pipeline's methods are `Core`'s own,
over the node's state: no component sits between a request and its engine.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from transit.acl.acl import Decision, requires_sudo
from transit.cluster.roles import ECHO_PATH as ECHO_PATH  # re-exported: api/forwarding.py
from transit.errors import (
    AuditFailed,
    CapabilityDenied,
    Fenced,
    ForwardToActive,
    InternalError,
    InvalidCredentials,
    LoginFailed,
    LoginUnsupported,
    NoHandler,
    NotActive,
    PermissionDenied,
    Sealed,
    StandbyError,
    TransitError,
    UnsupportedOperation,
    UserError,
)
from transit.lifecycle import AUTH_FACTORIES as AUTH_FACTORIES  # re-exported: tests/fuzz
from transit.lifecycle import ENGINE_FACTORIES as ENGINE_FACTORIES
from transit.logical import CREATE, LIST, MOUNT_DEFAULT_TTL, PATCH, UPDATE, Request, Response
from transit.login import AUTH_PREFIX, TOKEN_MOUNT
from transit.node import Node
from transit.tokens.wrapping import parse_wrap_ttl
from transit.tokenutil import addr_allowed

log = logging.getLogger("transit.core")

# Vault's wrapping special case: these validate the wrapping token before authentication
# (a spent one is a 400, not a 403), and the caller's own token may be the wrapping token.
WRAPPING_PATHS = frozenset({"sys/wrapping/lookup", "sys/wrapping/rewrap", "sys/wrapping/unwrap"})
UNAUTHENTICATED = frozenset({"sys/wrapping/lookup"})
# Unauthenticated in Vault's router too, but their handlers check the token themselves
# (transit/engines/system/internal.py): no ACL check here, with or without a token.
SELF_CHECKED = "sys/internal/ui/mounts"
OPEN_DECISION = Decision(True)
# What a node answers (503) once it is no longer the active node. A standby that forwarded the
# request recognises errors.NotActive by its header (transit/cluster/forward.py), not this text.
NOT_ACTIVE = "node is not active"
# Requests whose success is that this node stops being active (checked after the request).
_GIVES_UP_THE_LOCK = frozenset({"sys/seal", "sys/step-down"})


class Core(Node):
    """One node (`Node`) and the request pipeline every logical request goes through."""

    # -- the request pipeline ---------------------------------------------------------------
    async def _login(self, path: str, client_token: str) -> bool:
        """Whether `path` is a login path (`NodeLogin.login_path`). Without a token on an HA
        node, a miss looks at the stored auth table first: another process may have just
        enabled the mount and our invalidation feed may be behind (a loaded machine)."""
        if not path.startswith(AUTH_PREFIX):  # no auth mount: the encrypt path stops here
            return False
        if self.login.login_path(path):
            return True
        if client_token or self.ha is None or not await self.auth_mounts.changed():
            return False
        await self.loader.reload_mounts()
        return self.login.login_path(path)

    async def authenticate(self, path: str, client_token: str) -> Any:
        """The caller's token entry, looked up before the request body is decoded.

        PermissionDenied without a valid token; None (decide in `handle`) on the paths that
        validate a wrapping token themselves or are refused before authentication.
        """
        if path in WRAPPING_PATHS or self.barrier.sealed or (path == "sys/seal" and self.standby):
            return None
        if await self._login(path, client_token):  # X-Vault-Token is ignored on login paths
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
        if req.operation == LIST and not path.endswith("/"):
            # Vault appends it before routing (so it shows in "no handler" too); the mount's
            # own root gets its "/" after routing (`_handle`)
            req.path = path = path + "/"
        ha = self.ha
        if ha is None:
            return await self._handle(req, path)
        epoch = None
        if ha.state == "active":
            if not ha.serving:  # refused before any work: safe to send elsewhere
                ha.deposed("lock not confirmed within ttl - margin")
                raise NotActive(NOT_ACTIVE)
            epoch = ha.epoch
        try:
            resp = await self._handle(req, path)
        except Fenced:
            ha.deposed("a storage write was fenced")
            raise
        if epoch is not None and path not in _GIVES_UP_THE_LOCK and (
                not ha.serving or ha.epoch != epoch):
            # not NotActive: the handler ran, its write may be durable; never re-sent
            ha.deposed("lock not confirmed within ttl - margin")
            raise Fenced(NOT_ACTIVE)
        return resp

    async def _handle(self, req: Request, path: str) -> Response | None:
        if self.barrier.sealed:
            raise Sealed()
        if path == "sys/seal" and self.standby:  # never forwarded (spec ha-and-sys §1.7)
            raise StandbyError("vault cannot seal when in standby mode; please restart instead")
        if req.operation in (UPDATE, CREATE, PATCH) and path.endswith("/") and (
                path.startswith(AUTH_PREFIX) and not path.startswith(TOKEN_MOUNT)):
            raise UserError("cannot write to a path ending in '/'")
        token = None
        # a token the HTTP layer already looked up means this is not a login path
        # (`authenticate` answers None there): the encrypt path skips the second check
        login = req.token is None and await self._login(path, req.client_token)
        if login:
            req.client_token, req.token = "", None  # ignored, even a bogus one (spec §1.6)
        if path in WRAPPING_PATHS:
            token = await self.wrapping.check_request(req)
        if token is None and req.client_token:
            # the HTTP layer may have looked it up already, before decoding the body
            token = req.token or await self.tokens.lookup(req.client_token)
        self_checked = path.startswith(SELF_CHECKED)
        open_path = path in UNAUTHENTICATED or self_checked or login
        if token is None and not open_path:
            await self.audit_refused(req)
            raise PermissionDenied()
        if token is not None and token.bound_cidrs and not addr_allowed(
                req.remote_addr, token.bound_cidrs):
            await self.audit_refused(req)  # a token used from outside its bound CIDRs
            raise PermissionDenied()
        req.token = token
        try:
            engine, inner, storage, mount_path, mount_type, accessor = self.route(path)
        except NoHandler:
            if self.ha is None:
                raise
            # Another process of the cluster may have just mounted it and our invalidation
            # feed is behind (a loaded machine): check the stored table before saying 404.
            if not (await self.mounts.changed() or await self.auth_mounts.changed()):
                raise
            await self.loader.reload_mounts()
            engine, inner, storage, mount_path, mount_type, accessor = self.route(path)
        req.path, req.storage, req.mount_path = inner, storage, mount_path
        req.mount_type, req.mount_accessor = mount_type, accessor
        req.perf_standby = self.perf_standby
        req.max_lease_ttl = self.max_lease_ttl(mount_path)
        if req.operation == LIST and not inner.endswith("/"):  # a LIST of the mount's root
            req.path = inner = inner + "/"
        full_path = mount_path + inner
        if req.operation is UPDATE and not await engine.exists(req):
            req.operation = CREATE

        wrap_header = req.headers.get("x-vault-wrap-ttl")
        wrap_ttl = parse_wrap_ttl(wrap_header) if wrap_header else 0
        if token is None or self_checked:  # an unauthenticated path
            decision = OPEN_DECISION
        elif token.entity_id:  # identity policies and templating (issue 17)
            acl = await self.policies.acl_for_token(token)
            decision = acl.allowed(full_path, req.operation, req.data, wrap_ttl)
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
            raise CapabilityDenied()

        if audit:
            await self.audit.log_request(req, decision)
        index_before = getattr(self.physical, "last_index", 0)
        if token is not None and token.num_uses:
            await self.tokens.use(token)  # before the handler, so a use is spent only once
        alias = ""
        try:
            try:
                if login:
                    alias = await self.login.login_lockout_check(engine, req)
                resp = await engine.handle(req)
            except InvalidCredentials:
                if alias:
                    await self.login.login_failed(req, alias)
                raise
            except UnsupportedOperation as exc:
                if login:  # Vault answers a GET on a login path unwrapped
                    raise LoginUnsupported(exc.message) from None
                raise
            except InternalError as exc:
                if login and type(exc) is InternalError:  # plain login errors: unwrapped
                    raise LoginFailed(exc.message) from None
                raise
            if resp is not None and resp.login is not None:
                resp = await self.login.complete_login(req, resp, alias)
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
            req.index_header = self.roles.index_header()
            if self.shared_writes and self.relay is not None:
                # Read-your-writes across the workers of this node: answer once every
                # sibling's invalidation feed has applied this write (transit/workers.py).
                await self.relay("index", {"index": index_after})
        if wrap_ttl and resp is not None:
            resp = await self.wrapping.wrap(resp, wrap_ttl, req)
        if audit:
            await self.audit.log_response(req, decision, resp, "")
        return resp
