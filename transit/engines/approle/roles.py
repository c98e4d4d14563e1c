"""AppRole role handlers: `role/:name` (create, update, read, delete), `LIST role`,
`role/:name/role-id`, and the single-field sub-paths (`FIELD_PATHS`; Vault's path_role.go,
spec auth-api §2.1-2.2)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from transit.engines.approle.model import MAX_HMAC_INPUT, Role, invalid_cidr
from transit.engines.approle.store import AppRoleStore
from transit.errors import InternalError, UnsupportedPath, UserError
from transit.fields import Field, FieldData, FieldType, remove_duplicates
from transit.gocompat import format_duration
from transit.logical import CREATE, Request, Response
from transit.tokenutil import (
    comma_list,
    parse_cidrs,
    parse_token_fields,
    token_fields,
    validate,
)

DEFAULT_MAX_TTL = 32 * 24 * 3600  # the server's default max_lease_ttl, when none is known
LEGACY = ("policies", "period")  # Vault's approle accepts these beside the token_* fields
TOKEN_MAX_TTL_WARNING = ("token_max_ttl is greater than the backend mount's maximum TTL value; "
                         "issued tokens' max TTL value will be truncated")

ROLE_NAME = {"role_name": Field(FieldType.STRING, "")}
ROLE_FIELDS: dict[str, Field] = {
    **ROLE_NAME,
    "bind_secret_id": Field(FieldType.BOOL, True),
    "bound_cidr_list": Field(FieldType.ANY),
    "secret_id_bound_cidrs": Field(FieldType.ANY),
    "secret_id_num_uses": Field(FieldType.INT, 0),
    "secret_id_ttl": Field(FieldType.DURATION, 0),
    "role_id": Field(FieldType.STRING, ""),
    "local_secret_ids": Field(FieldType.BOOL, False),
    **token_fields(LEGACY),
}
ROLE_ID_FIELDS: dict[str, Field] = {**ROLE_NAME, "role_id": Field(FieldType.STRING, "")}


def max_ttl(req: Request) -> int:
    return req.max_lease_ttl or DEFAULT_MAX_TTL


def role_name(d: FieldData) -> str:
    return str(d.get("role_name")).lower()


def cidr_field(d: FieldData, name: str, *, wrap: bool = True) -> list[str]:
    """A TypeCommaStringSlice of CIDR blocks, validated like Vault's ValidateCIDRListSlice:
    a bad block is a plain error (500) where Vault returns it bare (`wrap`), else a 400."""
    cidrs = comma_list(d.raw.get(name), name)
    bad = invalid_cidr(cidrs)
    if bad is not None:
        message = f"failed to validate CIDR blocks: {bad}"
        raise InternalError(message) if wrap else UserError(message)
    return cidrs


async def role_exists(store: AppRoleStore, req: Request, d: FieldData) -> bool:
    return await store.get_role(role_name(d)) is not None


async def list_roles(store: AppRoleStore, req: Request, d: FieldData) -> Response:
    return Response(data={"keys": await store.list_roles()})


async def read_role(store: AppRoleStore, req: Request, d: FieldData) -> Response | None:
    role = await store.get_role(role_name(d))
    return Response(data=role.to_response()) if role is not None else None


async def delete_role(store: AppRoleStore, req: Request, d: FieldData) -> None:
    await store.delete_role(role_name(d))


async def write_role(store: AppRoleStore, req: Request, d: FieldData) -> Response | None:
    """Vault's pathRoleCreateUpdate: fields not sent keep their values on an update; a new
    role gets a random role_id (unless given) and its own HMAC key."""
    given = str(d.get("role_name"))
    if len(given.encode()) > MAX_HMAC_INPUT:
        raise UserError(f"role_name is longer than maximum of {MAX_HMAC_INPUT} bytes")
    name = given.lower()
    creating = req.operation == CREATE
    fresh_role_id, fresh_hmac_key = str(uuid.uuid4()), str(uuid.uuid4())
    limit = max_ttl(req)
    raw = d.raw

    def change(stored: Role | None) -> tuple[Role, list[str]]:
        if stored is None and not creating:
            raise UnsupportedPath()  # the role went away since the existence check
        role = stored or Role(name=name, hmac_key=fresh_hmac_key)
        role.token, warnings = parse_token_fields(d, role.token, adjust_default_types=True)
        if "local_secret_ids" in raw:
            if stored is not None:
                raise UserError("local_secret_ids can only be modified during role creation")
            role.local_secret_ids = bool(d.get("local_secret_ids"))
        if "role_id" in raw:
            role.role_id = str(d.get("role_id"))
        elif stored is None:
            role.role_id = fresh_role_id
        if not role.role_id:
            raise UserError("invalid role_id supplied, or failed to generate a role_id")
        if "bind_secret_id" in raw or stored is None:
            role.bind_secret_id = bool(d.get("bind_secret_id"))
        for key in ("secret_id_bound_cidrs", "bound_cidr_list"):
            if key in raw:
                role.secret_id_bound_cidrs = cidr_field(d, key)
                break
        if "secret_id_num_uses" in raw or stored is None:
            role.secret_id_num_uses = int(d.get("secret_id_num_uses"))
        if role.secret_id_num_uses < 0:
            raise UserError("secret_id_num_uses cannot be negative")
        if "secret_id_ttl" in raw or stored is None:
            role.secret_id_ttl = int(d.get("secret_id_ttl"))
        legacy_period = role.token.period if "period" in role.token.legacy else 0
        if legacy_period > limit:
            raise UserError(f'period of "{format_duration(legacy_period)}" is greater than '
                            f'the backend\'s maximum lease TTL of "{format_duration(limit)}"')
        if role.token.max_ttl > limit:
            warnings.append(TOKEN_MAX_TTL_WARNING)
        return role, warnings

    _, warnings = await store.save_role(name, change)
    return Response(warnings=warnings) if warnings else None


async def read_role_id(store: AppRoleStore, req: Request, d: FieldData) -> Response | None:
    role = await store.get_role(role_name(d))
    return Response(data={"role_id": role.role_id}) if role is not None else None


async def write_role_id(store: AppRoleStore, req: Request, d: FieldData) -> None:
    name = role_name(d)
    if await store.get_role(name) is None:
        raise UnsupportedPath()
    new_id = str(d.get("role_id"))
    if not new_id:
        raise UserError("missing role_id")

    def change(stored: Role | None) -> tuple[Role, list[str]]:
        if stored is None:
            raise UnsupportedPath()
        stored.role_id = new_id
        return stored, []

    await store.save_role(name, change)


# -- single-field sub-paths ----------------------------------------------------------------

Reader = Callable[[Role], Response]
# (role, request data, mount max TTL) -> None; changes the role in place, raises UserError
Updater = Callable[[Role, FieldData, int], None]
Deleter = Callable[[Role], None]


@dataclass(frozen=True, slots=True)
class FieldPath:
    """`role/:name/<suffix>`: GET shows, POST sets, DELETE resets one field of the role."""

    suffix: str
    fields: dict[str, Field]
    read: Reader
    update: Updater | None = None
    delete: Deleter | None = None


def _need(d: FieldData, name: str, message: str = "") -> None:
    if name not in d.raw:
        raise UserError(message or f"missing {name}")


def _set_policies(role: Role, d: FieldData, limit: int) -> None:
    legacy = role.token.legacy
    if "token_policies" in d.raw:
        role.token.policies = remove_duplicates(comma_list(d.raw["token_policies"],
                                                          "token_policies"))
        if "policies" in d.raw and "policies" not in legacy:
            legacy.append("policies")
        elif "policies" not in d.raw and "policies" in legacy:
            legacy.remove("policies")
    elif "policies" in d.raw:
        role.token.policies = remove_duplicates(comma_list(d.raw["policies"], "policies"))
        if "policies" not in legacy:
            legacy.append("policies")
    else:
        raise UserError("missing token_policies")


def _read_policies(role: Role) -> Response:
    data: dict[str, object] = {"token_policies": list(role.token.policies)}
    if "policies" in role.token.legacy and role.token.policies:
        data["policies"] = list(role.token.policies)
    return Response(data=data)


def _clear_policies(role: Role) -> None:
    role.token.policies = []
    if "policies" in role.token.legacy:
        role.token.legacy.remove("policies")


def _set_period(role: Role, d: FieldData, limit: int) -> None:
    legacy = role.token.legacy
    if "token_period" in d.raw:
        role.token.period = int(d.get("token_period"))
        if "period" in d.raw and "period" not in legacy:
            legacy.append("period")
        elif "period" not in d.raw and "period" in legacy:
            legacy.remove("period")
    elif "period" in d.raw:
        role.token.period = int(d.get("period"))
        if "period" not in legacy:
            legacy.append("period")
    else:
        raise UserError("missing period")
    if role.token.period > limit:
        shown = role.token.period if "period" in legacy else 0  # Vault prints role.Period
        raise UserError(f'period of "{format_duration(shown)}" is greater than the backend\'s '
                        f'maximum lease TTL of "{format_duration(limit)}"')


def _read_period(role: Role) -> Response:
    data: dict[str, object] = {"token_period": role.token.period}
    if "period" in role.token.legacy and role.token.period:
        data["period"] = role.token.period
    return Response(data=data)


def _clear_period(role: Role) -> None:
    role.token.period = 0
    if "period" in role.token.legacy:
        role.token.legacy.remove("period")


def _set_secret_cidrs(key: str, missing: str) -> Updater:
    def update(role: Role, d: FieldData, limit: int) -> None:
        if key in d.raw:
            cidrs = comma_list(d.raw[key], key)
            if not cidrs:
                raise UserError(missing)
            role.secret_id_bound_cidrs = cidr_field(d, key, wrap=False)
    return update


def _set_token_cidrs(role: Role, d: FieldData, limit: int) -> None:
    if "token_bound_cidrs" in d.raw:
        try:
            role.token.bound_cidrs = parse_cidrs(d.raw["token_bound_cidrs"])
        except UserError as exc:
            raise UserError(f"failed to parse token_bound_cidrs: {exc.message}") from None


def _set_bind(role: Role, d: FieldData, limit: int) -> None:
    _need(d, "bind_secret_id")
    role.bind_secret_id = bool(d.get("bind_secret_id"))


def _set_num_uses(role: Role, d: FieldData, limit: int) -> None:
    _need(d, "secret_id_num_uses")
    role.secret_id_num_uses = int(d.get("secret_id_num_uses"))
    if role.secret_id_num_uses < 0:
        raise UserError("secret_id_num_uses cannot be negative")


def _set_secret_ttl(role: Role, d: FieldData, limit: int) -> None:
    _need(d, "secret_id_ttl")
    role.secret_id_ttl = int(d.get("secret_id_ttl"))


def _set_token_num_uses(role: Role, d: FieldData, limit: int) -> None:
    _need(d, "token_num_uses")
    role.token.num_uses = int(d.get("token_num_uses"))
    if role.token.num_uses < 0:  # Vault stores it; a negative use count makes dead tokens
        raise UserError("'token_num_uses' cannot be negative")
    validate(role.token)


def _set_token_ttl(role: Role, d: FieldData, limit: int) -> None:
    _need(d, "token_ttl")
    role.token.ttl = int(d.get("token_ttl"))
    if role.token.max_ttl > 0 and role.token.ttl > role.token.max_ttl:
        raise UserError("token_ttl should not be greater than token_max_ttl")


def _set_token_max_ttl(role: Role, d: FieldData, limit: int) -> None:
    _need(d, "token_max_ttl")
    role.token.max_ttl = int(d.get("token_max_ttl"))
    if role.token.max_ttl > 0 and role.token.ttl > role.token.max_ttl:
        raise UserError("token_max_ttl should be greater than or equal to token_ttl")


def _one(key: str, value: Callable[[Role], object]) -> Reader:
    return lambda role: Response(data={key: value(role)})


def _bound_cidr_list(role: Role) -> Response:
    # Vault moves the legacy field into secret_id_bound_cidrs on every read: always null
    return Response(data={"bound_cidr_list": None}, warnings=[
        'The "bound_cidr_list" field is deprecated and will be removed. Please use '
        '"secret_id_bound_cidrs" instead.'])


def _set_attr(attr: str, value: object) -> Deleter:
    def reset(role: Role) -> None:
        setattr(role, attr, value)
    return reset


def _set_token_attr(attr: str, value: object) -> Deleter:
    def reset(role: Role) -> None:
        setattr(role.token, attr, value)
    return reset


def _noop(role: Role) -> None:
    """Vault's DELETE of bound-cidr-list clears the legacy field only, which reads never
    keep: the role is written back unchanged."""


# The sub-paths Vault has, in its order. `local-secret-ids` is read-only.
FIELD_PATHS: tuple[FieldPath, ...] = (
    FieldPath("local-secret-ids", ROLE_NAME, _one("local_secret_ids",
                                                  lambda r: r.local_secret_ids)),
    FieldPath("policies", {**ROLE_NAME, "policies": Field(FieldType.ANY),
                           "token_policies": Field(FieldType.ANY)},
              _read_policies, _set_policies, _clear_policies),
    FieldPath("bound-cidr-list", {**ROLE_NAME, "bound_cidr_list": Field(FieldType.ANY)},
              _bound_cidr_list, _set_secret_cidrs("bound_cidr_list", "missing bound_cidr_list"),
              _noop),
    FieldPath("secret-id-bound-cidrs",
              {**ROLE_NAME, "secret_id_bound_cidrs": Field(FieldType.ANY)},
              _one("secret_id_bound_cidrs", lambda r: r.secret_id_bound_cidrs),
              _set_secret_cidrs("secret_id_bound_cidrs", "missing bound_cidr_list"),
              _set_attr("secret_id_bound_cidrs", None)),
    FieldPath("token-bound-cidrs", {**ROLE_NAME, "token_bound_cidrs": Field(FieldType.ANY)},
              _one("token_bound_cidrs", lambda r: list(r.token.bound_cidrs) or None),
              _set_token_cidrs, _set_token_attr("bound_cidrs", [])),
    FieldPath("bind-secret-id", {**ROLE_NAME, "bind_secret_id": Field(FieldType.BOOL, True)},
              _one("bind_secret_id", lambda r: r.bind_secret_id), _set_bind,
              _set_attr("bind_secret_id", True)),
    FieldPath("secret-id-num-uses",
              {**ROLE_NAME, "secret_id_num_uses": Field(FieldType.INT, 0)},
              _one("secret_id_num_uses", lambda r: r.secret_id_num_uses), _set_num_uses,
              _set_attr("secret_id_num_uses", 0)),
    FieldPath("secret-id-ttl", {**ROLE_NAME, "secret_id_ttl": Field(FieldType.DURATION, 0)},
              _one("secret_id_ttl", lambda r: r.secret_id_ttl), _set_secret_ttl,
              _set_attr("secret_id_ttl", 0)),
    FieldPath("period", {**ROLE_NAME, "period": Field(FieldType.DURATION, 0),
                         "token_period": Field(FieldType.DURATION, 0)},
              _read_period, _set_period, _clear_period),
    FieldPath("token-num-uses", {**ROLE_NAME, "token_num_uses": Field(FieldType.INT, 0)},
              _one("token_num_uses", lambda r: r.token.num_uses), _set_token_num_uses,
              _set_token_attr("num_uses", 0)),
    FieldPath("token-ttl", {**ROLE_NAME, "token_ttl": Field(FieldType.DURATION, 0)},
              _one("token_ttl", lambda r: r.token.ttl), _set_token_ttl,
              _set_token_attr("ttl", 0)),
    FieldPath("token-max-ttl", {**ROLE_NAME, "token_max_ttl": Field(FieldType.DURATION, 0)},
              _one("token_max_ttl", lambda r: r.token.max_ttl), _set_token_max_ttl,
              _set_token_attr("max_ttl", 0)),
)


async def read_field(fp: FieldPath, store: AppRoleStore, req: Request, d: FieldData
                     ) -> Response | None:
    role = await store.get_role(role_name(d))
    return fp.read(role) if role is not None else None


async def update_field(fp: FieldPath, store: AppRoleStore, req: Request, d: FieldData) -> None:
    """POST of a sub-path: a missing role is 404 `unsupported path` (Vault)."""
    assert fp.update is not None
    update, limit = fp.update, max_ttl(req)
    name = role_name(d)
    if await store.get_role(name) is None:
        raise UnsupportedPath()

    def change(stored: Role | None) -> tuple[Role, list[str]]:
        if stored is None:
            raise UnsupportedPath()
        update(stored, d, limit)
        return stored, []

    await store.save_role(name, change)


async def delete_field(fp: FieldPath, store: AppRoleStore, req: Request, d: FieldData) -> None:
    """DELETE of a sub-path: the field's default; nothing to do for a missing role."""
    assert fp.delete is not None
    reset = fp.delete
    name = role_name(d)
    if await store.get_role(name) is None:
        return

    def change(stored: Role | None) -> tuple[Role, list[str]]:
        if stored is None:
            raise UnsupportedPath()
        reset(stored)
        return stored, []

    await store.save_role(name, change)
