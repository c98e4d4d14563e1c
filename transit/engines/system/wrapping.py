"""`sys/wrapping/*`: wrap, unwrap, lookup, rewrap. The logic is `transit.tokens.wrapping`."""

from __future__ import annotations

from transit.engines.system.ports import NodeControl
from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

TOKEN_FIELDS: dict[str, Field] = {"token": Field(FieldType.STRING, "")}


def _token(req: Request, d: FieldData) -> str:
    return d.get("token") or req.client_token


async def wrap(node: NodeControl, req: Request, d: FieldData) -> Response:
    """Wrap the request body itself; only meaningful with `X-Vault-Wrap-TTL`."""
    ttl = req.headers.get("x-vault-wrap-ttl", "").strip()
    if ttl in ("", "0", "0s"):
        raise UserError("endpoint requires response wrapping to be used")
    return Response(data=dict(req.data))


async def unwrap(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    resp: Response | None = await node.wrapping.unwrap(_token(req, d))
    return resp


async def lookup(node: NodeControl, req: Request, d: FieldData) -> Response:
    resp: Response = await node.wrapping.lookup(_token(req, d))
    return resp


async def rewrap(node: NodeControl, req: Request, d: FieldData) -> Response:
    resp: Response = await node.wrapping.rewrap(_token(req, d))
    return resp
