"""Helpers shared by the `auth/token/` handlers."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from transit.errors import UserError
from transit.tokens.entry import TokenEntry

if TYPE_CHECKING:
    from transit.acl.store import AclPolicyStore
    from transit.logical import Request
    from transit.tokens.store import TokenStore


class TokenPort(Protocol):
    """What the `auth/token/` handlers use of their backend (`TokenBackend` satisfies it;
    tests pass a namespace): the token store, the ACL policies for sudo checks, and a set
    that keeps background tasks (tidy) alive."""

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def policies(self) -> AclPolicyStore: ...

    @property
    def background(self) -> set[asyncio.Task[None]]: ...


def string_list(value: Any, field: str) -> list[str]:
    """A comma-string-slice field's items as strings (Vault's TypeCommaStringSlice)."""
    out: list[str] = []
    for item in value or []:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise UserError(
                f"Field validation failed: error converting input {item!r} for field "
                f'"{field}": expected a list of strings'
            )
        out.extend(s.strip() for s in str(item).split(","))
    return [s for s in out if s]


def string_map(value: Any, field: str) -> dict[str, str] | None:
    """A key/value-pairs field (`meta`) with string values (Vault's TypeKVPairs)."""
    if value is None:
        return None
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, int | float):
            v = str(v)
        elif not isinstance(v, str):
            raise UserError(
                f"Field validation failed: error converting input {v!r} for field "
                f'"{field}": expected a map of strings'
            )
        out[str(k)] = v
    return out


async def is_sudo(b: TokenPort, req: Request) -> bool:
    """Root, or `sudo` on this path through the caller's ACL policies."""
    tok: TokenEntry | None = req.token
    if tok is None:
        return False
    if tok.is_root():
        return True
    policies = getattr(b, "policies", None)
    if policies is None or not hasattr(policies, "acl_for"):
        return False
    acl = await policies.acl_for(tok.policies)
    path = (req.mount_path or "auth/token/") + req.path
    if hasattr(acl, "has_sudo"):
        return bool(acl.has_sudo(path))
    return bool(getattr(acl.allowed(path, req.operation), "sudo", False))


async def caller(b: TokenPort, req: Request) -> TokenEntry | None:
    """The caller's own entry: the one the pipeline looked up, else a fresh lookup."""
    tok: TokenEntry | None = req.token
    if tok is not None and not tok.revoked:
        return tok
    if tok is not None and tok.num_uses < 0:  # its last use is this very request
        return tok
    return await b.tokens.lookup(req.client_token)
