"""The static seal's key from the server configuration (`seal "static" { current_key }`).

`current_key` is `file:///path` (32 raw bytes, or hex or base64 text), `env://NAME` (hex or
base64 text) or the key text itself; the server hands the key to `SealManager` at start.
Configuration parsing only: no storage, no barrier.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

from transit.barrier import KEY_SIZE
from transit.config import SealStanza, seal_stanza
from transit.errors import ConfigError


def decode_key_text(text: str) -> bytes:
    """A 32-byte key from hex (64 chars) or standard/URL-safe base64 text."""
    text = text.strip()
    if len(text) == 2 * KEY_SIZE:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("static seal key: expected 32 bytes as hex or base64") from None
    if len(key) != KEY_SIZE:
        raise ConfigError(f"static seal key must be {KEY_SIZE} bytes, got {len(key)}")
    return key


def load_static_key(value: str, env: Mapping[str, str] | None = None) -> bytes:
    """Resolve a `current_key` value: `file://PATH`, `env://NAME`, or the key text."""
    env = os.environ if env is None else env
    if value.startswith("file://"):
        path = value[len("file://") :]
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ConfigError(f"static seal key file {path}: {exc.strerror or exc}") from None
        if len(data) == KEY_SIZE:
            return data
        try:
            return decode_key_text(data.decode("ascii"))
        except UnicodeDecodeError:
            raise ConfigError(
                f"static seal key file {path}: expected 32 raw bytes, or hex or base64 text"
            ) from None
    if value.startswith("env://"):
        name = value[len("env://") :]
        text = env.get(name)
        if not text:
            raise ConfigError(f"static seal key: environment variable {name} is not set")
        return decode_key_text(text)
    return decode_key_text(value)


def static_key(seal: SealStanza | None, env: Mapping[str, str] | None = None) -> bytes | None:
    """The static seal key of a config's `seal` stanza (`ServerConfig.seal`), or None for
    Shamir (no stanza, or `seal "shamir"`). Other seal types are a ConfigError."""
    if seal is None:
        return None
    kind, body = seal.type, seal.options
    if kind == "shamir":
        return None
    if kind != "static":
        raise ConfigError(f'unsupported seal type "{kind}" (only "static"; omit it for Shamir)')
    if body.get("previous_key"):
        raise ConfigError('seal "static": previous_key (seal key rotation) is not supported')
    value = body.get("current_key")
    if not isinstance(value, str) or not value:
        raise ConfigError('seal "static": current_key is required')
    return load_static_key(value, env)


def static_key_from_config(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> bytes | None:
    """The static seal key from a parsed config's raw dict (`ServerConfig.raw`), or None
    when there is no `seal` stanza (Shamir). Other seal types are a ConfigError."""
    return static_key(seal_stanza(raw), env)
