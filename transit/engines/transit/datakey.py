"""`datakey/:plaintext|wrapped/:name` (spec §4.11): a fresh random key, encrypted like §4.8.

Vault hands the base64 of the random bytes to encrypt, which decodes it again, so what gets
encrypted is the raw bytes and decrypt returns their base64 (= our `plaintext` field).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from transit.crypto.encoding import b64decode, b64encode
from transit.engines.transit.itemsteps import KEY_NOT_FOUND, decode_associated_data
from transit.errors import CryptoError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort

DATAKEY_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "Name of the key"),
    "plaintext": Field(FieldType.STRING, "", "plaintext or wrapped (path segment)"),
    "context": Field(FieldType.STRING, "", "Base64 context for derived keys"),
    "nonce": Field(FieldType.STRING, "", "Base64 nonce (convergent v1 keys only)"),
    "bits": Field(FieldType.INT, 256, "Number of bits of the data key: 128, 256 or 512"),
    "key_version": Field(FieldType.INT, 0, "Key version to encrypt with (0 = latest)"),
    "associated_data": Field(FieldType.STRING, "", "Base64 associated data (AEAD types)"),
}

_BYTES = {128: 16, 256: 32, 512: 64}


def _decode(raw: str, what: str) -> bytes | None:
    if not raw:
        return None
    try:
        return b64decode(raw)
    except CryptoError:
        raise UserError(f"failed to base64-decode {what}") from None


async def datakey(b: TransitPort, req: Request, d: FieldData) -> Response:
    kind = d.get("plaintext")
    if kind not in ("plaintext", "wrapped"):
        raise UserError("Invalid path, must be 'plaintext' or 'wrapped'")
    context = _decode(d.get("context"), "context")
    nonce = _decode(d.get("nonce"), "nonce")

    p = await b.policies.get_for(d.get("name"), forward=req.perf_standby,
                                 version=d.get("key_version"))
    if p is None:
        raise UserError(KEY_NOT_FOUND)
    size = _BYTES.get(d.get("bits"))
    if size is None:
        raise UserError("invalid bit length")
    key = os.urandom(size)

    # Associated data only reaches AEAD ciphers (Vault's factory is ignored elsewhere).
    ad_raw = d.get("associated_data")
    ad = None
    if ad_raw and p.type.is_aead:
        ad = decode_associated_data(ad_raw)
    ciphertext, version = p.encrypt(
        key, version=d.get("key_version"), context=context, nonce=nonce, associated_data=ad
    )
    data: dict[str, Any] = {"ciphertext": ciphertext, "key_version": version}
    if kind == "plaintext":
        data["plaintext"] = b64encode(key)
    return Response(data=data)
