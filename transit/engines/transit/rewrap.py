"""`rewrap/:name` (spec §4.10, §5): decrypt and re-encrypt with the latest (or a given)
key version, a fresh nonce, in one request; mirrors Vault's path_rewrap.go.

It shares steps 1-3 and the per-item pre-pass with decrypt (transit/engines/transit/
itemsteps.py). A batch is always 200 with per-item errors (no `Outcome` status rules), but an
internal error fails the whole request; CPU-heavy work leaves the event loop
(`batch.run_items`), as for encrypt and decrypt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transit.crypto.policy import Policy
from transit.engines.transit.batch import INT, REWRAP, STR, gil_free, item_cost, run_items
from transit.engines.transit.itemsteps import ciphertext_items, prepare_one
from transit.errors import TransitError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort


_S, _I = FieldType.STRING, FieldType.INT

REWRAP_FIELDS: dict[str, Field] = {
    "name": Field(_S, "", "Name of the key"),
    "ciphertext": Field(_S, "", "vault:vN:... ciphertext"),
    "context": Field(_S, "", "Base64 context for derived keys"),
    "nonce": Field(_S, "", "Base64 nonce (convergent v1 keys only)"),
    "key_version": Field(_I, 0, "Key version to re-encrypt with (0 = latest)"),
    "decrypt_padding_scheme": Field(_S, "", "oaep or pkcs1v15 (RSA)"),
    "encrypt_padding_scheme": Field(_S, "", "oaep or pkcs1v15 (RSA)"),
    "batch_input": Field(FieldType.SLICE, None, "Items to rewrap"),
}

_REWRAP_ITEM = {
    "context": STR, "ciphertext": STR, "nonce": STR, "key_version": INT, "reference": STR,
    "decrypt_padding_scheme": STR, "encrypt_padding_scheme": STR,
}


def _rewrap_one(p: Policy, i: int, item: dict[str, Any], pre: tuple) -> tuple[str, int]:
    context, nonce = pre
    dscheme = p.check_padding(item["decrypt_padding_scheme"], i, "decrypt_padding_scheme")
    if nonce is not None:
        p.check_nonce()
    plaintext = p.decrypt(item["ciphertext"], context=context, nonce=nonce, padding_scheme=dscheme)
    escheme = p.check_padding(item["encrypt_padding_scheme"], i, "encrypt_padding_scheme")
    return p.encrypt(plaintext, version=item["key_version"], context=context, nonce=nonce,
                     padding_scheme=escheme)


async def rewrap(b: TransitPort, req: Request, d: FieldData) -> Response:
    """Decrypt and re-encrypt (fresh nonce). A batch is always 200 with per-item errors,
    but an internal error fails the whole request, as in Vault."""
    batch, items, p = await ciphertext_items(b, d, _REWRAP_ITEM, None, req.perf_standby)
    results: list[dict[str, Any]] = []

    def step(i: int) -> None:
        item = items[i]
        x = prepare_one(item, "ciphertext")
        try:
            if isinstance(x, TransitError):
                raise x
            ciphertext, version = _rewrap_one(p, i, item, x)
        except UserError as exc:  # anything else (InternalError, ...) fails the request
            if not batch:
                raise
            results.append({"error": exc.message, "reference": item["reference"]})
            return
        results.append(
            {"ciphertext": ciphertext, "key_version": version, "reference": item["reference"]}
        )

    await run_items(step, len(items), item_cost(p.type, REWRAP), gil_free(p.type))
    if not batch:
        return Response(data={"ciphertext": results[0]["ciphertext"],
                              "key_version": results[0]["key_version"]})
    return Response(data={"batch_results": results})
