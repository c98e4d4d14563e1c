"""`sign/:name[/:hash_algorithm]` and `verify/:name[/:hash_algorithm]` (spec §4.15-4.16).

Order of checks follows Vault's path_sign_verify.go, because clients see whichever error
comes first: request-wide parameters, then the key, then per-item problems. A batch is
always 200 with per-item `error`s. `verify` with `hmac` instead of `signature` is HMAC
verification (hmac.py). Signing and verifying are asymmetric crypto: above a millisecond of
estimated work they run on the CPU thread pool, in chunks (`batch.run_items`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transit.crypto.encoding import b64decode
from transit.crypto.hashing import SIGN_HASH_ALGORITHMS
from transit.crypto.signing import MARSHALING, parse_salt_length
from transit.engines.transit.batch import PRIVATE, PUBLIC, gil_free, item_cost, run_items
from transit.engines.transit.hmac import decode_input, decode_string_maps, verify_hmac_items
from transit.errors import CryptoError, InternalError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort

_COMMON: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "The key to use"),
    "input": Field(FieldType.STRING, "", "The base64-encoded input data"),
    "context": Field(FieldType.STRING, "", "Base64 context for derived (ed25519) keys"),
    "hash_algorithm": Field(FieldType.STRING, "sha2-256", "Hash algorithm"),
    "algorithm": Field(FieldType.STRING, "sha2-256", 'Deprecated: use "hash_algorithm"'),
    "urlalgorithm": Field(FieldType.STRING, "", "Hash algorithm (URL parameter)"),
    "prehashed": Field(FieldType.BOOL, False, "The input is already hashed"),
    "signature_algorithm": Field(FieldType.STRING, "", "pss or pkcs1v15 (RSA only)"),
    "marshaling_algorithm": Field(FieldType.STRING, "asn1", "asn1 or jws"),
    "salt_length": Field(FieldType.STRING, "auto", "auto, hash, or an int (RSA PSS)"),
    "batch_input": Field(FieldType.SLICE, None, "Items to process"),
}

SIGN_FIELDS: dict[str, Field] = {
    **_COMMON,
    "key_version": Field(FieldType.INT, 0, "Key version to sign with (0 = latest)"),
}

VERIFY_FIELDS: dict[str, Field] = {
    **_COMMON,
    "signature": Field(FieldType.STRING, "", "The signature, with its vault:vN: header"),
    "hmac": Field(FieldType.STRING, "", "The HMAC, with its vault:vN: header"),
}


def _go_quote(s: str) -> str:
    """Go's %q for the printable strings clients send."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _options(d: FieldData) -> dict[str, Any]:
    """The request-wide signing options, validated in Vault's order."""
    algorithm = d.get("urlalgorithm") or d.get("hash_algorithm") or d.get("algorithm")
    algorithm = algorithm or "sha2-256"
    if algorithm not in SIGN_HASH_ALGORITHMS:
        raise UserError(f"invalid hash algorithm {_go_quote(algorithm)}")
    marshaling = d.get("marshaling_algorithm")
    if marshaling not in MARSHALING:
        raise UserError(f"invalid marshaling type {_go_quote(marshaling)}")
    parse_salt_length(d.get("salt_length"))  # Vault rejects a bad one before the key lookup
    return {
        "hash_algorithm": algorithm,
        "marshaling_algorithm": marshaling,
        "prehashed": d.get("prehashed"),
        "signature_algorithm": d.get("signature_algorithm") or "pss",
        "salt_length": d.get("salt_length"),
    }


def _check_none(opts: dict[str, Any], raw_sig_alg: str) -> None:
    if opts["hash_algorithm"] == "none" and not (opts["prehashed"] and raw_sig_alg == "pkcs1v15"):
        raise UserError(
            "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15"
        )


def _decode_context(raw: str) -> bytes | None:
    if not raw:
        return None
    try:
        return b64decode(raw)
    except CryptoError:
        raise UserError("failed to base64-decode context") from None


# A raw PKCS#1 v1.5 signature (hash_algorithm=none): tens of ms of GIL-bound arithmetic,
# which `rsa_cipher` hands to a process pool when called from the CPU thread pool.
_RAW_RSA_COST = 0.05

_SIGN_POLICY_ERRORS = ("requested version for signing", "requested salt length")


async def sign(b: TransitPort, req: Request, d: FieldData) -> Response:
    name = d.get("name")
    version = d.get("key_version")
    opts = _options(d)

    p = await b.policies.get_for(name, forward=req.perf_standby, version=version)
    if p is None:
        raise UserError("signing key not found")
    if not p.type.supports_signing:
        raise UserError(f"key type {p.type} does not support signing")
    _check_none(opts, d.get("signature_algorithm"))

    batch_raw = d.raw.get("batch_input")
    if batch_raw is not None:
        items = decode_string_maps(batch_raw)
    else:
        items = [{"input": d.get("input"), "context": d.get("context")}]

    results: list[dict[str, Any]] = []

    def step(i: int) -> None:
        item = items[i]
        out: dict[str, Any] = {}
        try:
            data = decode_input(item)
            context = _decode_context(item.get("context", ""))
            try:
                res = p.sign(data, version=version, context=context, **opts)
            except UserError as exc:
                # Vault's single sign returns SignWithOptions' error bare (no error
                # response), so these policy-level UserErrors surface as 500s.
                if batch_raw is None and exc.message.startswith(_SIGN_POLICY_ERRORS):
                    raise InternalError(exc.message) from None
                raise
        except (UserError, InternalError) as exc:
            if batch_raw is None:
                raise
            results.append({"error": exc.message, "key_version": 0,
                            "reference": item.get("reference", "")})
            return
        out["signature"] = res.signature
        out["key_version"] = res.key_version
        if res.public_key:
            out["public_key"] = res.public_key
        results.append(out)

    cost = item_cost(p.type, PRIVATE)
    if p.type.is_rsa and opts["hash_algorithm"] == "none":
        cost = _RAW_RSA_COST  # Python big-integer arithmetic, even for one item
    await run_items(step, len(items), cost, gil_free(p.type))

    if batch_raw is None:
        return Response(data=results[0])
    batch: list[dict[str, Any]] = []
    for item, out in zip(items, results, strict=True):
        if "error" in out:
            batch.append(out)
            continue
        entry: dict[str, Any] = {"signature": out["signature"], "key_version": out["key_version"]}
        if out.get("public_key"):
            entry["publickey"] = out["public_key"]  # sic: Vault's batch field name
        entry["reference"] = item.get("reference", "")
        batch.append(entry)
    return Response(data={"batch_results": batch})


def _verify_shape(items: list[dict[str, str]], batch: bool) -> str:
    """Vault's signature-vs-hmac checks; returns "signature" or "hmac"."""
    sig_found = hmac_found = missing = False
    for item in items:
        if "signature" in item:
            sig_found = True
        elif "hmac" in item:
            hmac_found = True
        else:
            missing = True
    if not batch and sig_found and hmac_found:
        raise UserError("provide one of 'signature' or 'hmac'")
    if not batch and not sig_found and not hmac_found:
        raise UserError("neither a 'signature' nor an 'hmac' were given to verify")
    if sig_found and hmac_found:
        raise UserError("elements of batch_input must all provide 'signature' or all provide 'hmac'")
    if missing and sig_found:
        raise UserError("some elements of batch_input are missing 'signature'")
    if missing and hmac_found:
        raise UserError("some elements of batch_input are missing 'hmac'")
    if missing:
        raise UserError("no batch_input elements have 'signature' or 'hmac'")
    return "hmac" if hmac_found else "signature"


async def verify(b: TransitPort, req: Request, d: FieldData) -> Response:
    batch_raw = d.raw.get("batch_input")
    if batch_raw is not None:
        items = decode_string_maps(batch_raw)
    else:
        single: dict[str, str] = {"input": d.get("input")}
        # Vault's single-mode shape: a field counts when sent, even as "" (hmac/signature
        # sent with both raises "provide one of ...").
        if "signature" in d.raw and d.raw["signature"] is not None:
            single["signature"] = d.get("signature")
        if "hmac" in d.raw and d.raw["hmac"] is not None:
            single["hmac"] = d.get("hmac")
        single["context"] = d.get("context")
        items = [single]

    if _verify_shape(items, batch_raw is not None) == "hmac":
        algorithm = d.get("urlalgorithm") or d.get("algorithm")
        return await verify_hmac_items(b, d.get("name"), algorithm, items, batch_raw is not None,
                                       forward=req.perf_standby)

    opts = _options(d)
    p = await b.policies.get_for(
        d.get("name"), (item.get("signature") for item in items), forward=req.perf_standby
    )
    if p is None:
        raise UserError("signature verification key not found")
    if not p.type.supports_signing:
        raise UserError(f"key type {p.type} does not support verification")
    _check_none(opts, d.get("signature_algorithm"))

    results: list[dict[str, Any]] = []

    def step(i: int) -> None:
        item = items[i]
        ref = item.get("reference", "")
        try:
            data = decode_input(item)
            if "signature" not in item:
                raise UserError("missing signature")
            context = _decode_context(item.get("context", ""))
            valid = p.verify(data, item["signature"], context=context, **opts)
        except (UserError, InternalError) as exc:
            if batch_raw is None:
                raise
            results.append({"valid": False, "error": exc.message, "reference": ref})
            return
        results.append({"valid": bool(valid), "reference": ref})

    await run_items(step, len(items), item_cost(p.type, PUBLIC), gil_free(p.type))

    if batch_raw is None:
        return Response(data={"valid": results[0]["valid"]})
    return Response(data={"batch_results": results})
