"""Vault ACL policies: HCL (or JSON) text -> `AclPolicy` (spec ha-and-sys-api §4.9).

Mirrors Vault's `vault/policy.go` (ParseACLPolicy / parsePaths): top-level keys `name` and
`path`; per-path keys `capabilities`, the legacy `policy = "read|write|deny|sudo"` shorthand,
`allowed_parameters`, `denied_parameters`, `required_parameters`, `min_wrapping_ttl`,
`max_wrapping_ttl` (and `comment`, `mfa_methods`, `control_group`, accepted and ignored).
`deny` among the capabilities wipes the others. The raw text is kept verbatim in `raw`.

Every problem is a `UserError("failed to parse policy: ...")`, never a parser traceback.
Layer: stdlib, transit.hcl, transit.errors and `transit.fields.parse_duration`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transit import hcl
from transit.errors import UserError
from transit.fields import MAX_DURATION_SECONDS, parse_duration
from transit.identity.templating import UNBALANCED, balanced, is_templated, render

if TYPE_CHECKING:
    from transit.identity.store import IdentityContext

# Capability bits, in Vault's order (vault/policy.go).
DENY = 1 << 0
CREATE = 1 << 1
READ = 1 << 2
UPDATE = 1 << 3
DELETE = 1 << 4
LIST = 1 << 5
SUDO = 1 << 6
PATCH = 1 << 7

CAPABILITY_BITS: dict[str, int] = {
    "deny": DENY,
    "create": CREATE,
    "read": READ,
    "update": UPDATE,
    "delete": DELETE,
    "list": LIST,
    "sudo": SUDO,
    "patch": PATCH,
}

# The pre-0.5 `policy = "..."` shorthand, as Vault expands it.
LEGACY_POLICIES: dict[str, tuple[str, ...]] = {
    "deny": ("deny",),
    "read": ("read", "list"),
    "write": ("create", "read", "update", "delete", "list"),
    "sudo": ("create", "read", "update", "delete", "list", "sudo"),
}

_TOP_KEYS = frozenset({"name", "path"})
_PATH_KEYS = frozenset(
    {
        "comment",
        "policy",
        "capabilities",
        "allowed_parameters",
        "denied_parameters",
        "required_parameters",
        "min_wrapping_ttl",
        "max_wrapping_ttl",
        "mfa_methods",
        "control_group",
    }
)


def capability_names(bits: int) -> list[str]:
    """The capability names in a bitmap, sorted (["deny"] when deny is set)."""
    if bits & DENY:
        return ["deny"]
    return sorted(name for name, bit in CAPABILITY_BITS.items() if bits & bit)


@dataclass(slots=True)
class PathRule:
    """One `path "..." { ... }` stanza, normalised the way Vault's PathRules is."""

    pattern: str  # as written (minus a leading "/")
    path: str  # the match key: `pattern` without the trailing "*" for plain globs
    capabilities: int  # bitmap of CAPABILITY_BITS
    is_prefix: bool = False  # ends in "*" (and has no "+" segment)
    has_segment_wildcards: bool = False  # contains a "+" segment
    allowed_parameters: dict[str, list[Any]] | None = None
    denied_parameters: dict[str, list[Any]] | None = None
    required_parameters: list[str] = field(default_factory=list)
    min_wrapping_ttl: int = 0  # seconds
    max_wrapping_ttl: int = 0
    templated: bool = False  # has `{{ ... }}`: filled per entity (transit/identity/templating)


@dataclass(slots=True)
class AclPolicy:
    name: str
    raw: str  # the text exactly as the client sent it (after base64 decoding)
    paths: list[PathRule] = field(default_factory=list)
    templated: bool = False  # some path is templated: its ACL depends on the entity

    @property
    def is_root(self) -> bool:
        return self.name == "root"


def _fail(detail: str) -> UserError:
    return UserError(f"failed to parse policy: {detail}")


def _load(text: str) -> dict[str, Any]:
    """HCL or JSON text -> a plain dict (JSON when the text starts with "{", like HCL1)."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    else:
        try:
            data = hcl.loads(text)
        except hcl.HCLError as exc:
            raise _fail(str(exc)) from None
    if not isinstance(data, dict):
        raise _fail("does not contain a root object")
    return data


def _stanzas(value: Any) -> list[tuple[str, Any]]:
    """(pattern, body) pairs from hcl2's list-of-blocks or JSON's object/list shapes."""
    if isinstance(value, list):
        return [s for item in value for s in _stanzas(item)]
    if not isinstance(value, dict):
        raise _fail('path: expected a block like path "<pattern>" { ... }')
    out: list[tuple[str, Any]] = []
    for pattern, body in value.items():
        bodies = body if isinstance(body, list) else [body]
        out.extend((str(pattern), b) for b in bodies)
    return out


def _str_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _fail(f"{what}: expected a list of strings")


def _params(value: Any, what: str) -> dict[str, list[Any]]:
    """allowed_/denied_parameters: {name: [values]}; names lower-cased like Vault."""
    items: list[tuple[Any, Any]] = []
    for part in value if isinstance(value, list) else [value]:
        if not isinstance(part, dict):
            raise _fail(f"{what}: expected a map of lists")
        items.extend(part.items())
    out: dict[str, list[Any]] = {}
    for key, vals in items:
        if vals is None:
            vals = []
        if not isinstance(vals, list):
            vals = [vals]
        out[str(key).lower()] = vals
    return out


def _duration(value: Any, what: str) -> int:
    """Vault's ParseDurationSecond for the wrapping TTL keys."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise _fail(f"error parsing {what}: {exc}") from None
    if abs(seconds) > MAX_DURATION_SECONDS:  # beyond Go's time.Duration
        raise _fail(f"error parsing {what}: time: invalid duration {str(value)!r}")
    return seconds


def _parse_path(pattern: str, body: Any) -> PathRule:
    if not isinstance(body, dict):
        raise _fail(f'path "{pattern}": expected a block')
    for key in body:
        if key not in _PATH_KEYS:
            raise _fail(f'path "{pattern}": invalid key "{key}"')
    path = pattern[1:] if pattern.startswith("/") else pattern
    templated = is_templated(path)
    if (templated or "}}" in path) and not balanced(path):
        raise _fail(f'path "{path}": failed to validate policy templating: {UNBALANCED}')
    if "+*" in path:
        raise _fail(f"path \"{path}\": invalid use of wildcards ('+*' is forbidden)")
    segment_wc = path == "+" or "/+" in path or path.startswith("+/")
    key = path
    is_prefix = False
    if path.endswith("*") and not segment_wc:
        key = path[:-1]
        is_prefix = True

    caps: list[str] = []
    legacy = body.get("policy")
    if legacy is not None and legacy != "":
        if not isinstance(legacy, str) or legacy not in LEGACY_POLICIES:
            raise _fail(f'path "{pattern}": invalid policy "{legacy}"')
        caps.extend(LEGACY_POLICIES[legacy])
    if body.get("capabilities") is not None:
        caps.extend(_str_list(body["capabilities"], f'path "{pattern}": capabilities'))

    bits = 0
    for cap in caps:
        bit = CAPABILITY_BITS.get(cap)
        if bit is None:
            raise _fail(f'path "{pattern}": invalid capability "{cap}"')
        if bit == DENY:  # deny wipes everything else, parameters included
            return PathRule(path, key, DENY, is_prefix, segment_wc, templated=templated)
        bits |= bit

    rule = PathRule(path, key, bits, is_prefix, segment_wc, templated=templated)
    if body.get("allowed_parameters") is not None:
        rule.allowed_parameters = _params(body["allowed_parameters"], "allowed_parameters")
    if body.get("denied_parameters") is not None:
        rule.denied_parameters = _params(body["denied_parameters"], "denied_parameters")
    if body.get("required_parameters") is not None:
        rule.required_parameters = _str_list(body["required_parameters"], "required_parameters")
    if body.get("min_wrapping_ttl") is not None:
        rule.min_wrapping_ttl = _duration(body["min_wrapping_ttl"], "min_wrapping_ttl")
    if body.get("max_wrapping_ttl") is not None:
        rule.max_wrapping_ttl = _duration(body["max_wrapping_ttl"], "max_wrapping_ttl")
    if (
        rule.min_wrapping_ttl
        and rule.max_wrapping_ttl
        and rule.max_wrapping_ttl < rule.min_wrapping_ttl
    ):
        raise _fail("max_wrapping_ttl cannot be less than min_wrapping_ttl")
    return rule


def parse_policy(name: str, text: str) -> AclPolicy:
    """Parse policy text (HCL or JSON). Raises UserError("failed to parse policy: ...")."""
    if not isinstance(text, str):
        raise _fail("policy must be a string")
    data = _load(text)
    for key in data:
        if key not in _TOP_KEYS:
            raise _fail(f'invalid key "{key}"')
    paths: list[PathRule] = []
    if data.get("path") is not None:
        for pattern, body in _stanzas(data["path"]):
            paths.append(_parse_path(pattern, body))
    return AclPolicy(name=name, raw=text, paths=paths,
                     templated=any(p.templated for p in paths))


def render_rule(rule: PathRule, ctx: IdentityContext | None) -> PathRule | None:
    """A templated rule with its path filled for `ctx`'s entity; None when it cannot be
    filled (no entity, a missing value): Vault then drops the whole path block."""
    path = render(rule.pattern, ctx)
    if path is None or "+*" in path:
        return None
    segment_wc = path == "+" or "/+" in path or path.startswith("+/")
    is_prefix = path.endswith("*") and not segment_wc
    return dataclasses.replace(rule, pattern=path, path=path[:-1] if is_prefix else path,
                               is_prefix=is_prefix, has_segment_wildcards=segment_wc,
                               templated=False)
