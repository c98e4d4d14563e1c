"""Rekey: new unseal-key shares for a Shamir seal (operations-api §1), as Vault's
`vault/rekey.go` does it.

An attempt lives in the memory of one process: the active node's worker 0 (the HTTP layer,
`transit/api/operator.py`, sends every step there; standbys forward to the active node). It
holds the new configuration, a nonce, the current shares submitted so far and, with
`require_verification`, the new unseal key until the new shares are verified. Nothing of it
is ever written to storage; sealing (`SealManager.seal`) or a new term of activity (an HA
epoch other than the one it started in) drops it, as losing leadership does in Vault.

Once `required` current shares are in, they are combined and must open the stored root key
(`SealManager.open_root`); then a new 32-byte unseal key is made and split into the new
shares (with PGP keys, each share's hex text is encrypted to its key; with `backup`, those
messages are also stored, outside the barrier, at `core/unseal-keys-backup`), and — now, or
after verification — the seal is rekeyed (`SealManager.rekey`: new root key, keyring
re-encrypted, new seal config; one guarded, durable commit).

Errors are `OperatorError(status, message)` with Vault's status and text; the HTTP layer
renders them as `{"errors": [message]}`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from transit.crypto import openpgp, shamir
from transit.errors import (
    InvalidKey,
    OutcomeUnknown,
    ReplicationUnconfirmed,
    TransitError,
)
from transit.seal.manager import MAX_SHARE_SIZE, MIN_KEY_SIZE, SealManager
from transit.seal.stored import SealConfig, validate

log = logging.getLogger("transit.rekey")

BACKUP_PATH = "core/unseal-keys-backup"  # physical, outside the barrier (PGP messages only)
REKEY = "rekey"
MAC_FAILED = "failed to decrypt keys from storage: cipher: message authentication failed"


class OperatorError(TransitError):
    """A rekey or root-generation error with Vault's HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.args = (status, message)  # so it pickles (sent between worker processes)


def go_uuid() -> str:
    """hashicorp/go-uuid: 16 random bytes as 8-4-4-4-12 hex (no version bits)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def check_length(key: bytes, prefix: str = "") -> None:
    """Vault's share-length bounds (400)."""
    if len(key) < MIN_KEY_SIZE:
        raise OperatorError(400, f"{prefix}key is shorter than minimum {MIN_KEY_SIZE} bytes")
    if len(key) > MAX_SHARE_SIZE:
        raise OperatorError(400, f"{prefix}key is longer than maximum {MAX_SHARE_SIZE} bytes")


def read_pgp_key(text: str, what: str = "given PGP key") -> openpgp.PublicKey:
    """A base64 binary OpenPGP public key; `PGPError` with Vault's wording."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(text) if not (c.isascii() and (c.isalnum() or c
                                                                             in "+/="))),
                   len(text))
        raise openpgp.PGPError(
            f"error decoding {what}: illegal base64 data at input byte {bad}") from None
    try:
        return openpgp.read_public_key(data)
    except openpgp.PGPError as exc:
        raise openpgp.PGPError(f"error parsing {what}: {exc}") from None


def encrypt_to(keys: list[openpgp.PublicKey], messages: list[bytes]) -> list[bytes]:
    """Vault's `pgpkeys.EncryptShares`: message i encrypted to key i."""
    return [openpgp.encrypt(k, m) for k, m in zip(keys, messages, strict=True)]


def combine(parts: list[bytes], threshold: int) -> bytes:
    """The key `threshold` shares make (ValueError from Shamir on a malformed set)."""
    return parts[0] if threshold == 1 else shamir.combine(parts)


def same_root(seal: SealManager, root: bytes) -> bool:
    current = seal.barrier.root_key_copy()  # the root key this process holds (None: sealed)
    return current is not None and hmac.compare_digest(current, root)


@dataclass(slots=True)
class RekeyAttempt:
    nonce: str
    shares: int
    threshold: int
    pgp_keys: tuple[str, ...]
    fingerprints: list[str] | None
    backup: bool
    verification_required: bool
    term: int
    progress: list[bytes] = field(default_factory=list)
    verification_nonce: str = ""
    verification_key: bytes = b""  # the new unseal key, while verification is pending
    verification_progress: list[bytes] = field(default_factory=list)
    expect: str = ""  # version of the wrapped root key the current shares opened

    def config(self) -> SealConfig:
        return SealConfig("shamir", self.shares, self.threshold, 1, self.pgp_keys, self.nonce,
                          self.backup)


def current(seal: SealManager, term: int) -> RekeyAttempt | None:
    """The attempt in progress, unless it was started in another term of activity."""
    attempt: RekeyAttempt | None = seal.attempt(REKEY, term)
    return attempt


def status(seal: SealManager, required: int, term: int) -> dict[str, Any]:
    """The §1.1 status object (Go struct order)."""
    attempt = current(seal, term)
    out: dict[str, Any] = {
        "nonce": "", "started": False, "t": 0, "n": 0, "progress": 0, "required": required,
        "pgp_fingerprints": None, "backup": False, "verification_required": False,
    }
    if attempt is not None:
        out.update(nonce=attempt.nonce, started=True, t=attempt.threshold, n=attempt.shares,
                   progress=len(attempt.progress),
                   verification_required=attempt.verification_required)
        if attempt.fingerprints:
            out["pgp_fingerprints"] = list(attempt.fingerprints)
            out["backup"] = attempt.backup
        if attempt.verification_nonce:
            out["verification_nonce"] = attempt.verification_nonce
    return out


def validate_start(shares: int, threshold: int, pgp_keys: list[str]) -> list[str] | None:
    """Vault's `SealConfig.Validate` for a rekey (500): the PGP keys' fingerprints."""
    problem = validate(shares, threshold)
    if problem is not None:
        raise OperatorError(500, f"invalid rekey seal configuration: {problem}")
    if not pgp_keys:
        return None
    try:
        return [read_pgp_key(k).fingerprint for k in pgp_keys]
    except openpgp.PGPError as exc:
        raise OperatorError(500, f"invalid rekey seal configuration: {exc}") from None


def start(seal: SealManager, term: int, shares: int, threshold: int, pgp_keys: list[str],
          fingerprints: list[str] | None, backup: bool, verify: bool) -> RekeyAttempt:
    if current(seal, term) is not None:
        raise OperatorError(400, "rekey already in progress")
    attempt = RekeyAttempt(go_uuid(), shares, threshold, tuple(pgp_keys), fingerprints, backup,
                           verify, term)
    seal.attempts[REKEY] = attempt
    log.info("rekey initialized: nonce=%s shares=%d threshold=%d verification_required=%s",
             attempt.nonce, shares, threshold, verify)
    return attempt


def cancel(seal: SealManager, term: int, nonce: str | None) -> None:
    attempt = current(seal, term)
    if attempt is not None and nonce is not None and nonce != attempt.nonce:
        raise OperatorError(400, "invalid request")
    seal.attempts.pop(REKEY, None)


async def update(seal: SealManager, term: int, key: bytes, nonce: str) -> dict[str, Any] | None:
    """Submit one current share. None below the threshold; the completion object (§1.4)
    once the new shares exist."""
    config = await seal.config()
    if config is None:
        raise OperatorError(400, "Vault is not initialized")
    attempt = current(seal, term)
    if attempt is None:
        raise OperatorError(400, "no barrier rekey in progress")
    if attempt.verification_key:
        raise OperatorError(400, "rekey operation already finished; verification must be "
                                 "performed; nonce for the verification operation is "
                                 f'"{attempt.verification_nonce}"')
    if nonce != attempt.nonce:
        raise OperatorError(
            400, f'incorrect nonce supplied; nonce for this rekey operation is "{attempt.nonce}"')
    if any(hmac.compare_digest(key, part) for part in attempt.progress):
        raise OperatorError(400, "given key has already been provided during this generation "
                                 "operation")
    attempt.progress.append(bytes(key))
    if len(attempt.progress) < config.secret_threshold:
        return None
    parts, attempt.progress = attempt.progress, []
    try:
        kek = combine(parts, config.secret_threshold)
    except ValueError as exc:
        raise OperatorError(500, f"failed to compute root key: {exc}") from None
    try:
        root, attempt.expect = await seal.open_root(kek)
    except InvalidKey:
        raise OperatorError(500, f"failed to read root key: {MAC_FAILED}") from None
    if not same_root(seal, root):
        await seal.barrier.reload_keyring()  # another process may have rekeyed: follow it
        if not same_root(seal, root):
            raise OperatorError(400, "rootter key verification failed: Unseal failed, "
                                     "invalid key")
    new_kek = os.urandom(32)
    shares = [new_kek] if attempt.shares == 1 else shamir.split(
        new_kek, attempt.shares, attempt.threshold)
    out: dict[str, Any] = {"nonce": nonce, "complete": True}
    if attempt.pgp_keys:
        try:
            keys = [read_pgp_key(k) for k in attempt.pgp_keys]
            shares = encrypt_to(keys, [s.hex().encode() for s in shares])
        except openpgp.PGPError as exc:
            raise OperatorError(500, f"failed to encrypt shares: {exc}") from None
        if attempt.backup:
            await _store_backup(seal, attempt, shares)
    out.update(keys=[s.hex() for s in shares],
               keys_base64=[base64.b64encode(s).decode() for s in shares],
               pgp_fingerprints=list(attempt.fingerprints) if attempt.fingerprints else None,
               backup=attempt.backup, verification_required=attempt.verification_required)
    if attempt.verification_required:
        attempt.verification_nonce = go_uuid()
        attempt.verification_key = new_kek
        out["verification_nonce"] = attempt.verification_nonce
        return out
    await _apply(seal, attempt, new_kek, "failed to perform barrier rekey")
    seal.attempts.pop(REKEY, None)
    return out


async def _store_backup(seal: SealManager, attempt: RekeyAttempt, shares: list[bytes]) -> None:
    keys: dict[str, list[str]] = {}
    for fpr, share in zip(attempt.fingerprints or [], shares, strict=True):
        keys.setdefault(fpr, []).append(share.hex())
    try:
        await seal.physical.put(BACKUP_PATH, orjson.dumps({"Nonce": attempt.nonce,
                                                           "Keys": keys}))
    except TransitError as exc:
        raise OperatorError(500, f"failed to save unseal key backup: {exc.message}") from None


async def _apply(seal: SealManager, attempt: RekeyAttempt, new_kek: bytes, what: str) -> None:
    """Rekey the seal. A commit whose outcome is unknown is looked at again: the new shares
    are handed out only if they open the stored root key (else the old ones still do)."""
    try:
        await seal.rekey(new_kek, attempt.config(), expect=attempt.expect)
        return
    except ReplicationUnconfirmed as exc:
        # on the primary: the new shares are the ones that work now, they must be handed out
        log.warning("rekey applied on the storage primary, replicas not confirmed: %s", exc)
    except OutcomeUnknown as exc:
        log.warning("rekey commit outcome unknown (%s); reading it back", exc)
        try:
            await seal.open_root(new_kek)
        except InvalidKey:
            raise OperatorError(500, f"{what}: {exc.message}; not applied, the current "
                                     "unseal keys remain valid") from None
        except TransitError:
            raise OperatorError(503, f"{what}: {exc.message}; the outcome is unknown: check "
                                     "sys/seal-status before using either set of keys") from None
    except OperatorError:
        raise
    except TransitError as exc:
        raise OperatorError(500, f"{what}: {exc.message}") from None
    # applied, but not through `seal.rekey`'s own return: pick the new state up from storage
    seal.forget_config()
    try:
        await seal.barrier.reload_keyring()
    except TransitError as exc:  # followed later (invalidation, the next reload)
        log.warning("could not reload the keyring after the rekey yet: %s", exc)


# -- verification (§1.5) -------------------------------------------------------------------


def verify_status(seal: SealManager, term: int) -> dict[str, Any]:
    attempt = current(seal, term)
    if attempt is None:
        raise OperatorError(400, "no rekey configuration found")
    return {"nonce": attempt.verification_nonce, "started": bool(attempt.verification_key),
            "t": attempt.threshold, "n": attempt.shares,
            "progress": len(attempt.verification_progress)}


def verify_restart(seal: SealManager, term: int) -> None:
    attempt = current(seal, term)
    if attempt is not None:
        attempt.verification_progress = []
        attempt.verification_nonce = go_uuid()


async def verify(seal: SealManager, term: int, key: bytes, nonce: str) -> dict[str, Any] | None:
    """Submit one NEW share. None below the new threshold; `{"nonce","complete"}` once the
    rekey is applied."""
    attempt = current(seal, term)
    if attempt is None:
        raise OperatorError(400, "no rekey in progress")
    if not attempt.verification_key:
        raise OperatorError(400, "no rekey verification in progress")
    if nonce != attempt.verification_nonce:
        raise OperatorError(400, "incorrect nonce supplied; nonce for this verify operation is "
                                 f'"{attempt.verification_nonce}"')
    if any(hmac.compare_digest(key, part) for part in attempt.verification_progress):
        raise OperatorError(400, "given key has already been provided during this verify "
                                 "operation")
    attempt.verification_progress.append(bytes(key))
    if len(attempt.verification_progress) < attempt.threshold:
        return None
    parts, attempt.verification_progress = attempt.verification_progress, []
    try:
        try:
            candidate = combine(parts, attempt.threshold)
        except ValueError as exc:
            raise OperatorError(500, f"failed to compute key for verification: {exc}") from None
        if not hmac.compare_digest(candidate, attempt.verification_key):
            raise OperatorError(400, "rekey verification failed; incorrect key shares supplied")
        await _apply(seal, attempt, attempt.verification_key, "failed to perform rekey")
    except OperatorError:
        attempt.verification_nonce = go_uuid()  # not complete: a new verification nonce
        raise
    seal.attempts.pop(REKEY, None)
    return {"nonce": attempt.verification_nonce, "complete": True}
