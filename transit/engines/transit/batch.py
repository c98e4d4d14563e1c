"""Shared batch machinery for transit handlers (spec §5), small on purpose.

The API:

* `decode_items(raw, schema, required)` — Vault's strict `decodeBatchRequestItems`: every
  item becomes a dict holding every schema field (default "" or 0). A non-list, a non-object
  item, a wrongly typed field or a missing required field fails the whole request with
  `InternalError("failed to parse batch input: ...")` (a 500, as in Vault).
* `context_set(items)` — the "context on all items or none, judged by item 0" rule.
* `Outcome` — per-item bookkeeping (`ok()`, `fail(exc)`) and `finish(resp, d)`, which applies
  the encrypt/decrypt status rules: 400 on any user error, else 500 on internal errors, the
  `partial_failure_response_code` override when something succeeded. The body stays the full
  envelope: we only set `Response.status`.

Handlers whose batches are always 200 (rewrap, hmac, sign, verify) use `decode_items` and
skip `Outcome.finish`. Base64 is `transit.crypto.encoding.b64decode` (Go's decoder and errors).

CPU-heavy work stays off the event loop (DESIGN §7, "the event loop never blocks"):

* `item_cost(key_type, op)` — a rough per-item cost in seconds (RSA private operations are
  milliseconds, ECDSA/Ed25519 tens to hundreds of µs, AEAD and HMAC a few µs of Python).
* `run_items(step, n, cost, gil_free)` — runs `step(0) … step(n-1)`. Work estimated under
  `INLINE_BUDGET` runs right here, with no await and no extra cost (the hot path: a single or
  small AES request). Above it, the items run in chunks of about `CHUNK_BUDGET` of work: on a
  bounded thread pool when the crypto releases the GIL (`cryptography`'s RSA, ECDSA, Ed25519
  and key generation do: two threads run them 1.8× faster than one on two cores), else on
  the loop with a yield between chunks (AEAD/HMAC items are GIL-bound Python, a thread would
  only fight the loop for the GIL).
* `offload(fn, *args)` — one call (e.g. RSA key generation) on that thread pool
  (`transit.pools`, shared with the rest of the process).

Steps run one chunk at a time, never concurrently with each other, so they may append to
shared lists and update an `Outcome` without locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from transit import pools
from transit.crypto.keytypes import KeyType
from transit.errors import InternalError, UserError
from transit.fields import FieldData, go_type
from transit.logical import Response

T = TypeVar("T")

# Field kinds for `decode_items`.
STR = "string"
INT = "int"
# A string whose JSON null is an error rather than "absent" (Vault's `plaintext` quirk: its
# decoder type-asserts without the nil check the other fields have).
STR_NOT_NULL = "string!"

def go_kind(v: Any) -> str:
    """Go's reflect.Kind name of a decoded JSON value (json.Number is a string kind)."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, str | int | float):
        return "string"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "slice"
    return "invalid"


def not_a_slice(raw: Any) -> InternalError:
    """mapstructure.Decode's (v1.5) error for a `batch_input` that is not a list."""
    return InternalError(
        f"failed to parse batch input: '': source data must be an array or slice, got {go_kind(raw)}"
    )


def decode_items(
    raw: Any, schema: Mapping[str, str], required: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Decode `batch_input` strictly (see the module docstring).

    `schema` maps field name to STR / STR_NOT_NULL / INT; `required` maps a field name to the
    text of its "missing" error (e.g. {"plaintext": "missing plaintext to encrypt"}).
    Fields outside the schema are ignored, like Go struct decoding does.
    """
    if not isinstance(raw, list):
        raise InternalError(
            f"failed to parse batch input: source data must be an array or slice, got {go_type(raw)}"
        )
    required = required or {}
    errs: list[str] = []
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InternalError(
                f"failed to parse batch input: [{i}] expected a map, got '{go_type(item)}'"
            )
        dec: dict[str, Any] = {}
        for fname, kind in schema.items():
            if fname not in item:
                if fname in required:
                    errs.append(f"'[{i}].{fname}' {required[fname]}")
                dec[fname] = 0 if kind == INT else ""
                continue
            v = item[fname]
            if v is None and kind != STR_NOT_NULL:
                dec[fname] = 0 if kind == INT else ""
            elif kind == INT:
                if isinstance(v, int) and not isinstance(v, bool):
                    dec[fname] = v
                elif isinstance(v, float):
                    errs.append(
                        f"error decoding json.Number into [{i}].{fname}: strconv.ParseInt: "
                        f'parsing "{v!r}": invalid syntax'
                    )
                else:
                    errs.append(
                        f"'[{i}].{fname}' expected type 'int', got unconvertible type '{go_type(v)}'"
                    )
            elif isinstance(v, str):
                dec[fname] = v
            else:
                errs.append(
                    f"'[{i}].{fname}' expected type 'string', got unconvertible type '{go_type(v)}'"
                )
        out.append(dec)
    if errs:
        # mapstructure.Error's rendering: count, then the sorted bullet list.
        points = sorted(f"* {e}" for e in errs)
        body = "\n".join(points)
        raise InternalError(
            f"failed to parse batch input: {len(errs)} error(s) decoding:\n\n{body}"
        )
    return out


def context_set(items: list[dict[str, Any]]) -> bool:
    """Whether the batch carries contexts; all items must agree with item 0 (else 400)."""
    want = items[0]["context"] != ""
    for item in items:
        if (item["context"] != "") is not want:
            raise UserError("context should be set either in all the request blocks or in none")
    return want


class Outcome:
    """What happened to a batch's items, for the §5 status rules."""

    __slots__ = ("successes", "user_errors", "internal_errors")

    def __init__(self) -> None:
        self.successes = False
        self.user_errors = False
        self.internal_errors = False

    def ok(self) -> None:
        self.successes = True

    def fail(self, exc: BaseException) -> str:
        """Record a failed item; returns the message to put in its `error` field."""
        if isinstance(exc, UserError):
            self.user_errors = True
            return exc.message
        # InternalError, StorageError or an unexpected exception: Vault's "anything that is
        # not a UserError" bucket.
        self.internal_errors = True
        return exc.message if isinstance(exc, InternalError) else str(exc)

    def finish(self, resp: Response, d: FieldData) -> Response:
        """Apply the encrypt/decrypt batch status rules to `resp` (needs the route to declare
        `partial_failure_response_code`)."""
        if not (self.user_errors or self.internal_errors):
            return resp
        code = 400 if self.user_errors else 500
        if self.successes and d.present("partial_failure_response_code"):
            override = d.get("partial_failure_response_code")
            if 1 <= override <= 599:
                code = override
            else:
                resp.add_warning(
                    "invalid HTTP response code override from partial_failure_response_code, "
                    f"reverting to {code}"
                )
        resp.status = code
        return resp


# --- off the event loop --------------------------------------------------------------------

# Work estimated below this runs inline on the loop (seconds).
INLINE_BUDGET = 0.001
# About this much work per chunk (seconds): a thread-pool chunk, or a loop slice between yields.
CHUNK_BUDGET = 0.02
# Cap on items per chunk, so cheap items still yield regularly (Python overhead per item).
MAX_CHUNK = 1024

# Operations, for `item_cost`.
PRIVATE = "private"  # RSA decrypt, any signature
PUBLIC = "public"  # RSA encrypt, signature verification
REWRAP = "rewrap"  # a private then a public operation

_RSA_PRIVATE = {2048: 4e-4, 3072: 1e-3, 4096: 1.8e-3}
_RSA_PUBLIC = 1e-4
_EC = {  # (sign, verify)
    KeyType.ECDSA_P256: (5e-5, 8e-5),
    KeyType.ECDSA_P384: (1.5e-4, 4e-4),
    KeyType.ECDSA_P521: (3e-4, 6e-4),
    KeyType.ED25519: (5e-5, 1e-4),
}
_CHEAP = 1e-5  # AEAD, HMAC: a few µs of Python per item


def item_cost(key_type: KeyType, op: str) -> float:
    """Rough seconds of CPU per item of `op` with a key of `key_type`."""
    if key_type.is_rsa:
        private = _RSA_PRIVATE.get(key_type.rsa_bits, 2e-3)
        if op == PRIVATE:
            return private
        if op == REWRAP:
            return private + _RSA_PUBLIC
        return _RSA_PUBLIC
    ec = _EC.get(key_type)
    if ec is not None:
        return ec[1] if op == PUBLIC else ec[0]
    return _CHEAP


def gil_free(key_type: KeyType) -> bool:
    """Whether `cryptography` releases the GIL for this key type's operations (asymmetric
    keys: measured; AEAD/HMAC calls are too short for it to matter)."""
    return key_type.is_asymmetric


async def offload(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` on the process's CPU thread pool (for work that releases the GIL)."""
    return await pools.in_thread(fn, *args)


def _run_range(step: Callable[[int], None], start: int, stop: int) -> None:
    for i in range(start, stop):
        step(i)


async def run_items(step: Callable[[int], None], n: int, cost: float, gil_free: bool) -> None:
    """Run `step(i)` for i in 0..n-1, in order, keeping the event loop responsive (see the
    module docstring). An exception from a step propagates and stops the rest."""
    if n * cost <= INLINE_BUDGET:
        for i in range(n):
            step(i)
        return
    chunk = max(1, min(MAX_CHUNK, int(CHUNK_BUDGET / cost)))
    if gil_free:
        loop = asyncio.get_running_loop()
        pool = pools.thread_pool()
        for start in range(0, n, chunk):
            await loop.run_in_executor(pool, _run_range, step, start, min(n, start + chunk))
        return
    for start in range(0, n, chunk):
        if start:
            await asyncio.sleep(0)
        _run_range(step, start, min(n, start + chunk))
