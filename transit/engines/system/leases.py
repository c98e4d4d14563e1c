"""`sys/leases/*` and the legacy `sys/renew`, `sys/revoke*` (spec auth-api §7).

Vault's lease API (logical_system.go handleLease*, handleRenew, handleRevoke*, expiration.go)
over the only leases this server hands out: those of service tokens (transit/tokens/leases.py
has the lease IDs and their index). Lookup shows a token's lease times; renew refuses token
leases as Vault does (`auth/token/renew*` renews tokens); revoke takes the token and its
children; revoke-prefix/revoke-force take every lease under a prefix, read from the lease
index (e.g. `auth/approle` = every token that mount's logins created). `sync=false` ends the
leases now and leaves their revocation to the expiration manager (Vault's LazyRevoke): 202.

Root-protected (sudo) paths — revoke-prefix, revoke-force, the lookup listing, `sys/leases` —
are refused by the core's ACL check (transit/acl/acl.py SUDO_PATH_PREFIXES).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from transit.errors import Fenced, ForwardToActive, InternalError, Sealed, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response
from transit.tokens import leases

if TYPE_CHECKING:
    from transit.engines.system.ports import NodeControl
    from transit.tokens.store import TokenStore

log = logging.getLogger("transit.leases")

LOOKUP_FIELDS: dict[str, Field] = {"lease_id": Field(FieldType.STRING, "")}
LIST_FIELDS: dict[str, Field] = {"prefix": Field(FieldType.STRING, "")}
RENEW_FIELDS: dict[str, Field] = {
    "lease_id": Field(FieldType.STRING, ""),
    "url_lease_id": Field(FieldType.STRING, ""),
    "increment": Field(FieldType.DURATION, 0),
}
REVOKE_FIELDS: dict[str, Field] = {
    "lease_id": Field(FieldType.STRING, ""),
    "url_lease_id": Field(FieldType.STRING, ""),
    "sync": Field(FieldType.BOOL, True),
}
PREFIX_FIELDS: dict[str, Field] = {
    "prefix": Field(FieldType.STRING, ""),
    "sync": Field(FieldType.BOOL, True),
}
FORCE_FIELDS: dict[str, Field] = {"prefix": Field(FieldType.STRING, "")}
IRREVOCABLE_FIELDS: dict[str, Field] = {
    "type": Field(FieldType.STRING, ""),
    "include_child_namespaces": Field(FieldType.BOOL, False),
    "limit": Field(FieldType.STRING, ""),
}

TIDY_STARTED = (
    "Tidy operation successfully started. Any information from the operation will be "
    "printed to Vault's server logs."
)
# Errors that must stop a prefix revocation even when forced: nothing more can be written.
_FATAL = (Fenced, ForwardToActive, Sealed)


def _accepted() -> Response:
    """Vault's `RespondWithStatusCode(nil, nil, 202)`: 202 with an empty body."""
    return Response(status=202)


def _no_trailing_slash(req: Request) -> None:
    if req.path.endswith("/"):
        raise UserError("cannot write to a path ending in '/'")


def _lease_arg(d: FieldData) -> str:
    """`lease_id` from the body, else from the URL (`sys/leases/renew/<lease id>`)."""
    lease: str = d.get("lease_id")
    if not lease and "url_lease_id" in d.schema:
        lease = d.get("url_lease_id")
    if not lease:
        raise UserError("lease_id must be specified")
    return lease


def _sync(d: FieldData) -> bool:
    """`sync` (default true); a JSON null reads as Go's zero value, false."""
    if "sync" in d.raw and d.raw["sync"] is None:
        return False
    return bool(d.get("sync"))


# -- lookup ----------------------------------------------------------------------------------


async def lookup(node: NodeControl, req: Request, d: FieldData) -> Response:
    lease = _lease_arg(d)
    entry = await leases.find(node.tokens, lease)
    if entry is None:
        raise UserError("invalid lease")
    return Response(data=leases.lookup_data(entry, lease, node.tokens.clock()))


async def list_leases(node: NodeControl, req: Request, d: FieldData) -> Response:
    """`LIST sys/leases/lookup/<prefix>`: one level of the lease index (404 when empty)."""
    return Response(data={"keys": await leases.list_folder(node.tokens, d.get("prefix"))})


# -- renew -----------------------------------------------------------------------------------


async def renew(node: NodeControl, req: Request, d: FieldData) -> Response:
    """Vault's ExpirationManager.Renew: every lease here is a token's, which this endpoint
    does not renew (`auth/token/renew` does); the lease's own state is reported first."""
    _no_trailing_slash(req)
    lease = _lease_arg(d)
    d.get("increment")  # validated like Vault's TypeDurationSecond, then unused
    entry = await leases.find(node.tokens, lease)
    if entry is None:
        raise UserError("lease not found")
    now = node.tokens.clock()
    if not entry.expire_time:
        raise UserError("lease is not renewable")
    if entry.expire_time < now:
        raise UserError("lease expired")
    if not entry.renewable:
        raise UserError("lease is not renewable")
    raise UserError("tokens cannot be renewed through this endpoint")


# -- revoke ----------------------------------------------------------------------------------


async def _revoke_one(store: TokenStore, lease: str, sync: bool) -> None:
    """Revoke one lease (nothing when it is unknown): its token and the token's children."""
    entry = await leases.find(store, lease)
    if entry is None:
        return
    if sync:
        await store.revoke_hash(entry.hash)
    else:
        await store.expire_now(entry.hash)


async def revoke(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    _no_trailing_slash(req)
    lease = _lease_arg(d)
    sync = _sync(d)
    await _revoke_one(node.tokens, lease, sync)
    return None if sync else _accepted()


async def _revoke_prefix(store: TokenStore, prefix: str, *, force: bool, sync: bool) -> None:
    """Vault's revokePrefixCommon: a prefix without a trailing "/" that is itself a lease ID
    revokes that lease; otherwise every lease under `prefix/`, read from the lease index."""
    if not prefix.endswith("/") and await leases.find(store, prefix) is not None:
        await _revoke_one(store, prefix, sync)
        return
    where = leases.folder(prefix)
    if where is None:
        return
    found = await leases.collect(store, where)
    for n, lease in enumerate(found, 1):
        h = leases.token_hash(lease)
        if h is None:
            continue
        try:
            if sync:
                await store.revoke_hash(h)  # already gone with a parent revoked before: no-op
            else:
                await store.expire_now(h)
        except _FATAL:
            raise
        except Exception:
            if not force:
                raise  # leases revoked so far stay revoked; a retry revokes the rest
            log.warning("revoke-force: could not revoke lease %s (%d / %d), skipped",
                        lease, n, len(found), exc_info=True)


async def revoke_prefix(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    _no_trailing_slash(req)
    sync = _sync(d)
    await _revoke_prefix(node.tokens, d.get("prefix"), force=False, sync=sync)
    return None if sync else _accepted()


async def revoke_force(node: NodeControl, req: Request, d: FieldData) -> None:
    _no_trailing_slash(req)
    await _revoke_prefix(node.tokens, d.get("prefix"), force=True, sync=True)


# -- tidy ------------------------------------------------------------------------------------


class LeaseTidy:
    """`sys/leases/tidy`: one background tidy of the token store at a time (Vault's
    tidyLock: a second request while one runs starts nothing, and still answers 202)."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None

    async def handle(self, node: NodeControl, req: Request, d: FieldData) -> Response:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(node.tokens))
        else:
            log.warning("tidy operation on leases is already in progress")
        return Response(warnings=[TIDY_STARTED], status=202)

    @staticmethod
    async def _run(store: TokenStore) -> None:
        try:
            n = await store.tidy()
            log.info("lease tidy finished: %d expired tokens revoked, lease index repaired", n)
        except Exception:
            log.exception("lease tidy failed")


# -- irrevocable leases (none here: a token's revocation never gives up) ---------------------


def _irrevocable(d: FieldData) -> bool:
    return str(d.get("type")).lower() == "irrevocable"


async def count_irrevocable(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    """`GET sys/leases/count?type=irrevocable`."""
    if not _irrevocable(d):
        return None
    return Response(data={"counts": {}, "lease_count": 0})


async def list_irrevocable(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    """`GET sys/leases?type=irrevocable` (sudo)."""
    if not _irrevocable(d):
        return None
    limit = d.get("limit")
    if limit and limit.lower() != "none":
        try:
            n = int(limit, 10)
        except ValueError:
            raise InternalError(
                f'invalid \'limit\' provided: strconv.Atoi: parsing "{limit}": invalid syntax'
            ) from None
        if n < 1:
            raise InternalError("limit must be 'none' or a positive integer")
    return Response(data={"lease_count": 0, "leases": []})
