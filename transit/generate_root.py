"""Root token generation with the unseal shares (operations-api §2), as Vault's
`vault/generate_root.go` does it.

Like a rekey attempt (`transit/rekey.py`), an attempt lives only in the memory of the active
node's worker 0, is dropped on seal and with a new term of activity, and never reaches
storage. It holds a nonce, the one-time pad (OTP) or the PGP key the new token is encrypted
for, and the shares submitted so far. At the threshold the shares must open the stored root
key and match the barrier's; then a root token is created (policies `["root"]`, no TTL,
orphan, `auth/token/root`) and returned encoded:

- OTP: `base64.RawStdEncoding(token XOR otp)` — the OTP has the token's length (28 for
  `hvs.` + 24 characters);
- PGP: `base64.StdEncoding(OpenPGP message encrypting the token)`.
"""

from __future__ import annotations

import base64
import logging
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from transit.crypto import openpgp
from transit.errors import InvalidKey
from transit.rekey import (
    MAC_FAILED,
    OperatorError,
    combine,
    go_uuid,
    read_pgp_key,
    same_root,
)
from transit.seal.manager import SealManager

log = logging.getLogger("transit.generate_root")

GENERATE_ROOT = "generate-root"
OTP_LENGTH = 28  # len("hvs." + 24 base62 characters): Vault >= 1.10 with SSC tokens
_BASE62 = string.ascii_letters + string.digits


@dataclass(slots=True)
class RootAttempt:
    nonce: str
    otp: str
    pgp_key: str
    fingerprint: str
    term: int
    progress: list[bytes] = field(default_factory=list)


def new_otp(length: int = OTP_LENGTH) -> str:
    """Vault's `base62.Random(length)`."""
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def encode_token(token: str, otp: str) -> str:
    """`sdk/helper/roottoken.EncodeToken`: unpadded base64 of the byte-wise XOR."""
    if len(token) != len(otp):
        raise ValueError("length of the token and the OTP differ")
    xored = bytes(a ^ b for a, b in zip(otp.encode(), token.encode(), strict=True))
    return base64.b64encode(xored).decode().rstrip("=")


def decode_token(encoded: str, otp: str) -> str:
    """The inverse of `encode_token` (what `vault operator generate-root -decode` does)."""
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()


async def _authenticate(seal: SealManager, kek: bytes) -> None:
    """The combined shares must open the stored root key and match the barrier's (Shamir),
    or be the recovery key (static seal)."""
    if seal.auto:
        if not await seal.check_recovery_key(kek):
            raise OperatorError(400, "root generation aborted: recovery key verification "
                                     "failed: invalid recovery key")
        return
    try:
        root, _ = await seal.open_root(kek)
    except InvalidKey:
        raise OperatorError(400, "root generation aborted: unable to authenticate: "
                                 f"{MAC_FAILED}") from None
    if not same_root(seal, root):
        await seal.barrier.reload_keyring()
        if not same_root(seal, root):
            raise OperatorError(400, "root generation aborted: root key verification failed: "
                                     "Unseal failed, invalid key")


def current(seal: SealManager, term: int) -> RootAttempt | None:
    """The attempt in progress, unless it was started in another term of activity."""
    attempt: RootAttempt | None = seal.attempt(GENERATE_ROOT, term)
    return attempt


def status(seal: SealManager, required: int, term: int, otp: str = "") -> dict[str, Any]:
    """The §2.1 status object (Go struct order)."""
    attempt = current(seal, term)
    return {
        "nonce": attempt.nonce if attempt else "", "started": attempt is not None,
        "progress": len(attempt.progress) if attempt else 0, "required": required,
        "complete": False, "encoded_token": "", "encoded_root_token": "",
        "pgp_fingerprint": attempt.fingerprint if attempt else "", "otp": otp,
        "otp_length": OTP_LENGTH,
    }


def check_start(otp: str, pgp_key: str) -> str:
    """Validate the start request before the seal checks (400s); the PGP fingerprint."""
    if otp:
        if len(otp) != OTP_LENGTH:
            raise OperatorError(400, "OTP string is wrong length")
        return ""
    if pgp_key:
        try:
            fingerprint = read_pgp_key(pgp_key, "given PGP key").fingerprint
        except openpgp.PGPError as exc:
            raise OperatorError(400, f"error parsing PGP key: {exc}") from None
        if not fingerprint:
            raise OperatorError(400, "could not acquire PGP key entity")
        return fingerprint
    raise OperatorError(400, "otp or pgp_key parameter must be provided")


def start(seal: SealManager, term: int, otp: str, pgp_key: str, fingerprint: str) -> None:
    if current(seal, term) is not None:
        raise OperatorError(400, "root generation already in progress")
    attempt = RootAttempt(go_uuid(), otp if otp else "", "" if otp else pgp_key, fingerprint,
                          term)
    seal.attempts[GENERATE_ROOT] = attempt
    log.info("root generation initialized: nonce=%s", attempt.nonce)


def cancel(seal: SealManager, term: int) -> None:
    current(seal, term)
    seal.attempts.pop(GENERATE_ROOT, None)


async def update(
    seal: SealManager, term: int, key: bytes, nonce: str,
    create_token: Callable[[], Awaitable[str]],
) -> dict[str, Any]:
    """Submit one share: the progress object, or the completion with the encoded token."""
    config = await seal.share_config()
    if config is None:
        raise OperatorError(400, "Vault is not initialized")
    attempt = current(seal, term)
    if attempt is None:
        raise OperatorError(400, "no root generation in progress")
    if nonce != attempt.nonce:
        raise OperatorError(400, "incorrect nonce supplied; nonce for this root generation "
                                 f'operation is "{attempt.nonce}"')
    if any(key == part for part in attempt.progress):
        raise OperatorError(400, "given key has already been provided during this generation "
                                 "operation")
    attempt.progress.append(bytes(key))
    progress, required = len(attempt.progress), config.secret_threshold
    out: dict[str, Any] = {
        "nonce": nonce, "started": True, "progress": progress, "required": required,
        "complete": False, "encoded_token": "", "encoded_root_token": "",
        "pgp_fingerprint": attempt.fingerprint, "otp": "", "otp_length": 0,
    }
    if progress < required:
        return out
    parts, attempt.progress = attempt.progress, []
    try:
        kek = combine(parts, required)
    except ValueError as exc:
        raise OperatorError(400, f"failed to compute root key: {exc}") from None
    await _authenticate(seal, kek)
    recipient = None
    if not attempt.otp:
        try:  # before the token exists: a key that cannot encrypt leaves no token behind
            recipient = read_pgp_key(attempt.pgp_key)
            recipient.encryption_key()
        except openpgp.PGPError as exc:
            raise OperatorError(400, str(exc)) from None
    token = await create_token()
    if recipient is None:
        encoded = encode_token(token, attempt.otp)
    else:
        encoded = base64.b64encode(openpgp.encrypt(recipient, token.encode())).decode()
    seal.attempts.pop(GENERATE_ROOT, None)
    out.update(complete=True, encoded_token=encoded, encoded_root_token=encoded)
    return out
