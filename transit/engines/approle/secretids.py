"""AppRole secret-ID handlers: generate, custom, LIST accessors, lookup and destroy by value
and by accessor, tidy (Vault's path_role.go and path_tidy_user_id.go; spec auth-api
§2.3-2.4, §2.6). The secret ID itself appears only in the answer that creates it (which the
caller may have response-wrapped); storage holds its HMAC."""

from __future__ import annotations

import hmac
import time
import uuid

from transit.engines.approle.model import (
    Role,
    SecretID,
    create_hmac,
    invalid_cidr,
    parse_metadata,
    subset_error,
    with_mask,
)
from transit.engines.approle.roles import ROLE_NAME, max_ttl, role_name
from transit.engines.approle.store import AppRoleStore
from transit.errors import InternalError, NoHandler, PermissionDenied, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response
from transit.tokenutil import comma_list

GENERATE_FIELDS: dict[str, Field] = {
    **ROLE_NAME,
    "metadata": Field(FieldType.STRING, ""),
    "cidr_list": Field(FieldType.SLICE, []),
    "token_bound_cidrs": Field(FieldType.SLICE, []),
    "num_uses": Field(FieldType.INT, 0),
    "ttl": Field(FieldType.DURATION, 0),
}
CUSTOM_FIELDS: dict[str, Field] = {**GENERATE_FIELDS, "secret_id": Field(FieldType.STRING, "")}
SECRET_ID_FIELDS: dict[str, Field] = {**ROLE_NAME, "secret_id": Field(FieldType.STRING, "")}
ACCESSOR_FIELDS: dict[str, Field] = {
    **ROLE_NAME, "secret_id_accessor": Field(FieldType.STRING, "")}


class RoleNotFound(NoHandler):
    """Vault's ErrorResponse with ErrUnsupportedPath: 404 with the message, unwrapped."""

    def __init__(self, name: str) -> None:
        super().__init__(f'role "{name}" does not exist')


async def _role_or_500(store: AppRoleStore, d: FieldData) -> Role:
    """Lookup and destroy of a missing role: Vault's plain error (500)."""
    role = await store.get_role(role_name(d))
    if role is None:
        raise InternalError(f'role "{d.get("role_name")}" does not exist')
    return role


async def generate(store: AppRoleStore, req: Request, d: FieldData) -> Response:
    return await _create(store, req, d, str(uuid.uuid4()))


async def custom(store: AppRoleStore, req: Request, d: FieldData) -> Response:
    return await _create(store, req, d, str(d.get("secret_id")))


async def _create(store: AppRoleStore, req: Request, d: FieldData, secret_id: str) -> Response:
    """Vault's handleRoleSecretIDCommon: validate, then store the HMAC and the accessor."""
    if not secret_id:
        raise UserError("missing secret_id")
    role = await store.get_role(role_name(d))
    if role is None:
        raise RoleNotFound(str(d.get("role_name")))
    if not role.bind_secret_id:
        raise UserError("bind_secret_id is not set on the role")
    cidrs = comma_list(d.raw.get("cidr_list"), "cidr_list")
    bad = invalid_cidr(cidrs)
    if bad is not None:
        raise InternalError(f"failed to validate CIDR blocks: {bad}")
    error = subset_error(role.secret_id_bound_cidrs or [], cidrs)
    if error is not None:
        raise InternalError(error)
    token_cidrs = comma_list(d.raw.get("token_bound_cidrs"), "token_bound_cidrs")
    bad = invalid_cidr(token_cidrs)
    if bad is not None:
        raise InternalError(f"failed to validate token CIDR blocks: {bad}")
    error = subset_error([with_mask(c) for c in role.token.bound_cidrs], token_cidrs)
    if error is not None:
        raise InternalError(error)

    if "num_uses" in d.raw:
        num_uses = int(d.get("num_uses"))
        if num_uses < 0:
            raise UserError("num_uses cannot be negative")
        limit = role.secret_id_num_uses
        if limit > 0 and (num_uses == 0 or num_uses > limit):
            raise UserError("num_uses cannot be higher than the role's secret_id_num_uses")
    else:
        num_uses = role.secret_id_num_uses
    if "ttl" in d.raw:
        ttl = int(d.get("ttl"))
        limit = role.secret_id_ttl
        if limit > 0 and (ttl == 0 or ttl > limit):
            raise UserError("ttl cannot be longer than the role's secret_id_ttl")
    else:
        ttl = role.secret_id_ttl
    metadata = parse_metadata(str(d.get("metadata")))

    mount_max = max_ttl(req)
    now = time.time_ns()
    expires = 0
    if ttl < 0 or ttl > mount_max:  # capped by the mount's max TTL (Vault)
        expires = now + mount_max * 1_000_000_000
    elif ttl:
        expires = now + ttl * 1_000_000_000
    entry = SecretID(accessor="", num_uses=num_uses, ttl=ttl, creation_time=now,
                     expiration_time=expires, last_updated_time=now, metadata=metadata,
                     cidr_list=cidrs, token_bound_cidrs=token_cidrs)
    entry = await store.register(role, secret_id, entry)
    return Response(data={
        "secret_id": secret_id,
        "secret_id_accessor": entry.accessor,
        "secret_id_num_uses": entry.num_uses,
        "secret_id_ttl": mount_max if (ttl < 0 or ttl > mount_max) else ttl,
    })


async def list_accessors(store: AppRoleStore, req: Request, d: FieldData) -> Response:
    role = await store.get_role(role_name(d))
    if role is None:  # a 400 here, unlike generate's 404 (vault#27689)
        raise UserError(f'role "{d.get("role_name")}" does not exist')
    return Response(data={"keys": await store.list_accessors(role)})


def _secret_id(d: FieldData) -> str:
    secret_id = str(d.get("secret_id"))
    if not secret_id:
        raise UserError("missing secret_id")
    return secret_id


async def lookup(store: AppRoleStore, req: Request, d: FieldData) -> Response | None:
    """Vault's pathRoleSecretIDLookupUpdate; an unknown secret ID is a 204."""
    secret_id = _secret_id(d)
    role = await _role_or_500(store, d)
    secret_hmac = create_hmac(role.hmac_key, secret_id)
    entry = await store.get_secret(role, secret_hmac)
    if entry is None:
        return None
    target = await store.get_accessor(role, entry.accessor)
    if target is None or not hmac.compare_digest(target[0], secret_hmac):
        await store.destroy(role, secret_hmac)  # an entry without its accessor is revoked
        raise UserError("invalid secret id")
    return Response(data=entry.to_response())


async def destroy(store: AppRoleStore, req: Request, d: FieldData) -> None:
    secret_id = _secret_id(d)
    role = await _role_or_500(store, d)
    await store.destroy(role, create_hmac(role.hmac_key, secret_id))


def _accessor(d: FieldData) -> str:
    accessor = str(d.get("secret_id_accessor"))
    if not accessor:
        raise UserError("missing secret_id_accessor")
    return accessor


async def lookup_accessor(store: AppRoleStore, req: Request, d: FieldData) -> Response | None:
    accessor = _accessor(d)
    role = await _role_or_500(store, d)
    target = await store.get_accessor(role, accessor)
    if target is None:  # Vault: 404 with the success envelope, the error in `data`
        return Response(data={"error": "failed to find accessor entry for "
                                       f'secret_id_accessor: "{accessor}"'}, status=404)
    entry = await store.get_secret(role, target[0])
    return Response(data=entry.to_response()) if entry is not None else None


async def destroy_accessor(store: AppRoleStore, req: Request, d: FieldData) -> None:
    accessor = _accessor(d)
    role = await _role_or_500(store, d)
    target = await store.get_accessor(role, accessor)
    if target is None:
        raise InternalError(f'failed to find accessor entry for secret_id_accessor: "{accessor}"')
    if not await store.destroy(role, target[0]):  # another role's accessor
        raise PermissionDenied("invalid secret id accessor")
