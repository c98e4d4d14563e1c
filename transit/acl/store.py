"""Durable ACL policies and the per-token-policy-set ACL cache (Vault's vault/policy_store.go).

Storage: a StorageView over the barrier at "sys/policy/"; one key per policy name holding
`{"Version": 2, "Raw": "<text>", "Type": 0}` (Vault's PolicyEntry). Names are lower-cased and
trimmed. `root` is virtual (never stored, allows everything); `default` is created on setup
and can be edited but not deleted; `response-wrapping` is Vault's fixed policy for wrapping
tokens: stored, immutable, hidden from lists.

Parsing is slow (the HCL parser takes about 1 ms per `path` block): a policy text above
`INLINE_PARSE_BYTES` is parsed in the process pool (`transit.pools`), never on the event
loop, both when it is written and when a node loads it.
"""

from __future__ import annotations

import builtins  # `list` is a method name in AclPolicyStore
import json
from typing import TYPE_CHECKING, Any

from transit import metrics, pools
from transit.acl.acl import ACL
from transit.acl.policy import AclPolicy, parse_policy
from transit.errors import PermissionDenied, StorageError, UserError

if TYPE_CHECKING:
    from transit.identity.store import IdentityContext, IdentityStore

ROOT = "root"
DEFAULT = "default"
RESPONSE_WRAPPING = "response-wrapping"
CONTROL_GROUP = "control-group"
IMMUTABLE = frozenset({ROOT, RESPONSE_WRAPPING, CONTROL_GROUP})
NON_ASSIGNABLE = frozenset({RESPONSE_WRAPPING, CONTROL_GROUP})
_ACL_CACHE_LIMIT = 1024
_POLICY_HIT = ("vault.cache.hit", "policy")
_POLICY_MISS = ("vault.cache.miss", "policy")
_ACL_HIT = ("vault.cache.hit", "acl")
_ACL_MISS = ("vault.cache.miss", "acl")
INLINE_PARSE_BYTES = 8 * 1024  # about 60 path blocks: a few ms of parsing at most

# Vault's built-in "default" policy text (vault/policy_store.go, Vault 1.10+), verbatim.
DEFAULT_POLICY = """
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own entity by id or name
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
  capabilities = ["read"]
}


# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path for
# old clients, new path for newer
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# Allow checking the status of a Control Group request if the user has the
# accessor
path "sys/control-group/request" {
    capabilities = ["update"]
}

# Allow a token to make requests to the Authorization Endpoint for OIDC providers.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
"""

# Vault's fixed policy carried by response-wrapping tokens.
RESPONSE_WRAPPING_POLICY = """
path "cubbyhole/response" {
    capabilities = ["create", "read"]
}

path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}
"""

_ROOT_POLICY = AclPolicy(name=ROOT, raw="", paths=[])


async def parse(name: str, text: str) -> AclPolicy:
    """`parse_policy`, in the process pool when the text is long."""
    if len(text) <= INLINE_PARSE_BYTES:
        return parse_policy(name, text)
    return await pools.in_process(parse_policy, name, text)


def sanitize_name(name: str) -> str:
    """Vault's policy-name normalisation."""
    return name.strip().lower()


class AclPolicyStore:
    """Named ACL policies over a barrier view, with parsed-policy and compiled-ACL caches.

    `invalidate()` drops the caches (for HA standbys when another node changed a policy).
    """

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self._policies: dict[str, AclPolicy | None] = {}  # name -> parsed (None: missing)
        self._acls: dict[frozenset[str], ACL] = {}
        # ACLs of tokens with an entity: (token policies, the entity context's key)
        self._identity_acls: dict[tuple[frozenset[str], tuple[Any, ...]], ACL] = {}
        self._generation = 0  # bumped on every change; guards caching a stale ACL
        # The node's identity store (set by the node): the entity of a token adds its
        # identity policies and fills templated paths (`acl_for_token`).
        self.identity: IdentityStore | None = None

    async def setup(self) -> None:
        """Create `default` if missing; (re)write the immutable `response-wrapping`."""
        if await self._load(DEFAULT) is None:
            await self._store(parse_policy(DEFAULT, DEFAULT_POLICY))
        existing = await self._load(RESPONSE_WRAPPING)
        if existing is None or existing.raw != RESPONSE_WRAPPING_POLICY:
            await self._store(parse_policy(RESPONSE_WRAPPING, RESPONSE_WRAPPING_POLICY))

    # -- reads -------------------------------------------------------------------------------

    async def get(self, name: str) -> AclPolicy | None:
        """The named policy, or None. `root` exists (empty text, allows everything)."""
        return await self._load(sanitize_name(name))

    async def list(self) -> list[str]:
        """Stored assignable policy names, sorted; without `root` (the handler appends it)."""
        keys = await self._storage.list("")
        return [k for k in keys if not k.endswith("/") and k not in NON_ASSIGNABLE]

    async def exists(self, name: str) -> bool:
        return await self.get(name) is not None

    # -- writes ------------------------------------------------------------------------------

    async def put(self, name: str, text: str) -> AclPolicy:
        """Parse and store a policy (UserError on parse errors or immutable names)."""
        name = sanitize_name(name)
        if not name:
            raise UserError("policy name must be provided in the URL")
        if name in IMMUTABLE:
            raise UserError(f'cannot update "{name}" policy')
        policy = await parse(name, text)
        await self._store(policy)
        return policy

    async def delete(self, name: str) -> None:
        name = sanitize_name(name)
        if name in IMMUTABLE:
            raise UserError(f'cannot delete "{name}" policy')
        if name == DEFAULT:
            raise UserError("cannot delete default policy")
        try:
            await self._storage.delete(name)
        except StorageError as exc:
            raise StorageError(f"failed to delete policy: {exc}") from exc
        self._changed(name, None)

    # -- ACLs --------------------------------------------------------------------------------

    async def acl_for(self, names: builtins.list[str] | tuple[str, ...] | frozenset[str]) -> ACL:
        """The compiled ACL for a token's policy names (missing policies count as empty)."""
        key = names if isinstance(names, frozenset) else frozenset(names)
        acl = self._acls.get(key)
        if acl is not None:
            metrics.incr(_ACL_HIT)
            return acl
        metrics.incr(_ACL_MISS)
        generation = self._generation
        policies: list[AclPolicy] = []
        for name in key:
            policy = await self._load(sanitize_name(name))
            if policy is not None:
                policies.append(policy)
        policies.sort(key=lambda p: p.name)  # deterministic granting_policies order
        acl = ACL(policies)
        if generation == self._generation:
            if len(self._acls) >= _ACL_CACHE_LIMIT:
                self._acls.pop(next(iter(self._acls)))
            self._acls[key] = acl
        return acl

    async def acl_for_token(self, token: Any) -> ACL:
        """The ACL of a token: its own policies and, when it has an entity, the entity's
        identity policies (entity, groups, parent groups) with templated paths filled in
        for it (spec auth-api §6.7, §6.8). PermissionDenied when the entity is disabled or
        no longer exists, as Vault refuses such tokens."""
        if not token.entity_id or self.identity is None:
            return await self.acl_for(token.policies)
        ctx = await self.identity.context(token.entity_id)
        if ctx is None or ctx.disabled:
            raise PermissionDenied()
        return await self.acl_for_identity(token.policies, ctx)

    async def acl_for_identity(self, names: builtins.list[str] | tuple[str, ...],
                               ctx: IdentityContext) -> ACL:
        """The compiled ACL for policy `names` plus `ctx`'s identity policies, templated
        paths filled for `ctx` (cached while the entity and its groups are unchanged)."""
        key = (frozenset(names), ctx.key)
        acl = self._identity_acls.get(key)
        if acl is not None:
            metrics.incr(_ACL_HIT)
            return acl
        metrics.incr(_ACL_MISS)
        generation = self._generation
        policies: list[AclPolicy] = []
        for name in key[0] | frozenset(ctx.policies):
            policy = await self._load(sanitize_name(name))
            if policy is not None:
                policies.append(policy)
        policies.sort(key=lambda p: p.name)
        acl = ACL(policies, ctx)
        if generation == self._generation:
            if len(self._identity_acls) >= _ACL_CACHE_LIMIT:
                self._identity_acls.pop(next(iter(self._identity_acls)))
            self._identity_acls[key] = acl
        return acl

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached policies (one, or all) and every compiled ACL."""
        if name is None:
            self._policies.clear()
        else:
            self._policies.pop(sanitize_name(name), None)
        self._acls.clear()
        self._identity_acls.clear()
        self._generation += 1

    # -- internals ---------------------------------------------------------------------------

    def _changed(self, name: str, policy: AclPolicy | None) -> None:
        self._policies[name] = policy
        self._acls.clear()
        self._identity_acls.clear()
        self._generation += 1

    async def _load(self, name: str) -> AclPolicy | None:
        if name == ROOT:
            return _ROOT_POLICY
        try:
            cached = self._policies[name]
        except KeyError:
            metrics.incr(_POLICY_MISS)
        else:
            metrics.incr(_POLICY_HIT)
            return cached
        generation = self._generation
        raw = await self._storage.get(name) if name else None
        policy: AclPolicy | None = None
        if raw is not None:
            try:
                entry = json.loads(raw)
                text = entry["Raw"]
            except (ValueError, KeyError, TypeError) as exc:
                raise StorageError(f"failed to parse policy: {exc}") from None
            policy = await parse(name, text)
        if generation == self._generation:
            self._policies[name] = policy
        return policy

    async def _store(self, policy: AclPolicy) -> None:
        entry = {"Version": 2, "Raw": policy.raw, "Type": 0}
        try:
            await self._storage.put(policy.name, json.dumps(entry).encode())
        except StorageError as exc:
            raise StorageError(f"failed to persist policy: {exc}") from exc
        self._changed(policy.name, policy)
