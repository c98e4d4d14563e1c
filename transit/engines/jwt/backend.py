"""The JWT auth method, JWT mode (Vault's vault-plugin-auth-jwt; spec auth-api §5): its one
route table and handlers. The OIDC browser flow (`oidc/auth_url`, `oidc/callback`) is not
served; a mount of type `oidc` is the same method, as in Vault.

Storage (behind the barrier): `config` (`config.py`) and `role/<name>` (`role.py`). A login
verifies the token's signature (keys from `keys.py`, verification on the thread pool), its
registered claims and the role's bounds (`claims.py`), then returns a `Login`; the core makes
the token, and the identity store syncs the external groups the groups claim names.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from transit import pools
from transit.engines.authmethod import Login, login_response
from transit.engines.framework import Engine, ExistenceCheck, Handler, Route, name
from transit.engines.jwt import claims as jwtclaims
from transit.engines.jwt import jws
from transit.engines.jwt.config import CONFIG_FIELDS, CONFIG_KEY, JWTConfig, parse_config
from transit.engines.jwt.keys import FetchError, KeyCache, check_config, has_kid, select
from transit.engines.jwt.role import ROLE_FIELDS, ROLE_PREFIX, JWTRole, apply_role_write, role_key
from transit.errors import InternalError, PermissionDenied, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from transit.storage.base import Write
from transit.storage.update import update
from transit.tokenutil import TokenParams, addr_allowed

LOGIN_FIELDS: dict[str, Field] = {
    "role": Field(FieldType.STRING, ""),
    "jwt": Field(FieldType.STRING, ""),
}
_SIGNATURE = "error validating token: error verifying token signature: "


class JWTBackend(Engine):
    mount_type = "jwt"
    unauthenticated = ("login",)

    def __init__(self, storage: Any, options: dict[str, Any] | None = None) -> None:
        self.storage = storage
        self.keys = KeyCache()
        self.clock: Callable[[], float] = time.time
        b = self

        def h(fn: Callable[[JWTBackend, Request, FieldData], Awaitable[Any]]) -> Handler:
            return partial(fn, b)

        def e(fn: Callable[[JWTBackend, Request, FieldData], Awaitable[bool]]
              ) -> ExistenceCheck:
            return partial(fn, b)

        super().__init__([
            Route(r"config", {READ: h(read_config), UPDATE: h(write_config)}, CONFIG_FIELDS),
            Route(r"role/?", {LIST: h(list_roles)}, {}),
            Route(
                rf"role/{name('name')}",
                {READ: h(read_role), CREATE: h(write_role), UPDATE: h(write_role),
                 DELETE: h(delete_role)},
                ROLE_FIELDS, existence_check=e(role_exists),
            ),
            Route(r"login", {UPDATE: h(login)}, LOGIN_FIELDS),
        ])

    async def invalidate(self, key: str) -> None:
        if key == CONFIG_KEY:
            self.keys.clear()

    async def invalidate_all(self) -> None:
        self.keys.clear()

    async def renew_login(self, token: Any) -> TokenParams | None:
        """Vault's pathLoginRenew: the role's current TTLs; refused once the role is gone."""
        role_name = str((token.meta or {}).get("role", ""))
        role = await self.get_role(role_name)
        if role is None:
            raise InternalError(f"role {role_name} does not exist during renewal")
        return role.token

    async def get_config(self) -> JWTConfig | None:
        raw = await self.storage.get(CONFIG_KEY)
        return JWTConfig.from_json(raw) if raw is not None else None

    async def get_role(self, role_name: str) -> JWTRole | None:
        if not role_name:
            return None
        raw = await self.storage.get(role_key(role_name))
        return JWTRole.from_json(raw) if raw is not None else None

    async def verify_signature(self, config: JWTConfig, token: jws.JWS) -> None:
        """Raise UserError unless one of the config's keys signed `token`."""
        if config.jwt_validation_pubkeys:
            if await pools.in_thread(jws.verify, self.keys.static_keys(config), token):
                return
        else:
            try:
                keys = await self.keys.remote_keys(config)
                refreshed = False
                if not has_kid(keys, token.kid):  # a rotated key: fetch the set again
                    keys, refreshed = await self.keys.remote_keys(config, refresh=True), True
                if await pools.in_thread(jws.verify, select(keys, token.kid), token):
                    return
                if not refreshed:
                    keys = await self.keys.remote_keys(config, refresh=True)
                    if await pools.in_thread(jws.verify, select(keys, token.kid), token):
                        return
            except FetchError as exc:
                raise UserError(f"{_SIGNATURE}failed to fetch keys: {exc}") from None
        raise UserError(f"{_SIGNATURE}no known key successfully validated the token signature")


def jwt_factory(storage: Any, options: dict[str, Any]) -> Engine:
    return JWTBackend(storage, options)


def oidc_factory(storage: Any, options: dict[str, Any]) -> Engine:
    backend = JWTBackend(storage, options)
    backend.mount_type = "oidc"
    return backend


# -- config ---------------------------------------------------------------------------------


async def read_config(b: JWTBackend, req: Request, d: FieldData) -> Response | None:
    config = await b.get_config()
    if config is None:
        return None
    return Response(data=config.to_response())


async def write_config(b: JWTBackend, req: Request, d: FieldData) -> None:
    config = parse_config(d)
    await check_config(config)  # fetches the discovery document / JWKS (400 when it fails)
    await b.storage.put(CONFIG_KEY, config.to_json())
    b.keys.clear()


# -- roles ----------------------------------------------------------------------------------


def _role_name(d: FieldData) -> str:
    return str(d.get("name"))


async def role_exists(b: JWTBackend, req: Request, d: FieldData) -> bool:
    return await b.get_role(_role_name(d)) is not None


async def list_roles(b: JWTBackend, req: Request, d: FieldData) -> Response:
    keys = sorted(await b.storage.list(ROLE_PREFIX))
    return Response(data={"keys": keys})


async def read_role(b: JWTBackend, req: Request, d: FieldData) -> Response | None:
    role = await b.get_role(_role_name(d))
    if role is None:
        return None
    return Response(data=role.to_response())


async def delete_role(b: JWTBackend, req: Request, d: FieldData) -> None:
    await b.storage.delete(role_key(_role_name(d)))


async def write_role(b: JWTBackend, req: Request, d: FieldData) -> Response | None:
    key = role_key(_role_name(d))

    def change(values: dict[str, bytes | None]) -> tuple[list[Write], list[str]]:
        raw = values[key]
        role, warnings = apply_role_write(d, JWTRole.from_json(raw) if raw is not None else None)
        return [Write(key, role.to_json())], warnings

    warnings: list[str] = await update(b.storage, [key], change)
    if not warnings:
        return None
    return Response(warnings=warnings)


# -- login ----------------------------------------------------------------------------------


async def login(b: JWTBackend, req: Request, d: FieldData) -> Response:
    """Vault's pathLogin (JWT mode); every refusal is a 400 with Vault's text (bound CIDRs:
    403), in Vault's order (spec §5.3)."""
    config = await b.get_config()
    if config is None:
        raise UserError("could not load configuration")
    role_name = d.get("role") or config.default_role
    if not role_name:
        raise UserError("missing role")
    role = await b.get_role(role_name)
    if role is None:
        raise UserError(f'role "{role_name}" could not be found')
    if role.role_type == "oidc":
        raise UserError("role with oidc role_type is not allowed")
    raw_token = d.get("jwt")
    if not raw_token:
        raise UserError("missing token")
    if not addr_allowed(req.remote_addr, role.token.bound_cidrs):
        raise PermissionDenied()

    try:
        token = jws.parse(raw_token)
    except jws.JWSError as exc:
        raise UserError(f"{_SIGNATURE}{exc}") from None
    await b.verify_signature(config, token)
    if token.alg not in config.algorithms:
        raise UserError("error validating token: invalid algorithm (alg) header parameter: "
                        "token signed with unexpected algorithm")
    claims = token.claims
    expected = jwtclaims.Expected(
        issuer=config.bound_issuer, subject=role.bound_subject,
        audiences=tuple(role.bound_audiences or ()),
        clock_skew_leeway=role.clock_skew_leeway, expiration_leeway=role.expiration_leeway,
        not_before_leeway=role.not_before_leeway)
    try:
        jwtclaims.validate_registered(claims, expected, b.clock())
    except jwtclaims.ClaimError as exc:
        raise UserError(f"error validating token: {exc}") from None
    try:
        if not role.bound_audiences and jwtclaims.audiences(claims):
            raise UserError("audience claim found in JWT but no audiences bound to the role")
        user = jwtclaims.user_name(claims, role.user_claim, role.user_claim_json_pointer)
        mapped = jwtclaims.mapped_metadata(claims, role.claim_mappings or {})
        groups = (jwtclaims.group_names(claims, role.groups_claim)
                  if role.groups_claim else None)
    except jwtclaims.ClaimError as exc:
        raise UserError(str(exc)) from None
    try:
        jwtclaims.validate_bound_claims(claims, role.bound_claims or {},
                                        role.bound_claims_type == "glob")
    except jwtclaims.ClaimError as exc:
        raise UserError(f"error validating claims: {exc}") from None
    if not user:
        raise InternalError("missing name in alias")  # Vault's core refuses an empty alias

    metadata = dict(sorted({**mapped, "role": role_name}.items()))
    return login_response(Login(
        token=role.token, display_name=user, metadata=metadata,
        alias_name=user, alias_metadata=dict(metadata),
        group_aliases=groups, internal_data={"role": role_name},
    ))
