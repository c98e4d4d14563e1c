"""ACL policy templating, ACL mode (Vault's sdk/helper/identitytpl; spec auth-api §6.8).

`render(text, ctx)` fills every `{{ parameter }}` of a policy path from the token's entity
and groups; None when any cannot be filled (no entity, a missing or empty value, an alias
on a mount the entity has none on, a group it is not in, an unknown parameter, or a value
holding a glob character) — the caller then drops the whole path block, as Vault does.
`balanced(text)` is the only check made when a policy is written.

Parameters: identity.entity.id | .name | .metadata.<key>
            identity.entity.aliases.<mount accessor>.id | .name | .metadata.<key>
                                                        | .custom_metadata.<key>
            identity.groups.ids.<group id>.name | .metadata.<key>
            identity.groups.names.<group name>.id | .metadata.<key>
(`time.now*` parameters are not supported: such a path never matches.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transit.identity.store import IdentityContext

OPEN, CLOSE = "{{", "}}"
UNBALANCED = "unbalanced templating characters"


def is_templated(text: str) -> bool:
    return OPEN in text


def balanced(text: str) -> bool:
    """Vault's write-time check: as many `{{` as `}}`, each closed before the next opens."""
    if text.count(OPEN) != text.count(CLOSE):
        return False
    pos = 0
    while True:
        start = text.find(OPEN, pos)
        if start < 0:
            return CLOSE not in text[pos:]
        if CLOSE in text[pos:start]:
            return False
        end = text.find(CLOSE, start + 2)
        if end < 0 or OPEN in text[start + 2:end]:
            return False
        pos = end + 2


def render(text: str, ctx: IdentityContext | None) -> str | None:
    if OPEN not in text:
        return text
    if ctx is None:
        return None
    out: list[str] = []
    pos = 0
    while True:
        start = text.find(OPEN, pos)
        if start < 0:
            out.append(text[pos:])
            return "".join(out)
        end = text.find(CLOSE, start + 2)
        if end < 0:
            return None
        value = _parameter(text[start + 2:end].strip(), ctx)
        if not value or "*" in value or "+" in value:
            return None
        out.append(text[pos:start])
        out.append(value)
        pos = end + 2


def _lookup(mapping: Any, key: str) -> str | None:
    if not isinstance(mapping, dict):
        return None
    value = mapping.get(key)
    return value if isinstance(value, str) else None


def _parameter(name: str, ctx: IdentityContext) -> str | None:
    entity = ctx.entity
    if name.startswith("identity.entity."):
        rest = name[len("identity.entity."):]
        if rest == "id":
            return str(entity["id"])
        if rest == "name":
            return str(entity["name"])
        if rest.startswith("metadata."):
            return _lookup(entity.get("metadata"), rest[len("metadata."):])
        if rest.startswith("aliases."):
            accessor, _, field = rest[len("aliases."):].partition(".")
            alias = next((a for a in entity.get("aliases") or []
                          if a["mount_accessor"] == accessor), None)
            return _field(alias, field, ("id", "name"), ("metadata", "custom_metadata"))
        return None
    if name.startswith("identity.groups.ids."):
        gid, _, field = name[len("identity.groups.ids."):].partition(".")
        group = next((g for g in ctx.groups if g["id"] == gid), None)
        return _field(group, field, ("name",), ("metadata",))
    if name.startswith("identity.groups.names."):
        gname, _, field = name[len("identity.groups.names."):].partition(".")
        group = next((g for g in ctx.groups if g["name"] == gname), None)
        return _field(group, field, ("id",), ("metadata",))
    return None


def _field(record: dict[str, Any] | None, field: str, plain: tuple[str, ...],
           maps: tuple[str, ...]) -> str | None:
    if record is None:
        return None
    if field in plain:
        return _lookup(record, field)
    head, _, key = field.partition(".")
    if head in maps and key:
        return _lookup(record.get(head), key)
    return None
