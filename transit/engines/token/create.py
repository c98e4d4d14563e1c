"""`auth/token/create`, `create-orphan` and `create/:role_name` (Vault's handleCreateCommon)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from transit.engines.token.common import is_sudo, string_list, string_map
from transit.errors import InternalError, PermissionDenied, UserError
from transit.fields import Field, FieldData, FieldType, remove_duplicates
from transit.logical import Request, Response
from transit.tokens.entry import BATCH, SERVICE
from transit.tokens.roles import (
    TokenRole,
    contains_glob,
    go_quote_list,
    sanitize_policies,
)
from transit.tokens.ttl import calculate_ttl

if TYPE_CHECKING:
    from transit.engines.token.common import TokenPort

CREATE_FIELDS: dict[str, Field] = {
    "id": Field(FieldType.STRING, ""),
    "role_name": Field(FieldType.STRING, ""),
    "policies": Field(FieldType.SLICE, []),
    "meta": Field(FieldType.MAP, None),
    "no_parent": Field(FieldType.BOOL, False),
    "no_default_policy": Field(FieldType.BOOL, False),
    "lease": Field(FieldType.STRING, ""),
    "ttl": Field(FieldType.DURATION, None),
    "explicit_max_ttl": Field(FieldType.DURATION, None),
    "period": Field(FieldType.DURATION, None),
    "display_name": Field(FieldType.STRING, ""),
    "num_uses": Field(FieldType.INT, 0),
    "renewable": Field(FieldType.BOOL, True),
    "type": Field(FieldType.STRING, ""),
    "entity_alias": Field(FieldType.STRING, ""),
}

NON_ASSIGNABLE = ("response-wrapping", "control-group")
_DISPLAY_SANITIZE = re.compile(r"[^a-zA-Z0-9-]")
CUSTOM_ID_WARNING = (
    "Supplying a custom ID for the token uses the weaker SHA1 hashing instead of the more "
    "secure SHA2-256 HMAC for token obfuscation. SHA1 hashed tokens on the wire leads to "
    "less secure lookups."
)


async def create(b: TokenPort, req: Request, d: FieldData) -> Response:
    return await _create(b, req, d, orphan=False, role=None)


async def create_orphan(b: TokenPort, req: Request, d: FieldData) -> Response:
    return await _create(b, req, d, orphan=True, role=None)


async def create_with_role(b: TokenPort, req: Request, d: FieldData) -> Response:
    name = d.get("role_name")
    role = await b.tokens.roles.get(name)
    if role is None:
        raise UserError(f"unknown role {name}")
    return await _create(b, req, d, orphan=False, role=role)


def _token_type(requested: str, role: TokenRole | None) -> str:
    if role is not None:
        rt = role.token_type
        if rt in ("default", "default-service"):
            pass
        elif rt == "default-batch":
            requested = requested or BATCH
        elif rt in (SERVICE, BATCH):
            requested = rt
        else:
            raise UserError(f'role being used for token creation contains invalid token type "{rt}"')
    if requested in ("", SERVICE):
        return SERVICE
    if requested == BATCH:
        return BATCH
    raise UserError("invalid 'token_type' value")


def _role_policies(requested: list[str], role: TokenRole, parent: list[str], no_default: bool) -> list[str]:
    """The policy rules of a role with allowed/disallowed lists (no subset-of-parent rule)."""
    add_default = not no_default and "default" not in role.disallowed_policies
    final = sanitize_policies(requested, add_default) if requested else []
    if role.allowed_policies or role.allowed_policies_glob:
        allowed = sanitize_policies(role.allowed_policies, add_default)
        if not final:
            final = allowed
        else:
            globs = sanitize_policies(role.allowed_policies_glob, False)
            for p in final:
                if not contains_glob(allowed, p) and not contains_glob(globs, p):
                    raise UserError(
                        f"token policies ({go_quote_list(final)}) must be subset of the role's "
                        f"allowed policies ({go_quote_list(allowed)}) or glob policies "
                        f"({go_quote_list(globs)})"
                    )
    elif not final:
        final = sanitize_policies(parent, add_default)
    if role.disallowed_policies or role.disallowed_policies_glob:
        denied = remove_duplicates(role.disallowed_policies)
        denied_globs = remove_duplicates(role.disallowed_policies_glob)
        for p in final:
            if p in denied or contains_glob(denied_globs, p):
                raise UserError(f'token policy "{p}" is disallowed by this role')
    return final


async def _entity_from_alias(b: TokenPort, req: Request, role: TokenRole | None,
                             alias: str) -> str:
    """Vault's `entity_alias` on token creation: the entity owning alias `alias` on the
    token mount (made when missing), allowed by the role's `allowed_entity_aliases`."""
    if role is None:
        raise UserError("'entity_alias' is only allowed in combination with token role")
    lower = alias.lower()
    allowed = role.allowed_entity_aliases
    if lower not in allowed and not contains_glob(allowed, lower):
        raise UserError("invalid 'entity_alias' value")
    identity = getattr(b, "identity", None)
    if identity is None:
        raise InternalError("failed to create or fetch entity from given entity alias")
    try:
        entity_id, _ = await identity.login_entity(req.mount_accessor, "token", alias, None)
    except PermissionDenied:
        raise PermissionDenied("entity from given entity alias is disabled") from None
    return str(entity_id)


async def _create(
    b: TokenPort, req: Request, d: FieldData, *, orphan: bool, role: TokenRole | None
) -> Response:
    parent = req.token
    if parent is None:
        raise UserError("parent token lookup failed: no parent found")
    if parent.type == BATCH:
        raise UserError("batch tokens cannot create more tokens")
    if parent.num_uses != 0:
        raise UserError("restricted use token cannot generate child tokens")
    sudo = await is_sudo(b, req)

    policies_in = string_list(d.get("policies"), "policies")
    meta = string_map(d.get("meta"), "meta")
    no_default = d.get("no_default_policy") or (role is not None and role.token_no_default_policy)
    num_uses = d.get("num_uses")
    renewable = d.get("renewable")
    token_type = _token_type(d.get("type"), role)
    explicit_max, has_explicit = d.get_ok("explicit_max_ttl")
    period, has_period = d.get_ok("period")
    if token_type == BATCH:
        bad = ""
        if has_explicit and explicit_max:
            bad = "explicit_max_ttl"
        elif num_uses:
            bad = "num_uses"
        elif has_period and period:
            bad = "period"
        if bad:
            raise UserError(f'batch tokens cannot have "{bad}" set')
        renewable = False
    if num_uses < 0:
        raise UserError("number of uses cannot be negative")
    if role is not None and role.token_num_uses > 0 and (num_uses == 0 or role.token_num_uses < num_uses):
        num_uses = role.token_num_uses

    path = "auth/token/" + req.path
    if role is not None:
        renewable = renewable and role.renewable
        if role.path_suffix:
            path = f"{path}/{role.path_suffix}"
    display_name = "token"
    if d.get("display_name"):
        display_name = _DISPLAY_SANITIZE.sub("-", "token-" + d.get("display_name")).removesuffix("-")
    token_id = d.get("id")
    if token_id and not sudo:
        raise UserError("root or sudo privileges required to specify token id")

    # policies (the NOTE in Vault: these checks must see the final set)
    add_default = False
    if role is not None and (role.allowed_policies or role.disallowed_policies
                             or role.allowed_policies_glob or role.disallowed_policies_glob):
        chosen = _role_policies(policies_in, role, parent.policies, no_default)
    elif not policies_in:
        chosen = sanitize_policies(parent.policies, False)
    elif not sudo:
        wanted = sanitize_policies(policies_in, False)
        held = sanitize_policies(parent.policies, False)
        if not set(wanted) <= set(held):
            raise UserError("child policies must be subset of parent")
        add_default = not no_default and "default" in parent.policies
        chosen = policies_in
    else:
        add_default = not no_default
        chosen = policies_in
    policies = sanitize_policies(chosen, add_default)
    if no_default:
        policies = [p for p in policies if p != "default"]
    for p in policies:
        if p in NON_ASSIGNABLE:
            raise UserError(f'cannot assign policy "{p}"')
    if "root" in policies:
        if not parent.is_root():
            raise UserError("root tokens may not be created without parent token being root")
        if token_type == BATCH:
            raise UserError("batch tokens cannot be root tokens")

    if role is not None:
        orphan = orphan or role.orphan
    elif d.get("no_parent"):
        if not sudo:
            raise UserError("root or sudo privileges required to create orphan token")
        orphan = True

    resp = Response()
    explicit_max = explicit_max or 0
    if explicit_max < 0:
        raise UserError("explicit_max_ttl must be positive")
    period = period or 0
    if period < 0:
        raise UserError("period must be positive")
    if period > 0 and not sudo:
        raise UserError("root or sudo privileges required to create periodic token")
    ttl, has_ttl = d.get_ok("ttl")
    ttl = ttl or 0
    if not has_ttl and d.get("lease"):
        from transit.fields import parse_duration

        try:
            ttl = parse_duration(d.get("lease"))
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if ttl < 0:
            raise UserError("lease must be positive")
    elif ttl < 0:
        raise UserError("ttl must be positive")

    if role is not None and token_type != BATCH:
        if role.explicit_max_ttl:
            if explicit_max == 0:
                explicit_max = role.explicit_max_ttl
            else:
                explicit_max = min(explicit_max, role.explicit_max_ttl)
                resp.add_warning(
                    "Explicit max TTL specified both during creation call and in role; "
                    f"using the lesser value of {explicit_max} seconds"
                )
        if role.period:
            if period == 0:
                period = role.period
            else:
                period = min(period, role.period)
                resp.add_warning(
                    "Period specified both during creation call and in role; "
                    f"using the lesser value of {period} seconds"
                )

    now = b.tokens.clock()
    if period > 0 or ttl > 0 or "root" not in policies:
        ttl, warnings = calculate_ttl(
            increment=0, backend_ttl=ttl, period=period, explicit_max_ttl=explicit_max,
            start=now, now=now, default_ttl=b.tokens.default_lease_ttl,
            max_ttl=b.tokens.max_lease_ttl,
        )
        for w in warnings:
            resp.add_warning(w)
    if ttl == 0 and explicit_max > 0:
        ttl = explicit_max
    if ttl == 0:
        if parent.expire_time:
            raise UserError("expiring root tokens cannot create non-expiring root tokens")
        renewable = False
    elif not orphan and parent.expire_time and period == 0:
        # A child never outlives its parent: it would be revoked with it anyway.
        ttl = max(1, min(ttl, int(parent.expire_time - now)))

    entity_id = "" if orphan else parent.entity_id
    if d.get("entity_alias"):
        entity_id = await _entity_from_alias(b, req, role, d.get("entity_alias"))
    if token_id:
        resp.add_warning(CUSTOM_ID_WARNING)
    entry = await b.tokens.create(
        parent, policies=policies, meta=meta, display_name=display_name, num_uses=num_uses,
        ttl=ttl, explicit_max_ttl=explicit_max, period=period, renewable=renewable,
        orphan=orphan, role=role.name if role is not None else "", path=path,
        type=token_type, id=token_id, entity_id=entity_id,
    )
    resp.auth = entry.auth_block()
    store = getattr(b, "policies", None)
    if store is not None and hasattr(store, "get"):
        for p in policies:
            if p != "root" and await store.get(p) is None:
                resp.add_warning(f'Policy "{p}" does not exist')
    return resp
