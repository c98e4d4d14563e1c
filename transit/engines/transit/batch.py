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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transit.engines.fields import FieldData, go_type
from transit.engines.framework import Response
from transit.errors import InternalError, UserError

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
