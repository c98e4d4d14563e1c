"""`sys/rekey/{init,update,verify}` (operations-api §1): Vault's raw handlers, run on the
process that holds the attempt (`transit/engines/system/operator.py` routes them there).

Each is ``async def handler(core, method, query, body) -> (status, body bytes)``, like the
status endpoints: bare JSON, errors raised (`OperatorError` carries Vault's status).
"""

from __future__ import annotations

from typing import Any

import orjson

from transit import rekey as rekeys
from transit.engines.system.ports import NodeControl
from transit.engines.system.rawjson import (
    bool_field,
    decode_share,
    fields,
    int_field,
    str_field,
    strings_field,
)
from transit.errors import Sealed
from transit.rekey import OperatorError

NOT_ALLOWED = (405, b'{"errors":[]}')
KEY_REQUIRED = "'key' must be specified in request body as JSON"


def inner_seal(core: NodeControl) -> Any:
    """The node's SealManager (a worker's `core.seal` wraps it)."""
    return getattr(core.seal, "inner", core.seal)


def term(core: NodeControl) -> int:
    """This node's term of activity (HA epoch; 0 without HA): attempts do not outlive it."""
    ha = getattr(core, "ha", None)
    return int(getattr(ha, "epoch", 0) or 0) if ha is not None else 0


def ready(core: NodeControl) -> None:
    """Vault's checks before touching an attempt: sealed 503, standby 400."""
    if core.sealed:
        raise Sealed()
    if getattr(core, "standby", False):
        raise OperatorError(400, "Vault is in standby mode")


async def _required(core: NodeControl) -> int:
    config = await inner_seal(core).config()
    if config is None:
        raise OperatorError(400, "server is not yet initialized")
    return int(config.secret_threshold)


async def after_rekey(core: NodeControl) -> None:
    """A rekey was applied here: the node's other worker processes follow it now (the
    invalidation feed would tell them too, a little later)."""
    relay = getattr(core, "relay", None)
    if relay is not None:
        await relay("rekeyed", {})


async def init_status(core: NodeControl) -> tuple[int, bytes]:
    required = await _required(core)
    ready(core)
    if core.seal.auto:
        raise OperatorError(400, "rekeying is supported with the Shamir seal only; this node "
                                 "uses a static seal")
    return 200, orjson.dumps(rekeys.status(inner_seal(core), required, term(core)))


async def init(core: NodeControl, method: str, query: dict[str, str], body: dict[str, Any]
               ) -> tuple[int, bytes]:
    """GET: status. PUT/POST: start an attempt. DELETE: cancel it (204)."""
    if method in ("GET", "HEAD"):
        return await init_status(core)
    seal = inner_seal(core)
    if method == "DELETE":
        ready(core)
        nonce = query.get("nonce") or body.get("nonce")
        rekeys.cancel(seal, term(core), nonce if isinstance(nonce, str) and nonce else None)
        return 204, b""
    if method not in ("PUT", "POST"):
        return NOT_ALLOWED
    f, s = fields(body), "RekeyRequest"
    shares, threshold = int_field(f, "secret_shares", s), int_field(f, "secret_threshold", s)
    pgp_keys = strings_field(f, "pgp_keys", s)
    backup = bool_field(f, "backup", s)
    verify = bool_field(f, "require_verification", s)
    int_field(f, "stored_shares", s)  # accepted; always 1 with a Shamir seal (as Vault)
    if backup and not pgp_keys:
        raise OperatorError(400, "cannot request a backup of the new keys without providing "
                                 "PGP keys for encryption")
    if pgp_keys and len(pgp_keys) != shares:
        raise OperatorError(400, "incorrect number of PGP keys for rekey")
    if threshold > shares:
        raise OperatorError(400, "provided threshold greater than the total shares")
    fingerprints = rekeys.validate_start(shares, threshold, pgp_keys)
    ready(core)
    if core.seal.auto:
        raise OperatorError(400, "rekeying is supported with the Shamir seal only; this node "
                                 "uses a static seal")
    async with seal.attempts_lock:
        rekeys.start(seal, term(core), shares, threshold, pgp_keys, fingerprints, backup, verify)
    return await init_status(core)


def _key(body: dict[str, Any], struct: str, prefix: str = "") -> tuple[bytes, str]:
    f = fields(body)
    text, nonce = str_field(f, "key", struct), str_field(f, "nonce", struct)
    if not text:
        raise OperatorError(400, KEY_REQUIRED)
    key = decode_share(text)
    rekeys.check_length(key, prefix)
    return key, nonce


async def update(core: NodeControl, method: str, query: dict[str, str], body: dict[str, Any]
                 ) -> tuple[int, bytes]:
    """Submit a current share (any verb, as Vault)."""
    key, nonce = _key(body, "RekeyUpdateRequest")
    ready(core)
    seal = inner_seal(core)
    async with seal.attempts_lock:
        result = await rekeys.update(seal, term(core), key, nonce)
    if result is None:
        return await init_status(core)
    if not result.get("verification_required"):
        await after_rekey(core)
    return 200, orjson.dumps(result)


async def _verify_status(core: NodeControl) -> tuple[int, bytes]:
    await _required(core)
    ready(core)
    return 200, orjson.dumps(rekeys.verify_status(inner_seal(core), term(core)))


async def verify(core: NodeControl, method: str, query: dict[str, str], body: dict[str, Any]
                 ) -> tuple[int, bytes]:
    """GET: verification status. PUT/POST: submit a NEW share. DELETE: restart (200)."""
    if method in ("GET", "HEAD"):
        return await _verify_status(core)
    seal = inner_seal(core)
    if method == "DELETE":
        ready(core)
        async with seal.attempts_lock:
            rekeys.verify_restart(seal, term(core))
        return await _verify_status(core)
    if method not in ("PUT", "POST"):
        return NOT_ALLOWED
    key, nonce = _key(body, "RekeyVerificationUpdateRequest")
    ready(core)
    async with seal.attempts_lock:
        result = await rekeys.verify(seal, term(core), key, nonce)
    if result is None:
        return await _verify_status(core)
    await after_rekey(core)
    return 200, orjson.dumps(result)


async def recovery(core: NodeControl, method: str, query: dict[str, str], body: dict[str, Any]
                   ) -> tuple[int, bytes]:
    """`sys/rekey-recovery-key/*`: there is no recovery key to rekey (OpenBao's answer with a
    Shamir seal; a static seal's recovery key cannot be rekeyed here either)."""
    raise OperatorError(400, "recovery rekeying not supported")
