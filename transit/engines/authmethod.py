"""What an auth method's login handler returns: `Login`, a typed description of the token
to make (Vault's `logical.Auth`). The core (transit/core.py, `Core.complete_login`) creates the
token from it and builds the response's `auth` block, so every method gets the same TTL,
token-type, policy, bound-CIDR, identity and audit rules.

A login handler:

    async def login(req: Request, d: FieldData) -> Response:
        ...verify the credentials; raise UserError (400) / InternalError (500, unwrapped on
        login paths) / PermissionDenied (403)...
        return login_response(Login(
            token=role.token,                      # TokenParams (transit/engines/tokenutil.py)
            display_name=username,                 # prefixed with the mount path by the core
            metadata={"username": username},
            alias_name=username, alias_metadata={"username": username},
        ))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transit.engines.tokenutil import TokenParams
from transit.logical import Response


@dataclass(slots=True)
class Login:
    """A successful login, before its token exists."""

    token: TokenParams  # the role's token_* settings (policies, TTLs, type, bound CIDRs...)
    display_name: str = ""  # the core prepends the mount path: `userpass-alice`
    metadata: dict[str, str] | None = None  # the token's meta and the auth block's metadata
    alias_name: str = ""  # the identity alias (username, role_id, CN, JWT user claim)
    alias_metadata: dict[str, str] = field(default_factory=dict)
    # Names of external groups the method asserts (JWT groups claim), for the identity store.
    # None: the method asserts no groups (memberships untouched); a list, even empty: the
    # entity's external groups on this mount become exactly those named.
    group_aliases: list[str] | None = None
    renewable: bool = True  # Vault's LeaseOptions.Renewable (periodic tokens renew anyway)
    # Refuse the login (403 permission denied) when the client's address is outside
    # `token.bound_cidrs` (userpass, cert, jwt do; approle checks its own secret-ID CIDRs).
    check_bound_cidrs: bool = True
    # Method-private data kept with the token for a later renewal check (Vault's
    # InternalData): JSON-serialisable, never shown to clients; `renew_login` reads it back
    # as `token.internal_data`.
    internal_data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def login_response(login: Login) -> Response:
    """The handler's answer: the core turns `Response.login` into a token and `auth` block."""
    return Response(login=login)
