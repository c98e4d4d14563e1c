"""A compiled ACL over a token's policies (spec ha-and-sys-api §4.9; Vault's vault/acl.go).

Matching, as Vault's `AllowOperation` does it:
  1. an exact rule for the path wins outright (for LIST, also the path without its trailing
     "/"), even when it grants nothing;
  2. otherwise the best non-exact rule: the longest `*` prefix rule competes with every
     matching `+` rule under Vault's priority order (first wildcard later > not a prefix >
     fewer `+` > longer > lexicographically greater); for LIST on "x/" the rules for "x"
     are tried first;
  3. nothing matches -> denied.
Rules with the same pattern are merged across (and within) policies: capabilities union,
`deny` wipes the rest. `root` allows everything.

`allowed()` is the hot path: the tables are built once per ACL, the exact table is a dict,
`*` rules are looked up by candidate prefix length (a few dict probes), and the outcome per
(path, operation) is memoised in a bounded dict when it does not depend on the request data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transit.acl.params import merge_params, params_ok
from transit.acl.policy import (
    CAPABILITY_BITS,
    CREATE,
    DELETE,
    DENY,
    LIST,
    PATCH,
    READ,
    SUDO,
    UPDATE,
    AclPolicy,
    PathRule,
    capability_names,
    render_rule,
)

if TYPE_CHECKING:
    from transit.identity.store import IdentityContext

# Operation -> the capability it needs (Vault: revoke/renew/rollback reuse update).
OPERATION_BITS: dict[str, int] = {
    "read": READ,
    "list": LIST,
    "update": UPDATE,
    "create": CREATE,
    "delete": DELETE,
    "patch": PATCH,
    "revoke": UPDATE,
    "renew": UPDATE,
    "rollback": UPDATE,
}
_PARAM_OPS = frozenset({"read", "update", "create", "patch"})
_MEMO_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class Decision:
    """The ACL's answer for one request. `granting_policies` is [{"name", "type": "acl"}]."""

    allowed: bool
    sudo: bool = False
    granting_policies: list[dict[str, str]] = field(default_factory=list)
    is_root: bool = False


DENIED = Decision(False)
ROOT_DECISION = Decision(True, True, [{"name": "root", "type": "acl"}], True)


# -- Vault's root-protected ("sudo") paths -------------------------------------------------
#
# From hashicorp/vault `vault/logical_system.go` NewSystemBackend PathsSpecial.Root (the
# entries relevant to this server, prefixed with "sys/"), `vault/token_store.go`
# PathsSpecial.Root ("revoke-orphan/*", "accessors*"), plus sys/seal and sys/step-down, which
# Vault's core checks with `PolicyCheckOpts{RootPrivsRequired: true}` (vault/request_handling
# sealInitCommon / StepDown). A trailing "*" is a prefix match, anything else is exact, as in
# Vault's router.RootPath. sys/policies/*, sys/mounts and sys/key-status are NOT sudo paths;
# auth/token/create-orphan and the `id`/`policies=root` checks live in the token handlers.
SUDO_PATHS_EXACT = frozenset(
    {
        "sys/audit",
        "sys/raw",
        "sys/rotate",
        "sys/remount",
        "sys/config/cors",
        "sys/leases",
        "sys/seal",
        "sys/step-down",
    }
)
SUDO_PATH_PREFIXES = (
    "sys/audit/",
    "sys/raw/",
    "sys/auth/",
    "sys/config/auditing/",
    "sys/config/ui/headers/",
    "sys/plugins/catalog/",
    "sys/revoke-prefix/",
    "sys/revoke-force/",
    "sys/leases/revoke-prefix/",
    "sys/leases/revoke-force/",
    "sys/leases/lookup/",
    "sys/internal/inspect/",
    "sys/storage/raft/snapshot-auto/config/",
    "auth/token/revoke-orphan/",
    "auth/token/accessors",
)


def requires_sudo(path: str, op: str = "") -> bool:
    """True when `path` (full, e.g. "sys/audit/file") is root-protected in Vault."""
    if op == "help":
        return False
    path = path.lstrip("/")
    # A path with a control character never reaches here (the API refuses it with a 400);
    # if one did, it is treated as root-protected rather than slipping past an exact entry.
    return (path in SUDO_PATHS_EXACT or path.startswith(SUDO_PATH_PREFIXES)
            or not path.isprintable())


# -- merged permissions ----------------------------------------------------------------------


class _Perms:
    """The merged permissions of every rule sharing one pattern (Vault's ACLPermissions)."""

    __slots__ = (
        "bits",
        "granting",
        "allowed_params",
        "denied_params",
        "required_params",
        "min_wrap",
        "max_wrap",
        "_decisions",
    )

    def __init__(self) -> None:
        self.bits = 0
        self.granting: dict[int, list[str]] = {}
        self.allowed_params: dict[str, list[Any]] | None = None
        self.denied_params: dict[str, list[Any]] | None = None
        self.required_params: list[str] = []
        self.min_wrap = 0
        self.max_wrap = 0
        self._decisions: dict[str, Decision] = {}

    def add(self, policy: str, rule: PathRule) -> None:
        if self.bits & DENY:
            return
        if rule.capabilities & DENY:
            self.bits = DENY
            self.allowed_params = self.denied_params = None
            return
        self.bits |= rule.capabilities
        for bit in CAPABILITY_BITS.values():
            if rule.capabilities & bit:
                names = self.granting.setdefault(bit, [])
                if policy not in names:
                    names.append(policy)
        # Wrapping TTLs: the lesser non-zero value wins (Vault's merge).
        if rule.max_wrapping_ttl and (not self.max_wrap or rule.max_wrapping_ttl < self.max_wrap):
            self.max_wrap = rule.max_wrapping_ttl
        if rule.min_wrapping_ttl and (not self.min_wrap or rule.min_wrapping_ttl < self.min_wrap):
            self.min_wrap = rule.min_wrapping_ttl
        self.allowed_params = merge_params(self.allowed_params, rule.allowed_parameters)
        self.denied_params = merge_params(self.denied_params, rule.denied_parameters)
        for p in rule.required_parameters:
            if p not in self.required_params:
                self.required_params.append(p)

    @property
    def constrained(self) -> bool:
        """Whether the outcome depends on the request (data or wrapping TTL)."""
        return bool(
            self.allowed_params
            or self.denied_params
            or self.required_params
            or self.min_wrap
            or self.max_wrap
        )

    def decide(self, op: str) -> Decision:
        """The decision ignoring request data (memoised per operation)."""
        d = self._decisions.get(op)
        if d is None:
            bit = OPERATION_BITS.get(op, 0)
            sudo = bool(self.bits & SUDO)
            if bit and self.bits & bit:
                names = self.granting.get(bit, [])
                d = Decision(True, sudo, [{"name": n, "type": "acl"} for n in names])
            else:
                d = Decision(False, sudo)
            self._decisions[op] = d
        return d

    def check(self, op: str, data: dict[str, Any] | None, wrap_ttl: int) -> Decision:
        """The full decision including parameter and wrapping-TTL constraints."""
        d = self.decide(op)
        if not d.allowed:
            return d
        denied = Decision(False, d.sudo)
        if self.max_wrap and (not wrap_ttl or wrap_ttl > self.max_wrap):
            return denied
        if self.min_wrap and (not wrap_ttl or wrap_ttl < self.min_wrap):
            return denied
        if self.min_wrap and self.max_wrap and self.max_wrap < self.min_wrap:
            return denied
        if op in _PARAM_OPS and not params_ok(
            self.allowed_params, self.denied_params, self.required_params, data or {}
        ):
            return denied
        return d


# -- the ACL -------------------------------------------------------------------------------


@dataclass(slots=True)
class _WildcardRule:
    full: str
    parts: list[str]  # the pattern minus a trailing "*", split on "/"
    is_prefix: bool
    first_wc: int
    perms: _Perms


class ACL:
    """The compiled, immutable ACL of a set of policies.

    Templated paths (`{{identity.entity.id}}`, ...) are filled in for `identity`, the
    token's entity; a path that cannot be filled — or any templated path when there is no
    entity — is left out, so it grants nothing (spec auth-api §6.8)."""

    __slots__ = ("root", "_exact", "_prefix", "_prefix_lens", "_wildcards", "_memo")

    def __init__(self, policies: list[AclPolicy], identity: IdentityContext | None = None,
                 ) -> None:
        self.root = any(p is not None and p.is_root for p in policies)
        self._exact: dict[str, _Perms] = {}
        self._prefix: dict[str, _Perms] = {}
        wc: dict[str, _Perms] = {}
        for policy in policies:
            if policy is None or policy.is_root:
                continue
            for original in policy.paths:
                rule = render_rule(original, identity) if original.templated else original
                if rule is None:
                    continue
                if rule.has_segment_wildcards:
                    table = wc
                else:
                    table = self._prefix if rule.is_prefix else self._exact
                perms = table.get(rule.path)
                if perms is None:
                    perms = table[rule.path] = _Perms()
                perms.add(policy.name, rule)
        self._prefix_lens = sorted({len(p) for p in self._prefix}, reverse=True)
        self._wildcards: list[_WildcardRule] = []
        for full, perms in wc.items():
            is_prefix = full.endswith("*")
            stem = full[:-1] if is_prefix else full
            self._wildcards.append(
                _WildcardRule(full, stem.split("/"), is_prefix, full.find("+"), perms)
            )
        self._memo: dict[tuple[str, str], Decision | _Perms] = {}

    # -- lookups -----------------------------------------------------------------------------

    def _longest_prefix(self, path: str) -> tuple[str, _Perms] | None:
        prefix = self._prefix
        n = len(path)
        for length in self._prefix_lens:
            if length <= n:
                cand = path[:length]
                perms = prefix.get(cand)
                if perms is not None:
                    return cand, perms
        return None

    def _non_exact(self, path: str) -> _Perms | None:
        best = self._longest_prefix(path)
        if not self._wildcards:
            return best[1] if best is not None else None
        # Candidates ranked by Vault's priority: (first wildcard position, not a prefix,
        # fewer "+" segments, longer, lexicographically greater) -- the max wins.
        top: tuple[tuple[int, int, int, int, str], _Perms] | None = None
        if best is not None:
            top = ((len(best[0]), 0, 0, len(best[0]), best[0]), best[1])
        parts = path.split("/")
        for w in self._wildcards:
            n = len(w.parts)
            if len(parts) < n or (not w.is_prefix and len(parts) != n):
                continue
            plus = 0
            for i, seg in enumerate(w.parts):
                if seg == "+":
                    plus += 1
                elif seg == parts[i]:
                    pass
                elif w.is_prefix and i == n - 1 and parts[i].startswith(seg):
                    pass
                else:
                    break
            else:
                stem = w.full[:-1] if w.is_prefix else w.full
                key = (w.first_wc, 0 if w.is_prefix else 1, -plus, len(stem), stem)
                if top is None or key > top[0]:
                    top = (key, w.perms)
        return top[1] if top is not None else None

    def _match(self, path: str, op: str) -> _Perms | None:
        path = path.lstrip("/")
        perms = self._exact.get(path)
        if perms is not None:
            return perms
        if op == "list":
            trimmed = path[:-1] if path.endswith("/") else path
            perms = self._exact.get(trimmed)
            if perms is not None:
                return perms
            if trimmed != path:
                perms = self._non_exact(trimmed)
                if perms is not None:
                    return perms
        return self._non_exact(path)

    # -- public API --------------------------------------------------------------------------

    def allowed(
        self, path: str, operation: str, data: dict[str, Any] | None = None, wrap_ttl: int = 0
    ) -> Decision:
        """Whether `operation` on the full request `path` is allowed.

        `data` (the request body) and `wrap_ttl` (seconds from X-Vault-Wrap-TTL, 0 if none)
        only matter when the matching rule has parameter or wrapping-TTL constraints.
        """
        if self.root:
            return ROOT_DECISION
        if operation == "help":
            return Decision(True)
        key = (path, operation)
        hit = self._memo.get(key)
        if hit is None:
            # The path is the one the router resolved (whole-string route match); one with a
            # control character is refused by the API first, and denied here if it got in.
            perms = self._match(path, operation) if path.isprintable() else None
            if perms is None:
                hit = DENIED
            elif perms.constrained:
                hit = perms
            else:
                hit = perms.decide(operation)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = hit
        if isinstance(hit, Decision):
            return hit
        return hit.check(operation, data, wrap_ttl)

    def capabilities(self, path: str) -> list[str]:
        """Sorted capability names on `path` (LIST matching, as Vault); ["deny"] if none."""
        if self.root:
            return ["root"]
        perms = self._match(path, "list")
        bits = perms.bits if perms is not None else 0
        if not bits:
            return ["deny"]
        return capability_names(bits)

    def has_sudo(self, path: str) -> bool:
        """Whether the rule matching `path` grants sudo (root always does)."""
        if self.root:
            return True
        perms = self._match(path, "read")
        return perms is not None and bool(perms.bits & SUDO) and not perms.bits & DENY
