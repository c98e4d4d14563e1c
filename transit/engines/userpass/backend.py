"""The userpass auth method: its one route table and handlers (Vault's
`builtin/credential/userpass`; spec auth-api §3).

Users live at `user/<lowercase name>` of the mount's storage: a bcrypt hash (never the
password) and the common token fields (transit/tokenutil.py). `login/<username>` is
the only unauthenticated path; it returns a `Login` and the core makes the token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from transit.engines.authmethod import Login, login_response
from transit.engines.framework import Engine, ExistenceCheck, Handler, Route, name
from transit.engines.userpass.users import (
    USER_PREFIX,
    User,
    check_hash,
    hash_password,
    password_matches,
    user_key,
)
from transit.errors import InternalError, InvalidCredentials, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from transit.storage.base import Write
from transit.storage.update import update
from transit.tokens.ttl import RenewDeclined
from transit.tokenutil import TokenParams, parse_token_fields, token_fields

# Vault's userpass accepts these legacy names beside the token_* fields.
LEGACY = ("policies", "ttl", "max_ttl", "bound_cidrs")

USER_FIELDS: dict[str, Field] = {
    "username": Field(FieldType.STRING, ""),
    "password": Field(FieldType.STRING, ""),
    "password_hash": Field(FieldType.STRING, ""),
    **token_fields(LEGACY),
}
PASSWORD_FIELDS: dict[str, Field] = {
    "username": Field(FieldType.STRING, ""),
    "password": Field(FieldType.STRING, ""),
    "password_hash": Field(FieldType.STRING, ""),
}
POLICIES_FIELDS: dict[str, Field] = {
    "username": Field(FieldType.STRING, ""),
    "token_policies": Field(FieldType.ANY),
    "policies": Field(FieldType.ANY),
}
LOGIN_FIELDS: dict[str, Field] = {
    "username": Field(FieldType.STRING, ""),
    "password": Field(FieldType.STRING, ""),
}


class UserpassBackend(Engine):
    mount_type = "userpass"
    unauthenticated = ("login/*",)

    def __init__(self, storage: Any, options: dict[str, Any] | None = None) -> None:
        self.storage = storage
        b = self

        def h(fn: Callable[[UserpassBackend, Request, FieldData], Awaitable[Any]]) -> Handler:
            return partial(fn, b)

        def e(fn: Callable[[UserpassBackend, Request, FieldData], Awaitable[bool]]
              ) -> ExistenceCheck:
            return partial(fn, b)

        super().__init__([
            Route(r"users/?", {LIST: h(list_users)}, {}),
            Route(
                rf"users/{name('username')}",
                {READ: h(read_user), CREATE: h(write_user), UPDATE: h(write_user),
                 DELETE: h(delete_user)},
                USER_FIELDS, existence_check=e(user_exists),
            ),
            Route(rf"users/{name('username')}/password", {UPDATE: h(write_password)},
                  PASSWORD_FIELDS),
            Route(rf"users/{name('username')}/policies", {UPDATE: h(write_policies)},
                  POLICIES_FIELDS),
            Route(rf"login/{name('username')}", {UPDATE: h(login)}, LOGIN_FIELDS),
        ])

    async def login_alias(self, req: Request) -> str:
        """The username of `login/<username>` (lowercase), for user lockout."""
        matched = self.resolve(req)
        if matched is None or not req.path.startswith("login/"):
            return ""
        return str(matched[1].get("username", "")).lower()

    async def renew_login(self, token: Any) -> TokenParams | None:
        """Vault's pathLoginRenew: the user's current TTLs; refused when its policies
        changed since the login (`default` aside); a deleted user's token is not renewed."""
        user = await self.get_user(str((token.meta or {}).get("username", "")))
        if user is None:
            raise RenewDeclined()
        now = {p for p in user.token.policies if p != "default"}
        then = {p for p in token.policies if p != "default"}
        if now != then:
            raise InternalError("policies have changed, not renewing")
        return user.token

    async def get_user(self, username: str) -> User | None:
        raw = await self.storage.get(user_key(username))
        return User.from_json(raw) if raw is not None else None

    async def change_user(self, username: str, change: Callable[[User | None], User | None]
                          ) -> User | None:
        """Read-modify-write of one user (`change` gets the stored user, returns the new
        one, or None to write nothing)."""
        key = user_key(username)

        def apply(values: dict[str, bytes | None]) -> tuple[list[Write], User | None]:
            raw = values[key]
            new = change(User.from_json(raw) if raw is not None else None)
            return ([Write(key, new.to_json())] if new is not None else []), new

        result: User | None = await update(self.storage, [key], apply)
        return result


def userpass_factory(storage: Any, options: dict[str, Any]) -> Engine:
    return UserpassBackend(storage, options)


def _username(d: FieldData) -> str:
    return str(d.get("username")).lower()


async def user_exists(b: UserpassBackend, req: Request, d: FieldData) -> bool:
    return await b.get_user(_username(d)) is not None


async def list_users(b: UserpassBackend, req: Request, d: FieldData) -> Response:
    keys = sorted(await b.storage.list(USER_PREFIX))
    return Response(data={"keys": keys})


async def read_user(b: UserpassBackend, req: Request, d: FieldData) -> Response | None:
    user = await b.get_user(_username(d))
    if user is None:
        return None
    return Response(data=user.token.to_response())


async def delete_user(b: UserpassBackend, req: Request, d: FieldData) -> None:
    await b.storage.delete(user_key(_username(d)))


async def write_user(b: UserpassBackend, req: Request, d: FieldData) -> Response | None:
    """Create or update a user: token fields merge into the stored ones; a password (or a
    ready bcrypt `password_hash`) is required on create."""
    username = _username(d)
    password, has_password = d.get_ok("password")
    password_hash, has_hash = d.get_ok("password_hash")
    has_password = has_password and "password" in d.raw
    has_hash = has_hash and "password_hash" in d.raw
    if has_password and has_hash and password and password_hash:
        raise UserError("only one of password or password_hash may be provided")
    current = await b.get_user(username)
    if current is None and not password and not password_hash:
        raise UserError("must provide either password or password_hash")
    params, warnings = parse_token_fields(d, current.token if current is not None else None)
    new_hash: bytes | None = None
    if password_hash:
        new_hash = check_hash(password_hash)
    elif has_password:
        if not password:
            raise UserError("missing password")
        new_hash = await hash_password(password)  # before the write: `change` stays pure

    def change(stored: User | None) -> User:
        user = stored or User()
        if current is not None and stored is not None:
            # token fields re-applied on the entry as stored now (another writer may have
            # changed them since the read above)
            user.token, _ = parse_token_fields(d, stored.token)
        else:
            user.token = params
        if new_hash is not None:
            user.password_hash = new_hash
        if not user.password_hash:
            raise UserError("must provide either password or password_hash")
        return user

    await b.change_user(username, change)
    if not warnings:
        return None
    return Response(warnings=warnings)


async def write_password(b: UserpassBackend, req: Request, d: FieldData) -> None:
    username = _username(d)
    password, password_hash = d.get("password"), d.get("password_hash")
    if await b.get_user(username) is None:
        raise InternalError("username does not exist")
    if password and password_hash:
        raise UserError("only one of password or password_hash may be provided")
    if not password and not password_hash:
        raise UserError("must provide either password or password_hash")
    new_hash = check_hash(password_hash) if password_hash else await hash_password(password)

    def change(stored: User | None) -> User:
        if stored is None:
            raise InternalError("username does not exist")
        stored.password_hash = new_hash
        return stored

    await b.change_user(username, change)


async def write_policies(b: UserpassBackend, req: Request, d: FieldData) -> None:
    username = _username(d)

    def change(stored: User | None) -> User:
        if stored is None:
            raise InternalError("username does not exist")
        stored.token, _ = parse_token_fields(d, stored.token)
        return stored

    await b.change_user(username, change)


async def login(b: UserpassBackend, req: Request, d: FieldData) -> Response:
    username = _username(d)
    password = d.get("password")
    if not password:
        raise InternalError("missing password")  # Vault: a plain error, 500 unwrapped
    user = await b.get_user(username)
    if not await password_matches(password, user.password_hash if user else None):
        if user is None:  # unknown users are not counted toward lockout
            raise UserError("invalid username or password")
        raise InvalidCredentials("invalid username or password")
    assert user is not None
    return login_response(Login(
        token=user.token, display_name=username, metadata={"username": username},
        alias_name=username,
    ))
