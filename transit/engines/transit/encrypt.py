"""`encrypt/:name`, `decrypt/:name` (spec §4.8-4.9, §5). THE hot path.

The flow mirrors Vault's path_encrypt.go / path_decrypt.go / path_rewrap.go, since clients see
whichever error comes first:

1. items: `batch_input` decoded strictly (500 on a malformed item), or the one scalar item;
2. a pre-pass per item: the context rule (400 for the whole request), then base64 decoding,
   whose errors are kept per item, *not* raised yet;
3. the key: cached lookup; encrypt may create it (upsert); a missing key is 400 now;
4. per item: request checks against the key (nonce, padding, associated data), then crypto.

A single request on a cached key costs one dict lookup, the base64 decodes and one AEAD call:
no storage, no lock, no copy. Single requests raise their item's error (400 for UserError, 500
for InternalError); batches report errors per item (`batch.Outcome`).

CPU-heavy work leaves the event loop (`batch.run_items`): a large batch runs in chunks (on the
CPU thread pool for RSA, with yields on the loop for AEAD), and so do a single RSA decrypt or
rewrap and the RSA key generation of an upsert. Small AEAD requests stay inline.

The per-item steps, and steps 1-3 of decrypt, live in transit/engines/transit/itemsteps.py,
shared with `rewrap/:name` (rewrap.py, same flow); the handlers here call them directly.
"""

from __future__ import annotations

import asyncio
from binascii import b2a_base64 as _b2a
from typing import TYPE_CHECKING, Any

from transit.crypto.ciphertext import max_version_of
from transit.crypto.encoding import b64decode, b64encode
from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.engines.transit.batch import (
    INLINE_BUDGET,
    INT,
    PRIVATE,
    PUBLIC,
    STR,
    STR_NOT_NULL,
    Outcome,
    context_set,
    gil_free,
    item_cost,
    offload,
    run_items,
)
from transit.engines.transit.itemsteps import (
    KEY_NOT_FOUND,
    MISSING_CIPHERTEXT,
    batch_items,
    ciphertext_items,
    decrypt_one,
    encrypt_one,
    item_error,
    prepare_one,
    single_item,
)
from transit.engines.transit.policies import KEEP
from transit.errors import TransitError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import CREATE, Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort


_S, _I, _B = FieldType.STRING, FieldType.INT, FieldType.BOOL

ENCRYPT_FIELDS: dict[str, Field] = {
    "name": Field(_S, "", "Name of the key"),
    "plaintext": Field(_S, "", "Base64 plaintext"),
    "context": Field(_S, "", "Base64 context for derived keys"),
    "key_version": Field(_I, 0, "Key version to encrypt with (0 = latest)"),
    "nonce": Field(_S, "", "Base64 nonce (convergent v1 keys only)"),
    "associated_data": Field(_S, "", "Base64 associated data (AEAD types)"),
    "padding_scheme": Field(_S, "", "oaep or pkcs1v15 (RSA)"),
    # No top-level `reference`: Vault only reads it from batch items (else a warning).
    "batch_input": Field(FieldType.SLICE, None, "Items to encrypt"),
    "type": Field(_S, "aes256-gcm96", "Key type when the key is created (upsert)"),
    "convergent_encryption": Field(_B, False, "Convergent key when created (upsert)"),
    "partial_failure_response_code": Field(_I, 0, "Status for a partially failed batch"),
}

DECRYPT_FIELDS: dict[str, Field] = {
    "name": Field(_S, "", "Name of the key"),
    "ciphertext": Field(_S, "", "vault:vN:... ciphertext"),
    "context": Field(_S, "", "Base64 context for derived keys"),
    "nonce": Field(_S, "", "Base64 nonce (convergent v1 keys only)"),
    "associated_data": Field(_S, "", "Base64 associated data (AEAD types)"),
    "padding_scheme": Field(_S, "", "oaep or pkcs1v15 (RSA)"),
    "batch_input": Field(FieldType.SLICE, None, "Items to decrypt"),
    "partial_failure_response_code": Field(_I, 0, "Status for a partially failed batch"),
}

_ENCRYPT_ITEM = {
    "context": STR, "plaintext": STR_NOT_NULL, "nonce": STR, "key_version": INT,
    "associated_data": STR, "reference": STR, "padding_scheme": STR,
}
_DECRYPT_ITEM = {
    "context": STR, "ciphertext": STR, "nonce": STR, "associated_data": STR,
    "reference": STR, "padding_scheme": STR,
}

CREATED_BEFOREHAND = (
    "Attempted creation of the key during the encrypt operation, but it was created beforehand"
)

# Key types encrypt may create (Vault's upsert switch); ECDSA gets its own message.
_UPSERT_TYPES = frozenset({"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305",
                           "rsa-2048", "rsa-3072", "rsa-4096"})
_NO_UPSERT_TYPES = frozenset({"ecdsa-p256", "ecdsa-p384", "ecdsa-p521"})


async def key_exists(b: TransitPort, req: Request, d: FieldData) -> bool:
    """Existence check of encrypt/:name: a missing key makes the request an ACL *create*."""
    return await b.policies.get(d.get("name")) is not None


# --- encrypt --------------------------------------------------------------------------------

async def _upsert(
    b: TransitPort, d: FieldData, name: str, derived: bool
) -> tuple[Policy, bool]:
    """Create the missing key for encrypt; returns (policy or None, existed_beforehand).

    Like Vault, the key is created even when every item already failed its pre-pass (bad
    base64): the request fails but the key exists afterwards.
    """
    convergent = d.get("convergent_encryption")
    if convergent and not derived:
        raise UserError(
            "convergent encryption requires derivation to be enabled, so context is required"
        )
    type_name = d.get("type")
    if type_name not in _UPSERT_TYPES:
        if type_name in _NO_UPSERT_TYPES:
            raise UserError(f"key type {type_name} not supported for this operation")
        raise UserError(f"unknown key type {type_name}")
    if b.disable_upsert:
        raise UserError(KEY_NOT_FOUND)

    key_type = KeyType(type_name)

    async def create(current: Policy | None) -> tuple[Any, bool]:
        if current is not None:
            return KEEP, True  # another request (worker, node) created it first: use theirs
        # InternalError (500) e.g. for an RSA key with a context ("derived"). RSA key
        # generation (up to ~1 s for 4096 bits) runs off the event loop.
        if key_type.is_rsa:
            return await offload(_create_policy, name, key_type, derived, convergent), False
        return _create_policy(name, key_type, derived, convergent), False

    p, existed = await b.policies.modify(name, create, durable=True)
    assert p is not None
    return p, existed


def _create_policy(name: str, key_type: KeyType, derived: bool, convergent: bool) -> Policy:
    return Policy.create(name, key_type, derived=derived, convergent=convergent)


async def encrypt(b: TransitPort, req: Request, d: FieldData) -> Response:
    if d.raw.get("batch_input") is not None:
        return await _encrypt_batch(b, req.operation, d)
    if not d.present("plaintext"):
        raise UserError("missing plaintext to encrypt")
    name = d.get("name")
    item = single_item(d, _ENCRYPT_ITEM)
    pre = prepare_one(item, "plaintext")
    # (on a performance standby, a key or version its replica lacks: the active node answers)
    p = await b.policies.get_for(name, forward=req.perf_standby, version=item["key_version"])
    # An ACL "create" (the existence check found no key) that finds the key: someone else
    # created it in between.
    existed = req.operation == CREATE
    if p is None:
        p, existed = await _upsert(b, d, name, item["context"] != "")
    if isinstance(pre, TransitError):
        raise pre
    ciphertext, version = encrypt_one(p, 0, item, pre)
    resp = Response(data={"ciphertext": ciphertext, "key_version": version})
    if existed:
        resp.add_warning(CREATED_BEFOREHAND)
    return resp


def _plain_items(raw: Any, field: str) -> bool:
    """Whether every item of `batch_input` is an object holding a string `field` and at most
    a string `reference` besides: nothing to decode strictly (`decode_items` would only add
    the defaults) and no per-item option, so the batch may take the plain path."""
    if type(raw) is not list or not raw:
        return False
    for item in raw:
        if type(item) is not dict or type(item.get(field)) is not str:
            return False
        if len(item) != 1 and (len(item) != 2 or type(item.get("reference")) is not str):
            return False
    return True


# Items per slice of the plain path between two yields to the event loop (~2 ms of work).
_PLAIN_SLICE = 1024


async def _encrypt_plain(p: Policy, raw: list[dict[str, str]], outcome: Outcome,
                         ) -> list[dict[str, Any]]:
    """The batch of `_plain_items` with a `plain_batches` key: what the per-item path
    answers, from base64 decoding, one AEAD call and one base64 encoding per item."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(raw), _PLAIN_SLICE):
        if start:
            await asyncio.sleep(0)
        chunk = raw[start:start + _PLAIN_SLICE]
        plaintexts: list[bytes] = []
        failed: dict[int, str] = {}
        for i, item in enumerate(chunk):
            try:
                plaintexts.append(b64decode(item["plaintext"]))
            except UserError as exc:
                failed[i] = outcome.fail(exc)
        ciphertexts, version = p.encrypt_many(plaintexts)
        if ciphertexts:
            outcome.ok()
        it = iter(ciphertexts)
        for i, item in enumerate(chunk):
            ref = item.get("reference", "")
            error = failed.get(i) if failed else None
            if error is not None:
                results.append({"error": error, "reference": ref})
            else:
                results.append({"ciphertext": next(it), "key_version": version,
                                "reference": ref})
    return results


async def _encrypt_batch(b: TransitPort, op: str, d: FieldData) -> Response:
    name = d.get("name")
    raw = d.raw["batch_input"]
    plain = _plain_items(raw, "plaintext")
    items: list[dict[str, Any]] = []
    if not plain:
        items = batch_items(d, _ENCRYPT_ITEM, {"plaintext": "missing plaintext to encrypt"})
    derived = False if plain else context_set(items)

    p = await b.policies.get(name)
    existed = op == CREATE
    if p is None:
        p, existed = await _upsert(b, d, name, derived)

    outcome = Outcome()
    if plain and p.plain_batches():
        resp = Response(data={"batch_results": await _encrypt_plain(p, raw, outcome)})
        if existed:
            resp.add_warning(CREATED_BEFOREHAND)
        return outcome.finish(resp, d)
    if plain:
        items = batch_items(d, _ENCRYPT_ITEM, {"plaintext": "missing plaintext to encrypt"})
    results: list[dict[str, Any]] = []

    def step(i: int) -> None:
        item = items[i]
        try:
            x = prepare_one(item, "plaintext")
            if isinstance(x, TransitError):
                raise x
            ciphertext, version = encrypt_one(p, i, item, x)
        except Exception as exc:
            results.append({"error": item_error(outcome, exc), "reference": item["reference"]})
            return
        outcome.ok()
        results.append(
            {"ciphertext": ciphertext, "key_version": version, "reference": item["reference"]}
        )

    await run_items(step, len(items), item_cost(p.type, PUBLIC), gil_free(p.type))
    resp = Response(data={"batch_results": results})
    if existed:
        resp.add_warning(CREATED_BEFOREHAND)
    return outcome.finish(resp, d)


# --- decrypt --------------------------------------------------------------------------------

def _decrypt_single(p: Policy, item: dict[str, Any]) -> bytes:
    x = prepare_one(item, "ciphertext")
    if isinstance(x, TransitError):
        raise x
    return decrypt_one(p, 0, item, x)


async def _decrypt_plain(p: Policy, raw: list[dict[str, str]], ciphertexts: list[str],
                         outcome: Outcome) -> list[dict[str, Any]]:
    """The batch of `_plain_items` with a `plain_batches` key (see `_encrypt_plain`)."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(raw), _PLAIN_SLICE):
        if start:
            await asyncio.sleep(0)
        chunk = raw[start:start + _PLAIN_SLICE]
        opened = p.decrypt_many(ciphertexts[start:start + _PLAIN_SLICE])
        succeeded = False
        for item, plaintext in zip(chunk, opened, strict=True):
            ref = item.get("reference", "")
            if type(plaintext) is bytes:
                succeeded = True
                results.append({"plaintext": _b2a(plaintext, newline=False).decode(),
                                "reference": ref})
            else:
                assert isinstance(plaintext, TransitError)  # decrypt_many: bytes or the error
                results.append({"plaintext": "", "error": outcome.fail(plaintext),
                                "reference": ref})
        if succeeded:
            outcome.ok()
    return results


async def decrypt(b: TransitPort, req: Request, d: FieldData) -> Response:
    raw = d.raw.get("batch_input")
    if raw is not None and _plain_items(raw, "ciphertext"):
        ciphertexts = [item["ciphertext"] for item in raw]
        if all(ciphertexts):
            p = await b.policies.get_for(d.get("name"), version=max_version_of(ciphertexts),
                                         forward=req.perf_standby)
            if p is None:
                raise UserError(KEY_NOT_FOUND)
            if p.plain_batches():
                outcome = Outcome()
                plain_results = await _decrypt_plain(p, raw, ciphertexts, outcome)
                return outcome.finish(Response(data={"batch_results": plain_results}), d)
    batch, items, p = await ciphertext_items(
        b, d, _DECRYPT_ITEM, {"ciphertext": MISSING_CIPHERTEXT}, req.perf_standby
    )
    cost = item_cost(p.type, PRIVATE)
    if not batch:
        if cost > INLINE_BUDGET:  # one RSA private operation: milliseconds
            plaintext = await offload(_decrypt_single, p, items[0])
        else:
            plaintext = _decrypt_single(p, items[0])
        return Response(data={"plaintext": b64encode(plaintext)})

    outcome = Outcome()
    results: list[dict[str, Any]] = []

    def step(i: int) -> None:
        item = items[i]
        try:
            x = prepare_one(item, "ciphertext")
            if isinstance(x, TransitError):
                raise x
            plaintext = decrypt_one(p, i, item, x)
        except Exception as exc:
            results.append(
                {"plaintext": "", "error": item_error(outcome, exc), "reference": item["reference"]}
            )
            return
        outcome.ok()
        results.append({"plaintext": b64encode(plaintext), "reference": item["reference"]})

    await run_items(step, len(items), cost, gil_free(p.type))
    return outcome.finish(Response(data={"batch_results": results}), d)
