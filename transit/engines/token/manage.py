"""`auth/token/` lookup, renew, revoke, accessors and tidy handlers."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from transit.engines.token.common import caller, is_sudo
from transit.errors import PermissionDenied, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response
from transit.tokens.entry import BATCH, TokenEntry
from transit.tokens.ttl import RenewDeclined

if TYPE_CHECKING:
    from transit.engines.token.common import TokenPort

log = logging.getLogger("transit.tokens")

TOKEN_FIELDS: dict[str, Field] = {"token": Field(FieldType.STRING, "")}
ACCESSOR_FIELDS: dict[str, Field] = {"accessor": Field(FieldType.STRING, "")}
RENEW_FIELDS: dict[str, Field] = {
    "token": Field(FieldType.STRING, ""),
    "increment": Field(FieldType.DURATION, 0),
}
RENEW_SELF_FIELDS: dict[str, Field] = {"increment": Field(FieldType.DURATION, 0)}
RENEW_ACCESSOR_FIELDS: dict[str, Field] = {
    "accessor": Field(FieldType.STRING, ""),
    "increment": Field(FieldType.DURATION, 0),
}
TIDY_STARTED = (
    "Tidy operation successfully started. Any information from the operation will be "
    "printed to Vault's server logs."
)


def _token_arg(d: FieldData) -> str:
    token = d.get("token")
    if not token:
        raise UserError("missing token ID")
    return str(token)


async def _by_accessor(b: TokenPort, d: FieldData) -> TokenEntry:
    accessor = d.get("accessor")
    if not accessor:
        raise UserError("missing accessor")
    entry = await b.tokens.lookup_accessor(accessor)
    if entry is None:
        raise UserError("invalid accessor")
    return entry


# --- lookup ----------------------------------------------------------------------


async def _identity_policies(b: TokenPort, entry: TokenEntry, data: dict[str, Any]) -> None:
    """Vault's handleLookup adds the entity's current identity policies (issue 17)."""
    identity = getattr(b, "identity", None)
    if entry.entity_id and identity is not None:
        policies = await identity.identity_policies(entry.entity_id)
        if policies:
            data["identity_policies"] = policies
            data["external_namespace_policies"] = {}


async def lookup(b: TokenPort, req: Request, d: FieldData) -> Response:
    token = d.get("token") or req.client_token
    if not token:
        raise UserError("missing token ID")
    if token == req.client_token:
        entry = await caller(b, req)
    else:
        entry = await b.tokens.lookup(token)
    if entry is None:
        raise PermissionDenied("bad token")
    data = entry.lookup_data(b.tokens.clock())
    data["id"] = token
    await _identity_policies(b, entry, data)
    return Response(data=data)


async def lookup_self(b: TokenPort, req: Request, d: FieldData) -> Response:
    entry = await caller(b, req)
    if entry is None:
        raise PermissionDenied("bad token")
    data = entry.lookup_data(b.tokens.clock())
    data["id"] = req.client_token or entry.id
    await _identity_policies(b, entry, data)
    return Response(data=data)


async def lookup_accessor(b: TokenPort, req: Request, d: FieldData) -> Response:
    entry = await _by_accessor(b, d)
    data = entry.lookup_data(b.tokens.clock())
    data["id"] = ""
    await _identity_policies(b, entry, data)
    return Response(data=data)


async def list_accessors(b: TokenPort, req: Request, d: FieldData) -> Response:
    return Response(data={"keys": await b.tokens.list_accessors()})


# --- renew -----------------------------------------------------------------------


async def _renew(b: TokenPort, entry: TokenEntry, increment: int) -> Response | None:
    try:
        warnings = await b.tokens.renew(entry, increment)
    except RenewDeclined:  # the auth method said nothing: not renewed, 204
        return None
    return Response(auth=entry.auth_block(), warnings=warnings or None)


async def renew(b: TokenPort, req: Request, d: FieldData) -> Response | None:
    entry = await b.tokens.lookup(_token_arg(d))
    if entry is None:
        raise UserError("token not found")
    return await _renew(b, entry, d.get("increment"))


async def renew_self(b: TokenPort, req: Request, d: FieldData) -> Response | None:
    entry = await caller(b, req)
    if entry is None:
        raise UserError("token not found")
    return await _renew(b, entry, d.get("increment"))


async def renew_accessor(b: TokenPort, req: Request, d: FieldData) -> Response | None:
    entry = await _by_accessor(b, d)
    resp = await _renew(b, entry, d.get("increment"))
    if resp is None:
        return None
    assert resp.auth is not None
    resp.auth["client_token"] = ""
    return resp


# --- revoke ----------------------------------------------------------------------


async def _revoke(b: TokenPort, entry: TokenEntry | None) -> None:
    if entry is None:
        return None
    if entry.type == BATCH:
        raise UserError("batch tokens cannot be revoked")
    await b.tokens.revoke(entry)
    return None


async def revoke(b: TokenPort, req: Request, d: FieldData) -> None:
    return await _revoke(b, await b.tokens.lookup(_token_arg(d)))


async def revoke_self(b: TokenPort, req: Request, d: FieldData) -> None:
    return await _revoke(b, await caller(b, req))


async def revoke_accessor(b: TokenPort, req: Request, d: FieldData) -> None:
    return await _revoke(b, await _by_accessor(b, d))


async def revoke_orphan(b: TokenPort, req: Request, d: FieldData) -> None:
    token = _token_arg(d)
    if not await is_sudo(b, req):
        raise UserError("root or sudo privileges required to revoke and orphan")
    entry = await b.tokens.lookup(token)
    if entry is None:
        raise UserError("token to revoke not found")
    if entry.type == BATCH:
        raise UserError("batch tokens cannot be revoked")
    await b.tokens.revoke_orphan(entry)
    return None


# --- tidy ------------------------------------------------------------------------


async def tidy(b: TokenPort, req: Request, d: FieldData) -> Response:
    async def run() -> None:
        try:
            n = await b.tokens.tidy()
            log.info("token tidy finished: %d expired tokens revoked", n)
        except Exception:
            log.exception("token tidy failed")

    task = asyncio.get_running_loop().create_task(run())
    b.background.add(task)
    task.add_done_callback(b.background.discard)
    return Response(warnings=[TIDY_STARTED], status=202)
