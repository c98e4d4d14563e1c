"""The Vault core of one node: barrier and seal, mounts, tokens, ACL policies, audit, and
the request pipeline every logical request goes through (`Core.handle`).

The HTTP layer builds a `Request` and calls `handle`; nothing here knows HTTP. The order of
the pipeline is Vault's: sealed check, token lookup, existence check (UPDATE → CREATE), ACL
(with sudo for root-protected paths), audit request, handler, token use, response wrapping,
audit response.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from transit import __version__
from transit.acl.acl import Decision, requires_sudo
from transit.acl.store import AclPolicyStore
from transit.audit.broker import AuditBroker
from transit.barrier import Barrier
from transit.engines.framework import CREATE, UPDATE, Engine, Request, Response
from transit.engines.kv import kv_factory
from transit.engines.mounts import EngineFactory, MountTable
from transit.engines.system.backend import SystemBackend
from transit.engines.token.backend import TokenBackend
from transit.engines.transit.backend import TransitBackend
from transit.errors import NoHandler, PermissionDenied, Sealed, TransitError, UserError
from transit.seal import SealManager
from transit.storage import Backend, StorageView
from transit.tokens.store import TokenStore
from transit.tokens.wrapping import Wrapper

log = logging.getLogger("transit.core")

ENGINE_FACTORIES: dict[str, EngineFactory] = {
    "transit": TransitBackend,
    "kv": kv_factory,
    "generic": kv_factory,
}

TOKEN_MOUNT = "auth/token/"

# Vault's wrapping special case: these validate the wrapping token before authentication
# (a spent one is a 400, not a 403), and the caller's own token may be the wrapping token.
WRAPPING_PATHS = frozenset({"sys/wrapping/lookup", "sys/wrapping/rewrap", "sys/wrapping/unwrap"})
UNAUTHENTICATED = frozenset({"sys/wrapping/lookup"})
OPEN_DECISION = Decision(True)


@dataclass
class ClusterInfo:
    name: str = field(default_factory=lambda: f"vault-cluster-{secrets.token_hex(4)}")
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = __version__


class Core:
    def __init__(
        self, physical: Backend, *, storage_type: str = "inmem", cluster_name: str = "",
        static_seal_key: bytes | None = None,
    ) -> None:
        self.physical = physical
        self.storage_type = storage_type
        self.barrier = Barrier(physical)
        self.seal = SealManager(physical, self.barrier, static_key=static_seal_key)
        self.mounts = MountTable(self.barrier, ENGINE_FACTORIES)
        self.tokens = TokenStore(StorageView(self.barrier, "sys/token/"))
        self.policies = AclPolicyStore(StorageView(self.barrier, "sys/policy/"))
        self.audit = AuditBroker(StorageView(self.barrier, ""))
        self.wrapping = Wrapper(self.tokens, StorageView(self.barrier, "sys/wrapping/"))
        self.system = SystemBackend(self)
        self.token_backend = TokenBackend(self)
        self.cluster = ClusterInfo(name=cluster_name) if cluster_name else ClusterInfo()
        self.initialized = False
        self.default_mounts: list[tuple[str, str, str, dict[str, Any] | None]] = []

    @property
    def sealed(self) -> bool:
        return self.barrier.sealed

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Read whether storage is initialised; a static seal unseals right away."""
        self.initialized = await self.barrier.initialized()
        if self.initialized and self.seal.auto:
            await self.seal.auto_unseal()
            await self.post_unseal()

    async def initialize(self, shares: int, threshold: int) -> dict[str, Any]:
        """`sys/init`: create the barrier, split its key, create the root token."""
        if await self.barrier.initialized():
            raise UserError("Vault is already initialized")
        keys, _root_key = await self.seal.initialize(shares, threshold)
        await self.post_unseal()
        root = await self.tokens.create_root()
        self.initialized = True
        if not self.seal.auto:
            self.pre_seal()
            self.seal.seal()
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
        await self.post_unseal()
        root = await self.tokens.create_root(root_token)
        self.initialized = True
        return root.id, keys[0]

    async def post_unseal(self) -> None:
        """Load everything that lives behind the barrier."""
        await self.tokens.setup()
        await self.policies.setup()
        await self.mounts.load([])
        if not self.mounts.entries():
            for path, typ, description, options in self.default_mounts:
                await self.mounts.mount(path, typ, description=description, options=options)
        self.audit.mounts = self.mounts  # tuned audit_non_hmac_* keys live on mount entries
        await self.audit.setup()

    def pre_seal(self) -> None:
        """Forget every decrypted thing held in memory (caches of tokens and policies)."""
        self.tokens.invalidate()
        self.policies.invalidate()
        self.audit.teardown()
        self.mounts = MountTable(self.barrier, ENGINE_FACTORIES)  # drops engines and caches

    async def run_periodic(self, interval: float = 60.0) -> None:
        """Call every mounted engine's `periodic()` (auto-rotation) forever."""
        while True:
            await asyncio.sleep(interval)
            if self.sealed:
                continue
            for entry in self.mounts.entries():
                periodic = getattr(entry.engine, "periodic", None)
                if periodic is None:
                    continue
                try:
                    await periodic()
                except Exception:
                    log.exception("periodic task of mount %s failed", entry.path)

    # -- the request pipeline ---------------------------------------------------------------
    def route(self, path: str) -> tuple[Engine, str, Any, str, str, str]:
        """(engine, path inside it, storage, mount path, mount type, mount accessor)."""
        if path.startswith("sys/") or path == "sys":
            return self.system, path[4:], None, "sys/", "system", "system_00000000"
        if path.startswith(TOKEN_MOUNT) or path == TOKEN_MOUNT[:-1]:
            return (self.token_backend, path[len(TOKEN_MOUNT):], None, TOKEN_MOUNT, "token",
                    "auth_token_00000000")
        routed = self.mounts.route(path)
        if routed is None:
            raise NoHandler(f'no handler for route "{path}". route entry not found.')
        entry, inner = routed
        return entry.engine, inner, entry.storage, entry.path, entry.type, entry.accessor

    async def handle(self, req: Request, path: str) -> Response | None:
        """Run one logical request (`path` is everything after /v1/)."""
        if self.barrier.sealed:
            raise Sealed()
        token = None
        if path in WRAPPING_PATHS:
            token = await self.wrapping.check_request(req)
        if token is None and req.client_token:
            token = await self.tokens.lookup(req.client_token)
        open_path = path in UNAUTHENTICATED
        if token is None and not open_path:
            raise PermissionDenied()
        req.token = token
        engine, inner, storage, mount_path, mount_type, accessor = self.route(path)
        req.path, req.storage, req.mount_path = inner, storage, mount_path
        req.mount_type, req.mount_accessor = mount_type, accessor
        if req.operation == "list" and not inner.endswith("/"):
            req.path = inner = inner + "/"
        full_path = mount_path + inner
        if req.operation is UPDATE and not await engine.exists(req):
            req.operation = CREATE

        wrap_header = req.headers.get("x-vault-wrap-ttl")
        wrap_ttl = _wrap_ttl(wrap_header) if wrap_header else 0
        if token is None:  # an unauthenticated path
            decision = OPEN_DECISION
        else:
            acl = await self.policies.acl_for(token.policies)
            decision = acl.allowed(full_path, req.operation, req.data, wrap_ttl)
        audit = self.audit.enabled
        if not decision.allowed or (
            requires_sudo(full_path, req.operation) and not decision.sudo
        ):
            if audit:
                await self.audit.log_request(req, decision)
                await self.audit.log_response(req, decision, None, "permission denied")
            raise PermissionDenied()

        if audit:
            await self.audit.log_request(req, decision)
        if token is not None and token.num_uses:
            await self.tokens.use(token)  # before the handler, so a use is spent only once
        try:
            resp = await engine.handle(req)
        except TransitError as exc:
            if audit:
                await self.audit.log_response(req, decision, None, exc.message)
            raise
        if wrap_ttl and resp is not None:
            resp = await self.wrapping.wrap(resp, wrap_ttl, req)
        if audit:
            await self.audit.log_response(req, decision, resp, "")
        return resp


def _wrap_ttl(value: str) -> int:
    from transit.engines.fields import parse_duration

    try:
        ttl = parse_duration(value)
    except ValueError:
        raise UserError(f"error parsing X-Vault-Wrap-TTL: invalid duration {value!r}") from None
    if ttl <= 0:
        raise UserError("wrap ttl must be greater than zero")
    return ttl
