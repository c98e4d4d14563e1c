"""`export/:type/:name[/:version]` (spec §4.17).

The key material itself is rendered by the crypto core (`Policy.export`); this handler
validates the export type first (Vault does so before looking the key up) and answers a
missing key with nothing, which the API turns into 404 `{"errors":[]}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType
from transit.gocompat import is_digits
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort

EXPORT_TYPES = frozenset(
    {"encryption-key", "signing-key", "hmac-key", "public-key", "certificate-chain"}
)

EXPORT_FIELDS: dict[str, Field] = {
    "type": Field(FieldType.STRING, "", "encryption-key, signing-key, hmac-key or public-key"),
    "name": Field(FieldType.STRING, "", "Name of the key"),
    "version": Field(FieldType.STRING, "", "Version of the key: N, vN or latest (default all)"),
}


async def export(b: TransitPort, req: Request, d: FieldData) -> Response | None:
    export_type = d.get("type")
    if export_type not in EXPORT_TYPES:
        raise UserError(f"invalid export type: {export_type}")
    wanted = str(d.get("version") or "").removeprefix("v")
    p = await b.policies.get_for(d.get("name"), forward=req.perf_standby,
                                 version=int(wanted) if is_digits(wanted) else 0)
    if p is None:
        return None
    return Response(data=p.export(export_type, d.get("version") or None))
