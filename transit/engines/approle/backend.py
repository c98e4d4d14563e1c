"""The AppRole auth method: its one route table and lifecycle hooks (Vault's
`builtin/credential/approle`; spec auth-api §2). Handlers live in roles.py (roles and their
single-field sub-paths), secretids.py (secret IDs, tidy) and login.py; storage in store.py.

`login` is the only unauthenticated path. It returns a `Login`; the core makes the token
(transit/login.py), with the role_id as the identity alias and the role_id as the lockout
alias (`login_alias`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from transit.engines.approle import roles, secretids
from transit.engines.approle.login import LOGIN_FIELDS, alias_of, login, renew
from transit.engines.approle.roles import FIELD_PATHS, ROLE_FIELDS, ROLE_ID_FIELDS, FieldPath
from transit.engines.approle.secretids import (
    ACCESSOR_FIELDS,
    CUSTOM_FIELDS,
    GENERATE_FIELDS,
    SECRET_ID_FIELDS,
)
from transit.engines.approle.store import AppRoleStore
from transit.engines.framework import Engine, ExistenceCheck, Handler, Route, name
from transit.errors import TransitError
from transit.fields import FieldData
from transit.logical import DELETE, LIST, READ, UPDATE, Request, Response
from transit.tokenutil import TokenParams

log = logging.getLogger("transit.approle")

ROLE = rf"role/{name('role_name')}"
TIDY_STARTED = ("Tidy operation successfully started. Any information from the operation "
                "will be printed to Vault's server logs.")
TIDY_RUNNING = "Tidy operation already in progress."

StoreHandler = Callable[[AppRoleStore, Request, FieldData], Awaitable[Any]]


class AppRoleBackend(Engine):
    mount_type = "approle"
    unauthenticated = ("login",)

    def __init__(self, storage: Any, options: dict[str, Any] | None = None) -> None:
        self.storage = storage
        self.store = AppRoleStore(storage)
        self._tidy: asyncio.Task[int] | None = None
        s = self.store

        def h(fn: StoreHandler) -> Handler:
            return partial(fn, s)

        def e(fn: StoreHandler) -> ExistenceCheck:
            return partial(fn, s)

        super().__init__([
            Route(r"login", {UPDATE: h(login)}, LOGIN_FIELDS),
            Route(r"role/?", {LIST: h(roles.list_roles)}, {}),
            Route(ROLE, {READ: h(roles.read_role), UPDATE: h(roles.write_role),
                         DELETE: h(roles.delete_role)},
                  ROLE_FIELDS, existence_check=e(roles.role_exists)),
            Route(rf"{ROLE}/role-id", {READ: h(roles.read_role_id),
                                       UPDATE: h(roles.write_role_id)}, ROLE_ID_FIELDS),
            *(field_route(fp, s) for fp in FIELD_PATHS),
            Route(rf"{ROLE}/secret-id/?", {UPDATE: h(secretids.generate),
                                           LIST: h(secretids.list_accessors)},
                  GENERATE_FIELDS),
            Route(rf"{ROLE}/custom-secret-id", {UPDATE: h(secretids.custom)}, CUSTOM_FIELDS),
            Route(rf"{ROLE}/secret-id/lookup/?", {UPDATE: h(secretids.lookup)},
                  SECRET_ID_FIELDS),
            Route(rf"{ROLE}/secret-id/destroy/?", {UPDATE: h(secretids.destroy),
                                                   DELETE: h(secretids.destroy)},
                  SECRET_ID_FIELDS),
            Route(rf"{ROLE}/secret-id-accessor/lookup/?",
                  {UPDATE: h(secretids.lookup_accessor)}, ACCESSOR_FIELDS),
            Route(rf"{ROLE}/secret-id-accessor/destroy/?",
                  {UPDATE: h(secretids.destroy_accessor),
                   DELETE: h(secretids.destroy_accessor)}, ACCESSOR_FIELDS),
            Route(r"tidy/secret-id", {UPDATE: self.start_tidy}, {}),
        ])

    # -- hooks ----------------------------------------------------------------------------
    async def login_alias(self, req: Request) -> str:
        """The role_id a login is for (user lockout counts failures per role_id)."""
        if req.path != "login":
            return ""
        return alias_of(req.data)

    async def renew_login(self, token: Any) -> TokenParams | None:
        return await renew(self.store, token)

    async def periodic(self) -> None:
        """Vault's periodic tidy of expired secret IDs, about once a minute. A node that may
        not write (a standby) fails its first delete: that is expected, not an error."""
        if self._tidy is not None and not self._tidy.done():
            return
        try:
            removed = await self.store.tidy()
        except TransitError as exc:
            log.debug("approle tidy skipped: %s", exc)
            return
        if removed:
            log.info("approle tidy removed %d secret ID entries", removed)

    async def start_tidy(self, req: Request, d: FieldData) -> Response:
        """`POST tidy/secret-id`: 202 and the tidy runs on; 200 while one still runs."""
        if self._tidy is not None and not self._tidy.done():
            return Response(warnings=[TIDY_RUNNING])
        self._tidy = asyncio.ensure_future(self.store.tidy())
        self._tidy.add_done_callback(_log_tidy)
        return Response(warnings=[TIDY_STARTED], status=202)


def _log_tidy(task: asyncio.Task[int]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        exc = task.exception()
        if exc is not None:
            log.error("approle tidy failed: %r", exc)
        elif task.result():
            log.info("approle tidy removed %d secret ID entries", task.result())


def field_route(fp: FieldPath, store: AppRoleStore) -> Route:
    """`role/:name/<field>` from its `FieldPath` (roles.FIELD_PATHS)."""
    ops: dict[str, Handler] = {READ: partial(roles.read_field, fp, store)}
    if fp.update is not None:
        ops[UPDATE] = partial(roles.update_field, fp, store)
    if fp.delete is not None:
        ops[DELETE] = partial(roles.delete_field, fp, store)
    return Route(rf"{ROLE}/{fp.suffix}", ops, fp.fields)


def approle_factory(storage: Any, options: dict[str, Any]) -> Engine:
    return AppRoleBackend(storage, options)
