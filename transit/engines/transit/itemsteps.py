"""The per-item steps shared by `encrypt/:name`, `decrypt/:name` and `rewrap/:name` (spec §5).

The handlers (transit/engines/transit/encrypt.py, rewrap.py) run these steps on each item,
in the order of encrypt.py's docstring: the items of a request (`single_item`,
`batch_items`), the pre-pass that decodes an item's base64 fields and returns, not raises,
its error (`prepare_one`), the request checks against the key and the crypto of one item
(`encrypt_one`, `decrypt_one`), and an item's error for a batch (`item_error`); plus steps 1-3
of decrypt and rewrap (`ciphertext_items`). They are whole functions called directly by the
handlers: the hot path pays no extra call for living here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transit.crypto.encoding import b64decode
from transit.crypto.policy import Policy
from transit.engines.transit.batch import Outcome, context_set, decode_items, not_a_slice
from transit.errors import InternalError, OptionError, TransitError, UserError
from transit.fields import FieldData

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort

MISSING_CIPHERTEXT = "missing ciphertext to decrypt"
KEY_NOT_FOUND = "encryption key not found"


def _decode_opt(s: str) -> bytes | None:
    return b64decode(s) if s else None


def decode_associated_data(ad: str) -> bytes:
    """Base64 `associated_data`; Vault decodes it lazily in the policy's AssocDataFactory,
    so a bad one is an InternalError (500)."""
    try:
        return b64decode(ad)
    except UserError as exc:
        raise InternalError(
            f"unable to get associated_data/additional_data from factory[0]: {exc.message}"
        ) from None


def _associated_data(p: Policy, i: int, ad: str) -> bytes | None:
    if not ad:
        return None
    p.check_associated_data(i)
    return decode_associated_data(ad)


def item_error(outcome: Outcome, exc: BaseException) -> str:
    """An item's error message; an `OptionError` leaves the batch's status alone."""
    if isinstance(exc, OptionError):
        return exc.message
    return outcome.fail(exc)


def encrypt_one(p: Policy, i: int, item: dict[str, Any], pre: tuple) -> tuple[str, int]:
    plaintext, context, nonce = pre
    if nonce is not None:
        p.check_nonce()
    scheme = p.check_padding(item["padding_scheme"], i)
    ad = _associated_data(p, i, item["associated_data"])
    return p.encrypt(plaintext, version=item["key_version"], context=context, nonce=nonce,
                     associated_data=ad, padding_scheme=scheme)


def decrypt_one(p: Policy, i: int, item: dict[str, Any], pre: tuple) -> bytes:
    context, nonce = pre
    scheme = p.check_padding(item["padding_scheme"], i)
    ad = _associated_data(p, i, item["associated_data"])
    return p.decrypt(item["ciphertext"], context=context, nonce=nonce, associated_data=ad,
                     padding_scheme=scheme)


def prepare_one(item: dict[str, Any], need: str) -> tuple | TransitError:
    """The pre-pass of one item: decode its base64 fields; an error is returned, not raised.
    (It is per item and raises nothing request-wide, so batches run it with the item's crypto,
    in the same chunk.)"""
    try:
        if need == "plaintext":
            return (b64decode(item["plaintext"]), _decode_opt(item["context"]),
                    _decode_opt(item["nonce"]))
        if item["ciphertext"] == "":
            raise UserError(MISSING_CIPHERTEXT)
        return (_decode_opt(item["context"]), _decode_opt(item["nonce"]))
    except UserError as exc:
        return exc


def single_item(d: FieldData, schema: dict[str, str]) -> dict[str, Any]:
    """The one item of a non-batch request: the item schema's fields, read from the request
    (Vault takes `reference` from batch items only). A field the request left out (or sent
    as null) is its default, taken directly: item fields are strings and integers, whose
    defaults need no copy (the hot path: most requests send one or two of them)."""
    raw, fields = d.raw, d.schema
    return {f: "" if f == "reference" else (
        fields[f].default if raw.get(f) is None else d.get(f)) for f in schema}


def batch_items(
    d: FieldData, schema: dict[str, str], required: dict[str, str] | None
) -> list[dict[str, Any]]:
    raw = d.raw["batch_input"]
    if required is None and not isinstance(raw, list):
        raise not_a_slice(raw)  # rewrap decodes with mapstructure, not the fast path
    items = decode_items(raw, schema, required)
    if not items:
        raise UserError("missing batch input to process")
    return items


async def ciphertext_items(
    b: TransitPort, d: FieldData, schema: dict[str, str], required: dict[str, str] | None,
    forward: bool = False,
) -> tuple[bool, list[dict[str, Any]], Policy]:
    """Steps 1-3 for decrypt and rewrap: (batch?, items, the key). The per-item pre-pass
    (`prepare_one`) runs with each item's crypto."""
    batch = d.raw.get("batch_input") is not None
    if batch:
        items = batch_items(d, schema, required)
    else:
        if not d.get("ciphertext"):
            raise UserError(MISSING_CIPHERTEXT)
        items = [single_item(d, schema)]
    context_set(items)

    p = await b.policies.get_for(
        d.get("name"), (item.get("ciphertext") for item in items), forward=forward
    )
    if p is None:
        raise UserError(KEY_NOT_FOUND)
    return batch, items, p
