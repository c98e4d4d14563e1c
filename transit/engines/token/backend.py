"""The token auth method, always mounted at `auth/token/` (spec ha-and-sys-api §4.10).

This is the one visible route table of the token engine; handlers live in `create.py`,
`manage.py` and `roles.py` and take this backend first, as its `TokenPort`
(`common.py`). The engine gets exactly its narrow ports: the node's `TokenStore` and its ACL
policy store (for sudo checks), never the node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from transit.engines.framework import Engine, ExistenceCheck, Handler, Route, name
from transit.engines.token import create, manage, roles
from transit.engines.token.common import TokenPort
from transit.fields import FieldData
from transit.logical import DELETE, LIST, READ, UPDATE, Request

if TYPE_CHECKING:
    from transit.acl.store import AclPolicyStore
    from transit.tokens.store import TokenStore

# A token handler (or existence check): the backend's port first, then request and fields.
TokenHandler = Callable[[TokenPort, Request, FieldData], Awaitable[Any]]


class TokenBackend(Engine):
    mount_type = "token"
    identity: Any = None  # the node's IdentityStore: token roles' `entity_alias` (issue 17)

    def __init__(self, tokens: TokenStore, policies: AclPolicyStore) -> None:
        self.tokens = tokens
        self.policies = policies
        self.background: set[asyncio.Task[None]] = set()
        b: TokenPort = self

        def h(fn: TokenHandler) -> Handler:
            return partial(fn, b)

        def e(fn: Callable[[TokenPort, Request, FieldData], Awaitable[bool]]) -> ExistenceCheck:
            return partial(fn, b)

        super().__init__(
            [
                Route(r"create", {UPDATE: h(create.create)}, create.CREATE_FIELDS),
                Route(r"create-orphan", {UPDATE: h(create.create_orphan)}, create.CREATE_FIELDS),
                Route(f"create/{name('role_name')}", {UPDATE: h(create.create_with_role)},
                      create.CREATE_FIELDS),
                Route(r"roles/?", {LIST: h(roles.list_roles)}, roles.LIST_FIELDS),
                Route(
                    f"roles/{name('role_name')}",
                    {READ: h(roles.read_role), UPDATE: h(roles.write_role),
                     DELETE: h(roles.delete_role)},
                    roles.ROLE_FIELDS,
                    existence_check=e(roles.role_exists),
                ),
                Route(r"accessors/?", {LIST: h(manage.list_accessors)}, {}),
                Route(r"lookup", {READ: h(manage.lookup), UPDATE: h(manage.lookup)},
                      manage.TOKEN_FIELDS),
                Route(r"lookup-self", {READ: h(manage.lookup_self), UPDATE: h(manage.lookup_self)},
                      manage.TOKEN_FIELDS),
                Route(r"lookup-accessor", {UPDATE: h(manage.lookup_accessor)},
                      manage.ACCESSOR_FIELDS),
                Route(r"renew", {UPDATE: h(manage.renew)}, manage.RENEW_FIELDS),
                Route(r"renew-self", {UPDATE: h(manage.renew_self)}, manage.RENEW_SELF_FIELDS),
                Route(r"renew-accessor", {UPDATE: h(manage.renew_accessor)},
                      manage.RENEW_ACCESSOR_FIELDS),
                Route(r"revoke", {UPDATE: h(manage.revoke)}, manage.TOKEN_FIELDS),
                Route(r"revoke-self", {UPDATE: h(manage.revoke_self)}, {}),
                Route(r"revoke-accessor", {UPDATE: h(manage.revoke_accessor)},
                      manage.ACCESSOR_FIELDS),
                Route(r"revoke-orphan", {UPDATE: h(manage.revoke_orphan)}, manage.TOKEN_FIELDS),
                Route(r"tidy", {UPDATE: h(manage.tidy)}, {}),
            ]
        )
