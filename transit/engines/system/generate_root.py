"""`sys/generate-root/{attempt,update}` (operations-api §2): Vault's raw handlers, run on the
process that holds the attempt (`transit/engines/system/operator.py` routes them there)."""

from __future__ import annotations

from typing import Any

import orjson

from transit import generate_root as roots
from transit.engines.system.ports import NodeControl
from transit.engines.system.rawjson import decode_share, fields, str_field
from transit.engines.system.rekey import (
    KEY_REQUIRED,
    NOT_ALLOWED,
    inner_seal,
    ready,
    term,
)
from transit.rekey import OperatorError, check_length


async def _status(core: NodeControl, otp: str = "") -> tuple[int, bytes]:
    config = await inner_seal(core).share_config()
    if config is None:
        raise OperatorError(400, "server is not yet initialized")
    ready(core)
    return 200, orjson.dumps(roots.status(inner_seal(core), config.secret_threshold,
                                          term(core), otp))


async def attempt(core: NodeControl, method: str, query: dict[str, str], body: dict[str, Any]
                  ) -> tuple[int, bytes]:
    """GET: status. PUT/POST: start (with `otp`, `pgp_key`, or neither: a generated OTP is
    returned once). DELETE: cancel (204)."""
    if method in ("GET", "HEAD"):
        return await _status(core)
    seal = inner_seal(core)
    if method == "DELETE":
        ready(core)
        roots.cancel(seal, term(core))
        return 204, b""
    if method not in ("PUT", "POST"):
        return NOT_ALLOWED
    f, s = fields(body), "GenerateRootInitRequest"
    otp, pgp_key = str_field(f, "otp", s), str_field(f, "pgp_key", s)
    generated = not otp and not pgp_key
    if generated:
        otp = roots.new_otp()
    fingerprint = roots.check_start(otp, pgp_key)
    ready(core)
    async with seal.attempts_lock:
        roots.start(seal, term(core), otp, pgp_key, fingerprint)
    return await _status(core, otp if generated else "")


async def update(core: NodeControl, method: str, query: dict[str, str], body: dict[str, Any]
                 ) -> tuple[int, bytes]:
    """Submit a share (any verb, as Vault); at the threshold, the new root token, encoded."""
    f, s = fields(body), "GenerateRootUpdateRequest"
    text, nonce = str_field(f, "key", s), str_field(f, "nonce", s)
    if not text:
        raise OperatorError(400, KEY_REQUIRED)
    key = decode_share(text)
    check_length(key, "invalid key: ")
    ready(core)
    seal = inner_seal(core)

    async def create_token() -> str:
        entry = await core.tokens.create_root()
        return str(entry.id)

    async with seal.attempts_lock:
        result = await roots.update(seal, term(core), key, nonce, create_token)
    return 200, orjson.dumps(result)
