"""Vault's listener JSON limits, checked on the raw body before it is decoded.

`max_json_depth`, `max_json_string_value_length`, `max_json_object_entry_count` and
`max_json_array_element_count` (listener keys, Vault's defaults). The check is one pass of a
compiled regex over the bytes: it keeps a stack of per-container comma counts and never builds
the tree, so an oversized body is refused before orjson allocates anything for it.

Small bodies (the hot path: a single encrypt is ~100 bytes) skip the scan when two
`bytes.count` calls prove that no limit can be exceeded (see `JSONLimits.check`).

`JSONLimits.decode` is what the API calls: the same answers, cheaper for the bodies most
worth it (batches). A body that cannot hold too long a string (it is shorter than the limit)
nor too big a container (it has fewer commas than the entry limits) decodes to about its own
size, so it is decoded first (orjson: ~0.1 µs per batch item, where the scan costs ~1.6 µs)
and only its depth is checked afterwards, on the tree, when its bracket count allows it to be
too deep. A decode error still yields to a limit error: the body is then scanned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from transit.config.listener import (
    DEFAULT_MAX_JSON_ARRAY_ELEMENT_COUNT,
    DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_JSON_OBJECT_ENTRY_COUNT,
    DEFAULT_MAX_JSON_STRING_VALUE_LENGTH,
)
from transit.errors import UserError

# Vault's defaults (vault/http: CustomMaxJSON*; the listener reports max_json_depth 300).

# Vault's messages (sdk/helper/jsonutil VerifyMaxDepthStreaming)
DEPTH_ERROR = "JSON input exceeds allowed nesting depth"
STRING_ERROR = "JSON string value exceeds allowed length"
OBJECT_ERROR = "JSON object exceeds allowed entry count"
ARRAY_ERROR = "JSON array exceeds allowed element count"

# One token per match: a run of scalars, separators and plain short strings (no escape, comma
# or bracket inside, at most the string limit long), whose commas are all structural and
# counted with bytes.count, so `[1,2,…]` or `["a","b",…]` cost a few iterations, not one per
# element; an opening bracket; a closing bracket; or any other string (an unterminated one
# runs to the end), whose length is checked.
_PATTERN = (rb'((?:[^"\[\]{}]++|"[^"\\,\[\]{}]{0,%d}")++)|([\[{])|([\]}])'
            rb'|("[^"\\]*+(?:\\.[^"\\]*+)*+"?)')


@dataclass(frozen=True)
class JSONLimits:
    max_depth: int = DEFAULT_MAX_JSON_DEPTH
    max_string_value_length: int = DEFAULT_MAX_JSON_STRING_VALUE_LENGTH
    max_object_entry_count: int = DEFAULT_MAX_JSON_OBJECT_ENTRY_COUNT
    max_array_element_count: int = DEFAULT_MAX_JSON_ARRAY_ELEMENT_COUNT

    def __post_init__(self) -> None:
        # Below this size, valid JSON cannot hold a string longer than the limit (a string
        # needs its bytes), nor a container with more entries than the limit (each element
        # needs at least one byte and a comma, each object entry at least `"":0,`).
        object.__setattr__(self, "_token", re.compile(
            _PATTERN % self.max_string_value_length, re.S))
        object.__setattr__(self, "_small", min(
            self.max_string_value_length + 1,
            2 * self.max_array_element_count + 1,
            2 * self.max_object_entry_count + 1,
        ))
        # fewer commas than this in the whole body: no container can exceed its entry limit
        object.__setattr__(self, "_commas", min(self.max_array_element_count,
                                                self.max_object_entry_count))

    def decode(self, body: bytes) -> Any:
        """`orjson.loads(body)` for a body within the limits; UserError with Vault's message
        for the first limit it exceeds, before any decode error (orjson.JSONDecodeError)."""
        opening = body.count(b"[") + body.count(b"{")
        size = len(body)
        if size < self._small and opening <= self.max_depth:  # type: ignore[attr-defined]
            return orjson.loads(body)
        if (size > self.max_string_value_length
                or body.count(b",") >= self._commas):  # type: ignore[attr-defined]
            problem = self._scan(body)
            if problem is not None:
                raise UserError(problem)
            return orjson.loads(body)
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            problem = self._scan(body)
            if problem is not None:
                raise UserError(problem) from None
            raise
        if opening > self.max_depth and _too_deep(value, self.max_depth):
            raise UserError(DEPTH_ERROR)
        return value

    def check(self, body: bytes) -> str | None:
        """Vault's error message for the first limit `body` exceeds, or None.

        Malformed JSON passes unless a limit is exceeded first: the decoder reports it.
        """
        if (len(body) < self._small  # type: ignore[attr-defined]
                and body.count(b"[") + body.count(b"{") <= self.max_depth):
            return None  # the depth cannot exceed the number of opening brackets
        return self._scan(body)

    def _scan(self, body: bytes) -> str | None:
        max_depth = self.max_depth
        max_str = self.max_string_value_length + 2  # the quotes
        max_entries = self.max_object_entry_count
        max_elements = self.max_array_element_count
        # one entry per open container: [commas so far, limit on commas, message]
        stack: list[list] = []
        top: list | None = None
        for m in self._token.finditer(body):  # type: ignore[attr-defined]
            kind = m.lastindex
            if kind == 4:  # a string (object keys count too, as in Vault)
                if m.end() - m.start() > max_str:
                    return STRING_ERROR
            elif kind == 1:  # scalars, separators and short plain strings
                if top is not None:
                    top[0] += m.group().count(b",")
                    if top[0] >= top[1]:
                        return top[2]
            elif kind == 2:
                if len(stack) >= max_depth:
                    return DEPTH_ERROR
                if body[m.start()] == 0x7B:  # {
                    top = [0, max_entries, OBJECT_ERROR]
                else:
                    top = [0, max_elements, ARRAY_ERROR]
                stack.append(top)
            elif stack:  # a closing bracket (an unmatched one is the decoder's to report)
                stack.pop()
                top = stack[-1] if stack else None
        return None


def _too_deep(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` deep in a decoded value (level by level,
    each container visited once)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below = []
        for container in level:
            for v in container.values() if isinstance(container, dict) else container:
                if isinstance(v, dict | list):
                    below.append(v)
        level = below
    return False


DEFAULT_LIMITS = JSONLimits()
