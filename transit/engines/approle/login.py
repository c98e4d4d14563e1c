"""AppRole login (Vault's path_login.go; spec auth-api §2.5): role_id, then the secret ID
(when the role binds one), its CIDRs, the role's CIDRs, and only then one use of a
use-limited secret ID — so a refused login spends nothing."""

from __future__ import annotations

import hmac
import time

from transit.engines.approle.model import create_hmac, subset_error
from transit.engines.approle.store import AppRoleStore
from transit.engines.authmethod import Login, login_response
from transit.errors import InternalError, InvalidCredentials, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response
from transit.tokenutil import TokenParams, addr_allowed, parse_cidrs

LOGIN_FIELDS: dict[str, Field] = {
    "role_id": Field(FieldType.STRING, ""),
    "secret_id": Field(FieldType.STRING, ""),
}
INVALID = "invalid role or secret ID"


def alias_of(data: dict[str, object]) -> str:
    """The lockout look-ahead (Vault's pathLoginUpdateAliasLookahead): the trimmed role_id.
    Its errors are plain (500, unwrapped), as Vault's."""
    try:
        role_id = str(FieldData(dict(data), LOGIN_FIELDS).get("role_id")).strip()
    except UserError as exc:
        raise InternalError(exc.message) from None
    if not role_id:
        raise InternalError("missing role_id")
    return role_id


async def login(store: AppRoleStore, req: Request, d: FieldData) -> Response:
    role_id = str(d.get("role_id")).strip()
    if not role_id:
        raise InternalError("missing role_id")
    role = await store.role_by_id(role_id)
    if role is None:  # unknown role_ids are not counted toward lockout
        raise UserError(INVALID)
    addr = req.remote_addr
    metadata: dict[str, str] = {}
    token = role.token.copy()
    if role.bind_secret_id:
        secret_id = str(d.get("secret_id")).strip()
        if not secret_id:
            raise UserError("missing secret_id")
        secret_hmac = create_hmac(role.hmac_key, secret_id)
        entry = await store.get_secret(role, secret_hmac)
        if entry is None or entry.expired(time.time_ns()):
            raise InvalidCredentials(INVALID)
        target = await store.get_accessor(role, entry.accessor)
        if target is None or not hmac.compare_digest(target[0], secret_hmac):
            await store.destroy(role, secret_hmac)  # Vault revokes an ID without accessor
            raise UserError(INVALID)
        error = subset_error(role.secret_id_bound_cidrs or [], entry.cidr_list)
        if error is not None:
            raise InternalError(error)
        if entry.cidr_list and not addr_allowed(addr, entry.cidr_list):
            if entry.num_uses == 0:
                raise UserError(f'source address "{addr}" unauthorized through CIDR '
                                "restrictions on the secret ID")
            raise UserError(f'source address "{addr}" unauthorized by CIDR restrictions on '
                            "the secret ID: %!w(<nil>)")
        _check_role_cidrs(role.secret_id_bound_cidrs, addr)
        if entry.num_uses > 0:
            spent = await store.spend(role, secret_hmac, entry.accessor, time.time_ns())
            if spent is None:  # its last use went to a concurrent login
                raise InvalidCredentials(INVALID)
            entry = spent
        metadata = dict(entry.metadata)
        if entry.token_bound_cidrs:
            token.bound_cidrs = parse_cidrs(entry.token_bound_cidrs)
    else:
        _check_role_cidrs(role.secret_id_bound_cidrs, addr)
    metadata["role_name"] = role.name
    return login_response(Login(
        token=token, display_name="", metadata=metadata, alias_name=role.role_id,
        alias_metadata=dict(metadata), check_bound_cidrs=False,
        internal_data={"role_name": role.name},
    ))


def _check_role_cidrs(cidrs: list[str] | None, addr: str) -> None:
    if cidrs and not addr_allowed(addr, cidrs):
        raise UserError(f'source address "{addr}" unauthorized by CIDR restrictions on the '
                        "role: %!w(<nil>)")


async def renew(store: AppRoleStore, token: object) -> TokenParams:
    """Vault's pathLoginRenew: the role must still exist; its TTLs are re-read."""
    meta = getattr(token, "meta", None) or {}
    name = str(meta.get("role_name", ""))
    if not name:
        raise InternalError("failed to fetch role_name during renewal")
    role = await store.get_role(name)
    if role is None:
        raise InternalError(f'role "{name}" does not exist during renewal')
    return role.token
