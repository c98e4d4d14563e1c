"""HCL text -> plain Python data, without python-hcl2's artifacts.

Layer L0: stdlib and hcl2 only. Shared by the server config (`transit.config`) and ACL
policies (`transit.acl.policy`), which wrap `HCLError` in their own error texts.

hcl2 >= 7 is asked for plain strings and no block markers; older versions keep the quotes
around strings (stripped here, resolving escapes, which are JSON's) and mark blocks with
`__is_block__`-style keys (dropped here).
"""

from __future__ import annotations

import json
from typing import Any

import hcl2


class HCLError(ValueError):
    """The text is not valid HCL; the message is the first line of the parser's error."""


def _options() -> Any:
    options_cls = getattr(hcl2, "SerializationOptions", None)
    if options_cls is None:
        return None
    try:
        return options_cls(
            with_comments=False,
            explicit_blocks=False,
            strip_string_quotes=True,
            preserve_heredocs=False,
        )
    except TypeError:
        return None


_OPTIONS = _options()


def _clean(value: Any, unquote: bool) -> Any:
    if isinstance(value, dict):
        return {
            _clean(k, unquote): _clean(v, unquote)
            for k, v in value.items()
            if not (isinstance(k, str) and k.startswith("__") and k.endswith("__"))
        }
    if isinstance(value, list):
        return [_clean(v, unquote) for v in value]
    if unquote and isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def loads(text: str) -> Any:
    """Parse HCL text; raises `HCLError`, never one of the parser's own exception types."""
    opts = _OPTIONS
    try:
        data = hcl2.loads(text, **({} if opts is None else {"serialization_options": opts}))
    except Exception as exc:  # lark raises many unrelated types; none should escape
        lines = str(exc).strip().splitlines()
        raise HCLError(lines[0].strip("\"'") if lines else type(exc).__name__) from None
    # With options, quotes are already gone and escapes resolved.
    return _clean(data, unquote=opts is None)
