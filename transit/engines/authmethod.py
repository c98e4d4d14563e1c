"""What an auth method's login handler returns: `Login`, a typed description of the token
to make (Vault's `logical.Auth`). The core (transit/login.py, `NodeLogin.complete_login`)
creates the token from it and builds the response's `auth` block, so every method gets the same TTL,
token-type, policy, bound-CIDR, identity and audit rules.

A login handler:

    async def login(req: Request, d: FieldData) -> Response:
        ...verify the credentials; raise UserError (400) / InternalError (500, unwrapped on
        login paths) / PermissionDenied (403)...
        return login_response(Login(
            token=role.token,                      # TokenParams (transit/tokenutil.py)
            display_name=username,                 # prefixed with the mount path by the core
            metadata={"username": username},
            alias_name=username, alias_metadata={"username": username},
        ))
"""

from __future__ import annotations

from transit.logical import Login, Response

__all__ = ["Login", "login_response"]  # Login lives with the request vocabulary (logical.py)


def login_response(login: Login) -> Response:
    """The handler's answer: the core turns `Response.login` into a token and `auth` block."""
    return Response(login=login)
