"""HMAC of audit values with a device's salt (spec ha-and-sys-api §4.11).

A hashed value is `"hmac-sha256:" + hex(HMAC_SHA256(key=salt_utf8, msg=value))`, Vault's
`salt.GetIdentifiedHMAC`. In request/response data every string is hashed, at any depth (in
dicts and lists); numbers, booleans and null are not; dict keys never are. A string is left
clear when its nearest enclosing dict key is exempt (`audit_non_hmac_*_keys`), like Vault's
hash walker. `log_raw` turns hashing off for entries (not for `sys/audit-hash`).
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import re
from typing import Any

PREFIX = "hmac-sha256:"
EMPTY: frozenset[str] = frozenset()
_CACHE_MAX = 4096  # token / accessor hashes kept per device
# Data within both budgets hashes in well under a millisecond (about 1.5 µs per string plus
# 2 ns per byte): it is hashed right on the event loop. Anything larger goes to a thread.
SMALL_VALUES = 512
SMALL_BYTES = 256 * 1024
SCRUB_MIN = 4  # shorter request values are left in error messages (they would match anywhere)


def identified_hmac(salt: str | bytes, value: str | bytes) -> str:
    """`hmac-sha256:<hex>` of `value` keyed by `salt` (both UTF-8 when str)."""
    key = salt.encode() if isinstance(salt, str) else salt
    msg = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return PREFIX + _hmac.digest(key, msg, "sha256").hex()


class Hasher:
    """One device's view of hashing: its salt plus the `log_raw` / `hmac_accessor` options."""

    __slots__ = ("_inner", "_outer", "raw", "hmac_accessor", "_cache")

    def __init__(self, salt: str, *, log_raw: bool = False, hmac_accessor: bool = True) -> None:
        # RFC 2104 with the keyed inner/outer states computed once (copying them is ~4x
        # faster than a one-shot hmac.digest, which re-derives them for every value).
        key = salt.encode()
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self.raw = log_raw
        self.hmac_accessor = hmac_accessor
        self._cache: dict[str, str] = {}

    def hash(self, value: str | bytes) -> str:
        """Always the HMAC (this is what `sys/audit-hash` answers, whatever `log_raw` says)."""
        msg = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return PREFIX + outer.hexdigest()

    def token(self, value: str) -> str:
        """A client token, wrap token or (via `accessor`) an accessor; "" stays "". Cached:
        the same token is hashed in the auth and request blocks of both entries."""
        if not value or self.raw:
            return value
        cache = self._cache
        hashed = cache.get(value)
        if hashed is None:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            hashed = cache[value] = self.hash(value)
        return hashed

    def accessor(self, value: str) -> str:
        return self.token(value) if self.hmac_accessor else value

    def scrub(self, message: str, data: Any, exempt: frozenset[str] = EMPTY) -> str:
        """`message` (an error) with every request string value of at least `SCRUB_MIN`
        characters that it quotes replaced by that value's hash, as the value itself is in
        the entry: an error such as Go's `error converting input map[pw:hunter2]` must not
        put the request's secrets in the log in clear. Vault logs the error as it is."""
        if self.raw or not message:
            return message
        values: set[str] = set()
        budget = [SMALL_VALUES]

        def collect(value: Any, key: str) -> None:
            budget[0] -= 1
            if budget[0] < 0:
                return
            if isinstance(value, str):
                if len(value) >= SCRUB_MIN and key not in exempt and value in message:
                    values.add(value)
            elif isinstance(value, dict):
                for k, v in value.items():
                    collect(v, str(k))
            elif isinstance(value, list | tuple):
                for v in value:
                    collect(v, key)

        collect(data, "")
        if not values:
            return message
        # one pass, longest first, so that a hash put in is never matched again
        pattern = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
        return re.sub(pattern, lambda m: self.hash(m.group(0)), message)

    def data(self, data: dict[str, Any] | None, exempt: frozenset[str] = EMPTY) -> Any:
        """A hashed copy of request/response data (the input is never modified)."""
        if data is None:
            return None
        if self.raw:
            return data
        return {k: self._walk(v, k, exempt) for k, v in data.items()}

    def _walk(self, value: Any, key: str, exempt: frozenset[str]) -> Any:
        t = type(value)
        if t is str:
            return value if key in exempt else self.hash(value)
        if t is int or t is float or t is bool or value is None:
            return value
        if isinstance(value, dict):
            return {k: self._walk(v, k, exempt) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v, key, exempt) for v in value]
        if isinstance(value, str | int | float):  # subclasses (StrEnum, IntEnum ...)
            if isinstance(value, str):
                return value if key in exempt else self.hash(str(value))
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).decode("latin-1") if key in exempt else self.hash(bytes(value))
        # Anything else would be rendered by str() in the response: never log it in clear.
        return str(value) if key in exempt else self.hash(str(value))


def small(data: Any, values: int = SMALL_VALUES, size: int = SMALL_BYTES) -> bool:
    """Whether `data` holds at most `values` values (containers and scalars, at any depth)
    and `size` bytes of strings: cheap to hash. Stops counting as soon as either is over."""
    stack = [data]
    while stack:
        value = stack.pop()
        values -= 1
        if values < 0:
            return False
        if isinstance(value, str | bytes | bytearray):
            size -= len(value)
            if size < 0:
                return False
        elif isinstance(value, dict):
            if len(value) > values:
                return False
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            if len(value) > values:
                return False
            stack.extend(value)
    return True


def elide_list_data(data: dict[str, Any]) -> dict[str, Any]:
    """`elide_list_responses`: `keys` (a list) and `key_info` (a map) become their sizes."""
    out = dict(data)
    keys = out.get("keys")
    if isinstance(keys, list):
        out["keys"] = len(keys)
    info = out.get("key_info")
    if isinstance(info, dict):
        out["key_info"] = len(info)
    return out
