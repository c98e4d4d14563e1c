"""The per-engine route table machinery (Vault's `sdk/framework`).

An engine declares one visible table of `Route`s. The core hands it a `Request` (path
relative to the mount, operation, raw data; the vocabulary lives in `transit/logical.py`),
`Engine.handle` matches the route and runs its handler, and the `Response` (or an exception
from `transit.errors`) goes back up to be turned into Vault's wire format.

Handlers are `async def handler(req: Request, d: FieldData) -> Response | None`.
Returning None means "nothing to say": a write answers 204, a read answers 404.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from transit.errors import UnsupportedOperation, UnsupportedPath, UserError
from transit.fields import VALIDATION_PREFIX, Field, FieldData
from transit.logical import CREATE, UPDATE, Request, Response

# Vault's key-name pattern and optional trailing segment (spec §1.1).
NAME = r"\w(([\w\-.]+)?\w)?"


def name(group: str) -> str:
    """A named capture of a key name."""
    return rf"(?P<{group}>\w(?:(?:[\w\-.]+)?\w)?)"


def opt(group: str) -> str:
    """An optional trailing `/<anything>` captured as `group`."""
    return rf"(?:/(?P<{group}>.+))?"


Handler = Callable[[Request, FieldData], Awaitable[Response | None]]
# A route's existence check: whether the object an UPDATE names exists.
ExistenceCheck = Callable[[Request, FieldData], Awaitable[bool]]


@dataclass(slots=True)
class Route:
    pattern: str
    operations: dict[str, Handler]
    fields: dict[str, Field] = field(default_factory=dict)
    # Called for UPDATE: if it returns False the operation becomes CREATE (for ACL; the
    # handler registered under UPDATE still runs when no CREATE handler is given).
    existence_check: ExistenceCheck | None = None
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        # The whole path or nothing: anchored with `\Z` (and matched with fullmatch), never
        # `$`, which also matches before a final "\n" (so "encrypt/prod\n" would route to key
        # "prod" while the ACL saw another path). The group keeps a top-level "|" anchored.
        # ASCII: Go's \w (Vault's key-name pattern) matches no other letters
        self.regex = re.compile(f"(?:{self.pattern})\\Z", re.ASCII)


def _field_data(
    route: Route, params: dict[str, str], data: dict[str, Any]
) -> tuple[FieldData, list[str]]:
    """The request's fields: body data overridden by path captures, and which were replaced.

    Vault captures every named group, an unmatched optional one as "": it still overrides
    (and warns about) a body value of the same name, e.g. `source` on a bare `random`. Such a
    body value is dropped here, which reads as the default."""
    raw = data
    replaced: list[str] = []
    unmatched = [k for k in route.regex.groupindex if k not in params and k in raw]
    if params or unmatched:
        raw = dict(raw)
        for key, value in params.items():
            if key in raw and raw[key] is not None:
                replaced.append(key)
            raw[key] = value
        for key in unmatched:
            if raw[key] is not None:
                replaced.append(key)
            del raw[key]
    return FieldData(raw, route.fields), replaced


MATCH_MEMORY = 4096  # paths whose route match an engine remembers (Engine.match)
MATCH_PATH_MAX = 256  # longer paths are matched every time, never remembered


class Engine:
    """A logical backend mounted at some path; subclasses set `routes` and `mount_type`.

    Like Vault's `framework.Backend` (backend.go), an engine is its route table plus a few
    lifecycle hooks the mount table and the node call; each default does nothing, and an
    engine overrides only those it needs:

    - `setup()`: once per mount, after construction, before the first request (load what
      the engine keeps in memory; Vault's `Setup`/`Initialize`).
    - `invalidate(key)`: another process wrote `key` (relative to the mount's storage) —
      drop or reload what caches it (Vault's `InvalidateKey`; performance standbys and
      sibling workers, transit/cluster/invalidate.py).
    - `invalidate_all()`: the invalidation feed may have missed keys: drop every cache.
    - `periodic()`: about once a minute while the node is the active one (Vault's
      `PeriodicFunc`; transit's auto-rotation, AppRole's tidy), in one worker process of
      that node (transit/server.py); still decide on storage re-read, never on a cache (a
      deposed node may overlap its successor). An exception is logged, never raised further.
    """

    mount_type: str = ""
    routes: list[Route]
    # Paths (relative to the mount) served without a token: Vault's
    # PathsSpecial.Unauthenticated. An entry is an exact path, or a prefix when it ends in
    # `*` (`login`, `login/*`). On an auth mount these are the login paths: the core ignores
    # X-Vault-Token there and turns a returned `Login` into a token.
    unauthenticated: tuple[str, ...] = ()

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        self._matches: dict[str, tuple[Route, dict[str, str]]] = {}

    # -- lifecycle hooks ----------------------------------------------------------------------
    async def setup(self) -> None:
        """Once per mount, before its first request."""

    async def invalidate(self, key: str) -> None:
        """`key` of this mount's storage changed elsewhere."""

    async def invalidate_all(self) -> None:
        """Every cache of this mount may be stale."""

    async def periodic(self) -> None:
        """Background work, about once a minute."""

    async def login_alias(self, req: Request) -> str:
        """The lockout look-ahead (Vault's AliasLookahead): the alias a login request (on an
        unauthenticated path) is for, before the handler runs — from `req.path` and the raw
        `req.data`. "" (the default): this method's users are never locked out
        (transit/lockout.py). Errors raised here answer the request."""
        return ""

    async def renew_login(self, token: Any) -> Any:
        """An auth method's renewal check of a token one of its logins made (Vault's
        AuthRenew): return the role's current `TokenParams` (transit/tokenutil.py)
        to renew with, None to renew with the token's own values, raise InternalError to
        refuse (the core prefixes `failed to renew entry: `), or raise
        `transit.tokens.ttl.RenewDeclined` to leave the token as it is (204). `token` is the
        TokenEntry (`meta`, `policies`, `path`...)."""
        return None

    def is_unauthenticated(self, path: str) -> bool:
        """Whether `path` (relative to the mount) is one of `unauthenticated`."""
        for pattern in self.unauthenticated:
            if pattern.endswith("*"):
                if path.startswith(pattern[:-1]):
                    return True
            elif path == pattern:
                return True
        return False

    def match(self, path: str) -> tuple[Route, dict[str, str]]:
        """The route of `path` and its captured parameters (a fresh dict each call).

        Paths repeat (`encrypt/<key>` on every request), so matches are remembered: one dict
        lookup instead of trying the route table's patterns in order. The memory is bounded
        (emptied past MATCH_MEMORY paths, none longer than MATCH_PATH_MAX); a path that matches
        nothing is never kept."""
        hit = self._matches.get(path)
        if hit is not None:
            return hit[0], dict(hit[1])
        for route in self.routes:
            m = route.regex.fullmatch(path)
            if m is not None:
                params = {k: v for k, v in m.groupdict().items() if v is not None}
                if len(path) <= MATCH_PATH_MAX:  # a hostile 1 MiB key name is not kept
                    if len(self._matches) >= MATCH_MEMORY:
                        self._matches.clear()
                    self._matches[path] = (route, params)
                return route, dict(params)
        raise UnsupportedPath()

    def resolve(self, req: Request) -> tuple[Route, dict[str, str]] | None:
        """Match the request's path once (None when no route) and remember the match."""
        if req.matched is None:
            try:
                req.matched = self.match(req.path)
            except UnsupportedPath:
                return None
        return req.matched

    async def exists(self, req: Request) -> bool:
        """Vault's existence check: False turns an UPDATE into a CREATE for the ACL check.
        Routes without a check (or with no matching route) count as existing."""
        matched = self.resolve(req)
        if matched is None:
            return True
        route, params = matched
        check = route.existence_check
        if check is None:
            return True
        req.params = params
        req.fields = _field_data(route, params, req.data)
        return await check(req, req.fields[0])

    async def handle(self, req: Request) -> Response | None:
        route, params = req.matched or self.match(req.path)
        op = req.operation
        handler = route.operations.get(op)
        if handler is None and op == CREATE:
            handler = route.operations.get(UPDATE)
        if handler is None:
            raise UnsupportedOperation()
        req.params = params
        # the existence check (if any) already built them: reuse its coerced values
        fd, replaced = req.fields or _field_data(route, params, req.data)
        raw = fd.raw
        try:
            fd.validate()
        except UserError as exc:
            if route.existence_check is None or not exc.message.startswith(VALIDATION_PREFIX):
                raise
            raise UserError(exc.message[len(VALIDATION_PREFIX):]) from None

        resp = await handler(req, fd)
        if resp is not None:  # Vault warns only when there is a response to carry it
            unknown = sorted(k for k in raw if k not in route.fields)
            if unknown:
                resp.add_warning(
                    "Endpoint ignored these unrecognized parameters: [" + " ".join(unknown) + "]"
                )
            if replaced:
                resp.add_warning(
                    "Endpoint replaced the value of these parameters with the values "
                    "captured from the endpoint's path: [" + " ".join(sorted(replaced)) + "]"
                )
        return resp
