"""`hmac/:name[/:algorithm]` and HMAC verification for `verify` (spec §3.4, §4.14, §4.16).

The HMAC itself and its checks are the crypto core's (`Policy.hmac_signer`,
`Policy.hmac_verifier`), in Vault's path_hmac.go order: key, version rules, HMAC key lookup,
algorithm, then the batch; this module reads the request and shapes the answer. Request-wide
failures fail the whole request; per-item
failures become item `error`s and a batch always answers 200. HMAC items are cheap and
GIL-bound: a large batch runs on the loop in chunks with yields between them
(`batch.run_items`), a single request inline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transit.crypto.encoding import b64decode
from transit.crypto.keytypes import KeyType
from transit.engines.transit.batch import item_cost, not_a_slice, run_items
from transit.errors import CryptoError, InternalError, UserError
from transit.fields import Field, FieldData, FieldType, go_type
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort

HMAC_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "The key to use for the HMAC function"),
    "input": Field(FieldType.STRING, None, "The base64-encoded input data"),
    "algorithm": Field(FieldType.STRING, "sha2-256", "Algorithm (body parameter)"),
    "urlalgorithm": Field(FieldType.STRING, "", "Algorithm (URL parameter)"),
    "key_version": Field(FieldType.INT, 0, "Key version (0 = latest)"),
    "batch_input": Field(FieldType.SLICE, None, "Items to process"),
}

_HMAC_COST = item_cost(KeyType.HMAC, "hmac")  # a few µs of Python per item

def decode_string_maps(raw: Any) -> list[dict[str, str]]:
    """mapstructure.Decode into Go's `[]map[string]string` (sign, verify and hmac batches).

    Unlike the struct decoding of `batch.decode_items`, a key's *presence* matters here
    (verify tells `signature` from `hmac` items by it), and every key is kept. A JSON null
    value decodes to "" and still counts as sent; a null item is an empty map. Anything else
    that is not a string fails the whole request with a 500; an empty batch is a 400.
    """
    if not isinstance(raw, list):
        raise not_a_slice(raw)
    problems: list[str] = []
    items: list[dict[str, str]] = []
    for i, item in enumerate(raw):
        if item is None:
            items.append({})
            continue
        if not isinstance(item, dict):
            raise InternalError(
                f"failed to parse batch input: '[{i}]' expected a map, got '{go_type(item)}'"
            )
        out: dict[str, str] = {}
        for key, value in item.items():
            if value is None:
                out[key] = ""
            elif isinstance(value, str):
                out[key] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                # A json.Number has a string kind: mapstructure copies its text.
                out[key] = str(value)
            else:
                problems.append(
                    f"* '[{i}][{key}]' expected type 'string', got unconvertible type "
                    f"'{go_type(value)}', value: '{_go_value(value)}'"
                )
        items.append(out)
    if problems:
        body = "\n".join(sorted(problems))
        raise InternalError(
            f"failed to parse batch input: {len(problems)} error(s) decoding:\n\n{body}"
        )
    if not items:
        raise UserError("missing batch input to process")
    return items


def decode_input(item: dict[str, str], missing: str = "missing input") -> bytes:
    """An item's base64 `input` (hmac, sign, verify), with Vault's per-item errors."""
    if "input" not in item:
        raise UserError(missing)
    try:
        return b64decode(item["input"])
    except CryptoError as exc:
        raise UserError(f"unable to decode input as base64: {exc.message}") from None


def _go_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


async def hmac(b: TransitPort, req: Request, d: FieldData) -> Response:
    version = d.get("key_version")
    algorithm = d.get("urlalgorithm") or d.get("algorithm")

    p = await b.policies.get_for(d.get("name"), forward=req.perf_standby, version=version)
    if p is None:
        raise UserError("encryption key not found")
    sign = p.hmac_signer(version, algorithm)

    batch_raw = d.raw.get("batch_input")
    if batch_raw is not None:
        items = decode_string_maps(batch_raw)
    else:
        if not d.present("input"):
            raise UserError("missing input for HMAC")
        items = [{"input": d.get("input")}]

    if batch_raw is None:
        return Response(data={"hmac": sign(decode_input(items[0], "missing input for HMAC"))})

    results: list[dict[str, Any]] = []

    def step(i: int) -> None:
        item = items[i]
        entry: dict[str, Any] = {}
        try:
            data = decode_input(item, "missing input for HMAC")
        except UserError as exc:
            entry["error"] = exc.message
        else:
            entry["hmac"] = sign(data)
        entry["reference"] = item.get("reference", "")
        results.append(entry)

    await run_items(step, len(items), _HMAC_COST, False)
    return Response(data={"batch_results": results})


def _verify_one(verify: Callable[[bytes, str], bool], item: dict[str, str]) -> bool:
    data = decode_input(item)
    if "hmac" not in item:
        raise UserError("missing hmac")
    return verify(data, item["hmac"])


async def verify_hmac_items(
    b: TransitPort, name: str, algorithm: str, items: list[dict[str, str]], batch: bool,
    *, forward: bool = False,
) -> Response:
    """Vault's pathHMACVerify, after verify() has decided the request carries HMACs.

    Batch items omit a false `valid` (Go `omitempty`), so a failed check is just
    `{"reference": ...}`.
    """
    p = await b.policies.get_for(name, (item.get("hmac") for item in items), forward=forward)
    if p is None:
        raise UserError("encryption key not found")
    verify = p.hmac_verifier(algorithm)

    if not batch:
        return Response(data={"valid": _verify_one(verify, items[0])})

    results: list[dict[str, Any]] = []

    def step(i: int) -> None:
        item = items[i]
        try:
            valid = _verify_one(verify, item)
        except UserError as exc:
            results.append({"error": exc.message, "reference": item.get("reference", "")})
            return
        entry: dict[str, Any] = {"valid": True} if valid else {}
        entry["reference"] = item.get("reference", "")
        results.append(entry)

    await run_items(step, len(items), _HMAC_COST, False)
    return Response(data={"batch_results": results})
