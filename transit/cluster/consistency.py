"""Vault's client-controlled consistency token, `X-Vault-Index` (spec ha-and-sys-api §3.3).

A response to a write carries

    X-Vault-Index: base64std("v1:<cluster_id>:<local_index>:<replicated_index>:<hmac>")

where `<hmac>` is the hex HMAC-SHA256, under a cluster-internal key, of everything before the
last ":". We have no performance replication, so `replicated_index` is always 0; `local_index`
is the Redis write index (`<p>/core/index`). A request may send the header back (possibly
several times): a standby answers it only once its `applied_index` reached the largest of them.

The HMAC key is 32 random bytes stored through the barrier at `core/index-hmac-key`
(`index_key`). The ACTIVE node creates it (e.g. in `become_active`); standbys (read-only
barrier) only ever read it — they never write storage. Callers should keep
the key in memory: the hot path must not read storage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable
from typing import Any

from transit.errors import StorageError, UserError
from transit.gocompat import is_digits
from transit.storage.update import get_or_create

INDEX_KEY_PATH = "core/index-hmac-key"
KEY_SIZE = 32
VERSION = "v1"
_BAD = "invalid X-Vault-Index header"


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def encode_index(cluster_id: str, index: int, key: bytes) -> str:
    """The `X-Vault-Index` value for write index `index` of cluster `cluster_id`."""
    if index < 0:
        raise ValueError("index must not be negative")
    if ":" in cluster_id:
        raise ValueError("cluster id must not contain ':'")
    message = f"{VERSION}:{cluster_id}:{index}:0"
    raw = f"{message}:{_mac(key, message)}"
    return base64.b64encode(raw.encode()).decode()


def _parse(value: str) -> tuple[str, int, str, str]:
    """-> (cluster_id, local index, signed message, hmac hex); UserError when malformed."""
    try:
        raw = base64.b64decode(value.strip(), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise UserError(_BAD) from None
    parts = raw.split(":")
    if len(parts) != 5 or parts[0] != VERSION or not parts[1]:
        raise UserError(_BAD)
    _, cluster_id, local, replicated, mac = parts
    if not (is_digits(local) and is_digits(replicated)) or len(mac) != 64:
        raise UserError(_BAD)
    return cluster_id, int(local), raw[: raw.rindex(":")], mac


def decode_index(value: str, cluster_id: str, key: bytes) -> int:
    """The local write index in `value`. UserError when it is malformed, forged (HMAC checked
    in constant time) or from another cluster."""
    their_cluster, index, message, mac = _parse(value)
    if not hmac.compare_digest(mac.lower(), _mac(key, message)):
        raise UserError(_BAD)
    if not hmac.compare_digest(their_cluster.encode(), cluster_id.encode()):
        raise UserError(_BAD)
    return index


def _values(header_values: Iterable[str]) -> list[str]:
    """Every value, also when a proxy merged repeated headers with commas."""
    out: list[str] = []
    for v in header_values:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def required_index(header_values: Iterable[str], cluster_id: str, key: bytes) -> int:
    """The index a request asks for: the max over its `X-Vault-Index` values for OUR cluster
    (0 when none). States of other clusters cannot be compared and are ignored; a malformed or
    forged value for our cluster raises UserError."""
    best = 0
    for value in _values(header_values):
        their_cluster, _index, _msg, _mac = _parse(value)
        if their_cluster != cluster_id:
            continue
        best = max(best, decode_index(value, cluster_id, key))
    return best


async def index_key(barrier: Any, *, writable: bool | None = None) -> bytes:
    """The HMAC key at `core/index-hmac-key`. Created (32 random bytes) when missing, but only
    when writable — by default `not barrier.read_only`, i.e. the active node. A standby (read-only
    barrier, or `writable=False`) never writes it: while the key has not reached its replica
    yet it gets StorageError (the caller forwards the request)."""
    if writable is None:
        writable = not getattr(barrier, "read_only", False)
    raw = await barrier.get(INDEX_KEY_PATH)
    if raw is None:
        if not writable:
            raise StorageError("the X-Vault-Index key is not available on this node yet")
        raw = await get_or_create(barrier, INDEX_KEY_PATH, lambda: os.urandom(KEY_SIZE))
    raw = bytes(raw)
    if len(raw) != KEY_SIZE:
        raise StorageError(f"{INDEX_KEY_PATH} is corrupt ({len(raw)} bytes)")
    return raw
