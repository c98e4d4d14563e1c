"""Stateless tools: `random[/:source][/:bytes]` and `hash[/:algorithm]` (spec §4.12-4.13).

The cores (`random_bytes_response`, `hash_response`) need no backend, so the sys engine's
`sys/tools/random` and `sys/tools/hash` reuse them with the same field schemas.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Mapping
from typing import Any

from transit.crypto.encoding import Base64Error, b64decode
from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType
from transit.gocompat import atoi
from transit.logical import Request, Response

RANDOM_MAX_BYTES = 128 * 1024  # Vault's APIMaxBytes

RANDOM_FIELDS: dict[str, Field] = {
    "urlbytes": Field(FieldType.STRING, "", "The number of bytes to generate (URL parameter)"),
    "source": Field(FieldType.STRING, "platform", "platform, seal or all"),
    "bytes": Field(FieldType.INT, 32, "The number of bytes to generate"),
    "format": Field(FieldType.STRING, "base64", 'Encoding format: "hex" or "base64"'),
}

HASH_FIELDS: dict[str, Field] = {
    "input": Field(FieldType.STRING, "", "The base64-encoded input data"),
    "algorithm": Field(FieldType.STRING, "sha2-256", "Hash algorithm"),
    "urlalgorithm": Field(FieldType.STRING, "", "Hash algorithm (URL parameter)"),
    "format": Field(FieldType.STRING, "hex", 'Encoding format: "hex" or "base64"'),
}

_SOURCES = ("platform", "seal", "all")

# The /hash endpoint's own table: Vault's path_hash.go knows no sha1 here.
HASH_FUNCS: dict[str, Callable[[bytes], Any]] = {
    "sha2-224": hashlib.sha224,
    "sha2-256": hashlib.sha256,
    "sha2-384": hashlib.sha384,
    "sha2-512": hashlib.sha512,
    "sha3-224": hashlib.sha3_224,
    "sha3-256": hashlib.sha3_256,
    "sha3-384": hashlib.sha3_384,
    "sha3-512": hashlib.sha3_512,
}


# --- random ------------------------------------------------------------------------------


def random_bytes_response(d: FieldData, params: Mapping[str, str] | None = None) -> Response:
    """Vault's random.HandleRandomAPI over an already validated FieldData.

    `params` are the URL captures (`source`, `urlbytes`). One segment is the source when
    it names one, otherwise the byte count; two segments are source then count. A body
    `source` is honoured only when the URL names none (Vault would ignore it).
    """
    params = params or {}
    url_source = params.get("source") or ""
    url_bytes = params.get("urlbytes") or ""
    source = "platform"
    try:
        if not url_source:
            # (with a URL source the framework has put it in place of the body's)
            source = d.get("source") or "platform"
            count = d.get("bytes")
        elif not url_bytes and url_source in _SOURCES:
            source = url_source
            count = d.get("bytes")
        elif not url_bytes:
            count = atoi(url_source)
        else:
            source = url_source
            count = atoi(url_bytes)
    except ValueError as exc:
        raise UserError(f"error parsing url-set byte count: {exc}") from None
    fmt = d.get("format")

    if count < 1:
        raise UserError('"bytes" cannot be less than 1')
    if count > RANDOM_MAX_BYTES:
        raise UserError(f'"bytes" should be less than {RANDOM_MAX_BYTES}')
    if fmt not in ("hex", "base64"):
        raise UserError(f'unsupported encoding format "{fmt}"; must be "hex" or "base64"')

    resp = Response()
    if source in ("platform", "all"):
        # "all" XORs seal entropy into platform entropy; without a seal source both are
        # the OS CSPRNG, so the result is simply random bytes.
        raw = os.urandom(count)
    elif source == "seal":
        raw = os.urandom(count)
        resp.add_warning("no seal/entropy augmentation available, using platform entropy source")
    else:
        raise UserError(
            f'unsupported entropy source "{source}"; must be "platform" or "seal", or "all"'
        )
    out = raw.hex() if fmt == "hex" else base64.b64encode(raw).decode()
    resp.data = {"random_bytes": out}
    return resp


# --- hash --------------------------------------------------------------------------------


def hash_response(d: FieldData) -> Response:
    """Vault's path_hash.go over an already validated FieldData."""
    if not d.present("input"):
        raise UserError("input missing")
    fmt = d.get("format")
    algorithm = d.get("urlalgorithm") or d.get("algorithm")
    try:
        data = b64decode(d.get("input"))
    except Base64Error as exc:
        raise UserError(f"unable to decode input as base64: {exc}") from None
    if fmt not in ("hex", "base64"):
        raise UserError(f'unsupported encoding format {fmt}; must be "hex" or "base64"')
    func = HASH_FUNCS.get(algorithm)
    if func is None:
        raise UserError(f"unsupported algorithm {algorithm}")
    digest = func(data).digest()
    out = digest.hex() if fmt == "hex" else base64.b64encode(digest).decode()
    return Response(data={"sum": out})


# --- handlers ----------------------------------------------------------------------------


async def random(b: object, req: Request, d: FieldData) -> Response:
    return random_bytes_response(d, req.params)


async def hash(b: object, req: Request, d: FieldData) -> Response:
    return hash_response(d)
