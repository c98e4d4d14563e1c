"""Userpass users as stored (`user/<lowercase name>` in the mount's storage, behind the
barrier) and the password hash (bcrypt, cost 10, as Vault)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import orjson

from transit.errors import UserError
from transit.tokenutil import TokenParams

BCRYPT_COST = 10
USER_PREFIX = "user/"
# Compared against when the user does not exist, so that an unknown user costs the same time
# as a wrong password (Vault's dummy hash).
_DUMMY_HASH = bcrypt.hashpw(b"dummy-password-for-timing", bcrypt.gensalt(BCRYPT_COST))


@dataclass(slots=True)
class User:
    password_hash: bytes = b""
    token: TokenParams = field(default_factory=TokenParams)

    def to_json(self) -> bytes:
        return orjson.dumps({"password_hash": self.password_hash.decode("ascii"),
                             "token": self.token.to_json()})

    @classmethod
    def from_json(cls, raw: bytes) -> User:
        d: dict[str, Any] = orjson.loads(raw)
        return cls(password_hash=str(d.get("password_hash", "")).encode("ascii"),
                   token=TokenParams.from_json(d.get("token")))


def user_key(username: str) -> str:
    return USER_PREFIX + username.lower()


async def hash_password(password: str) -> bytes:
    """A bcrypt hash, off the event loop (tens of milliseconds of CPU). bcrypt reads at most
    72 bytes: Go's refuses longer passwords, and so does this."""
    raw = password.encode("utf-8", "surrogatepass")
    if len(raw) > 72:
        raise UserError("bcrypt: password length exceeds 72 bytes")
    return await asyncio.to_thread(bcrypt.hashpw, raw, bcrypt.gensalt(BCRYPT_COST))


def check_hash(password_hash: str) -> bytes:
    """A caller-supplied bcrypt hash (`password_hash`), validated."""
    raw = password_hash.encode("utf-8", "surrogatepass")
    try:
        bcrypt.checkpw(b"", raw)
    except ValueError:
        raise UserError("password_hash is not a valid bcrypt hash") from None
    return raw


async def password_matches(password: str, stored: bytes | None) -> bool:
    """bcrypt comparison (constant time inside bcrypt); an unknown user is compared against
    a dummy hash so that it takes as long as a wrong password."""
    candidate = password.encode("utf-8", "surrogatepass")
    target = stored or _DUMMY_HASH
    try:
        ok = await asyncio.to_thread(bcrypt.checkpw, candidate, target)
    except ValueError:  # a corrupt stored hash matches nothing
        return False
    return ok and stored is not None
