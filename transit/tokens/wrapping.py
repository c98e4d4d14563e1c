"""Response wrapping: single-use `response-wrapping` tokens guarding a stored response.

`Core` calls `wrap(resp, ttl, req)` when a request carries `X-Vault-Wrap-TTL`. The original
response is stored, as the JSON body Vault would have sent, under `<token hash>/response` of
the wrapper's storage (the core passes a barrier view at `cubbyhole/`), with the lookup data at
`<token hash>/wrapinfo`. Revoking or expiring the wrapping token drops both (a revoke hook).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from transit.errors import UnsupportedPath, UserError
from transit.fields import parse_duration
from transit.logical import LIST, Request, Response
from transit.tokens.entry import TokenEntry, rfc3339
from transit.tokens.store import WRAPPING_POLICY, TokenStore
from transit.tokens.ttl import MAX_LEASE_TTL

INVALID_WRAPPING_TOKEN = "wrapping token is not valid or does not exist"
NO_INFORMATION = "no information found; wrapping token may be from a previous Vault version"
_IGNORED_WARNING = "Endpoint ignored these unrecognized parameters"
WRAPPING_PATHS = ("sys/wrapping/lookup", "sys/wrapping/rewrap", "sys/wrapping/unwrap")


def parse_wrap_ttl(value: str) -> int:
    """Seconds from an `X-Vault-Wrap-TTL` header ("60", "5m"); UserError when invalid or
    not positive."""
    try:
        ttl = parse_duration(value)
    except ValueError:
        raise UserError(f"error parsing X-Vault-Wrap-TTL: invalid duration {value!r}") from None
    if ttl <= 0:
        raise UserError("wrap ttl must be greater than zero")
    return ttl


class Wrapper:
    def __init__(self, store: TokenStore, storage: Any, *, max_ttl: int = MAX_LEASE_TTL) -> None:
        self.store = store
        self.storage = storage
        self.max_ttl = max_ttl
        # Unwrap/rewrap read then revoke; one at a time so a token is consumed only once.
        self._consume = asyncio.Lock()
        store.revoke_hooks.append(self._drop)

    async def _drop(self, token_hash: str) -> None:
        await self.storage.delete(token_hash + "/response")
        await self.storage.delete(token_hash + "/wrapinfo")

    # --- wrapping ----------------------------------------------------------------

    async def wrap(self, resp: Response | None, ttl: int, req: Request) -> Response | None:
        """Replace `resp` with a wrapping token's `wrap_info` (None stays None)."""
        if resp is None or ttl <= 0 or resp.wrap_info is not None:
            return resp
        if req.operation == LIST and not (resp.data and resp.data.get("keys")):
            raise UnsupportedPath()
        creation_path = req.mount_path + req.path
        warnings = resp.warnings
        if creation_path == "sys/wrapping/wrap" and warnings:  # it takes arbitrary input
            warnings = [w for w in warnings if not w.startswith(_IGNORED_WARNING)]
        body = {
            "request_id": req.id, "lease_id": resp.lease_id, "renewable": resp.renewable,
            "lease_duration": resp.lease_duration, "data": resp.data, "wrap_info": None,
            "warnings": warnings or None, "auth": resp.auth,
        }
        accessor = resp.auth.get("accessor", "") if resp.auth else ""
        return await self._store(orjson.dumps(body), ttl, creation_path, accessor)

    async def _store(
        self, payload: bytes, ttl: int, creation_path: str, wrapped_accessor: str = ""
    ) -> Response:
        ttl = min(ttl, self.max_ttl)
        entry = await self.store.create(
            None, policies=[WRAPPING_POLICY], display_name="", num_uses=1, ttl=ttl,
            explicit_max_ttl=ttl, renewable=False, orphan=True, path=creation_path,
        )
        created = rfc3339(entry.issue_time)
        info = {"creation_ttl": ttl, "creation_time": created, "creation_path": creation_path}
        try:
            await self.storage.put(entry.hash + "/response", payload)
            await self.storage.put(entry.hash + "/wrapinfo", orjson.dumps(info))
        except Exception:
            await self.store.revoke(entry)
            raise
        wrap_info: dict[str, Any] = {
            "token": entry.id, "accessor": entry.accessor, "ttl": ttl,
            "creation_time": created, "creation_path": creation_path,
        }
        if wrapped_accessor:
            wrap_info["wrapped_accessor"] = wrapped_accessor
        return Response(wrap_info=wrap_info)

    # --- validation --------------------------------------------------------------

    async def validate(self, token: str) -> TokenEntry:
        """The live wrapping token's entry; UserError (400) otherwise, like Vault."""
        entry = await self.store.lookup(token) if token else None
        if entry is None or entry.policies != [WRAPPING_POLICY]:
            raise UserError(INVALID_WRAPPING_TOKEN)
        return entry

    async def check_request(self, req: Request) -> TokenEntry | None:
        """Vault's pre-auth check for `sys/wrapping/{lookup,rewrap,unwrap}`.

        The token is the body's `token`, else the caller's. Raises UserError
        ("wrapping token is not valid or does not exist") when it is not a live wrapping
        token. Returns the entry when the *caller's* token is the wrapping token (use it as
        `req.token`; its ACL is the `response-wrapping` policy), None when the token came in
        the body (authenticate the caller as usual).
        """
        raw = req.data.get("token") if req.data else None
        if raw is not None:
            if not isinstance(raw, str):
                raise UserError("could not decode token in request body")
            if raw == "":
                raise UserError("empty token in request body")
            await self.validate(raw)
            return None
        return await self.validate(req.client_token)

    # --- the sys/wrapping operations ---------------------------------------------

    async def lookup(self, token: str) -> Response:
        entry = await self.validate(token)
        raw = await self.storage.get(entry.hash + "/wrapinfo")
        if raw is None:
            raise UserError(NO_INFORMATION)
        return Response(data=orjson.loads(raw))

    async def unwrap(self, token: str) -> Response | None:
        async with self._consume:
            entry = await self.validate(token)
            raw = await self.storage.get(entry.hash + "/response")
            await self.store.revoke(entry)
        if raw is None:
            raise UserError(NO_INFORMATION)
        if not raw:
            return None
        body = orjson.loads(raw)
        return Response(
            data=body.get("data"), warnings=body.get("warnings"), auth=body.get("auth"),
            lease_id=body.get("lease_id") or "", lease_duration=body.get("lease_duration") or 0,
            renewable=bool(body.get("renewable")),
        )

    async def rewrap(self, token: str) -> Response:
        async with self._consume:
            entry = await self.validate(token)
            payload = await self.storage.get(entry.hash + "/response")
            raw_info = await self.storage.get(entry.hash + "/wrapinfo")
            if payload is None or raw_info is None:
                raise UserError(NO_INFORMATION)
            info = orjson.loads(raw_info)
            resp = await self._store(payload, int(info["creation_ttl"]), info["creation_path"])
            await self.store.revoke(entry)
        return resp
