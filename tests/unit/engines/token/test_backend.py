"""The auth/token handlers (transit/engines/token) through the engine's route table, over a
real token store and a stand-in for the ACL policy store."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.tokens.helpers import Clock, make
from transit.engines.token import TokenBackend
from transit.errors import PermissionDenied, UserError
from transit.logical import LIST, READ, UPDATE, Request, Response
from transit.tokens import TokenEntry, TokenStore


class Policies:
    """A stand-in for the ACL store: knows some policy names; no sudo except root."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    async def get(self, name: str) -> object | None:
        return object() if name in self.names else None


async def backend(clock: Clock | None = None) -> tuple[TokenBackend, TokenStore, TokenEntry]:
    store = await make(clock)
    root = await store.create_root()
    policies = Policies({"default", "dev", "ops"})
    return TokenBackend(store, policies), store, root  # type: ignore[arg-type]


async def call(
    b: TokenBackend, token: TokenEntry | None, path: str, data: dict | None = None, op: str = UPDATE
) -> Response | None:
    req = Request(op, path, data or {}, None, "auth/token/",
                  client_token=token.id if token else "", token=token)
    return await b.handle(req)


def test_handler_create_shapes_and_policy_rules() -> None:
    async def go() -> None:
        b, store, root = await backend()
        resp = await call(b, root, "create", {"policies": ["dev", "nosuch"], "meta": {"a": 1},
                                               "ttl": "1h", "display_name": "my app!"})
        auth = resp.auth
        assert list(auth) == ["client_token", "accessor", "policies", "token_policies",
                              "metadata", "lease_duration", "renewable", "entity_id",
                              "token_type", "orphan", "mfa_requirement", "num_uses"]
        assert auth["policies"] == ["default", "dev", "nosuch"] and auth["lease_duration"] == 3600
        assert auth["metadata"] == {"a": "1"} and auth["renewable"] and not auth["orphan"]
        assert resp.warnings == ['Policy "nosuch" does not exist']
        child = await store.lookup(auth["client_token"])
        assert child.display_name == "token-my-app"

        with pytest.raises(UserError, match="child policies must be subset of parent"):
            await call(b, child, "create", {"policies": ["ops"]})
        sub = (await call(b, child, "create", {"policies": ["dev"]})).auth
        assert sub["policies"] == ["default", "dev"]
        assert sub["lease_duration"] <= 3600  # capped by the parent's remaining TTL
        with pytest.raises(UserError, match="orphan"):
            await call(b, child, "create", {"no_parent": True})
        with pytest.raises(UserError, match="periodic"):
            await call(b, child, "create", {"period": "1h"})
        with pytest.raises(UserError, match="specify token id"):
            await call(b, child, "create", {"id": "custom"})
        with pytest.raises(UserError, match="child policies must be subset of parent"):
            await call(b, child, "create", {"policies": ["root"]})
        with pytest.raises(UserError, match='cannot assign policy "response-wrapping"'):
            await call(b, root, "create", {"policies": ["response-wrapping"]})
        with pytest.raises(UserError, match="error converting input"):
            await call(b, root, "create", {"ttl": "soon"})
        with pytest.raises(UserError, match="negative"):
            await call(b, root, "create", {"ttl": -5})
        with pytest.raises(UserError, match="number of uses cannot be negative"):
            await call(b, root, "create", {"num_uses": -1})
        with pytest.raises(UserError, match="invalid 'token_type' value"):
            await call(b, root, "create", {"type": "weird"})
        limited = (await call(b, root, "create", {"num_uses": 3})).auth
        with pytest.raises(UserError, match="restricted use token"):
            await call(b, await store.lookup(limited["client_token"]), "create", {})

        roottok = (await call(b, root, "create", {})).auth  # inherits root, never expires
        assert roottok["policies"] == ["root"] and roottok["lease_duration"] == 0
        assert not roottok["renewable"]
        orphan = (await call(b, root, "create-orphan", {"policies": ["dev"]})).auth
        assert orphan["orphan"]

    asyncio.run(go())


def test_handler_lookup_renew_revoke() -> None:
    async def go() -> None:
        clock = Clock()
        b, store, root = await backend(clock)
        auth = (await call(b, root, "create", {"policies": ["dev"], "ttl": 600})).auth
        tok = await store.lookup(auth["client_token"])
        data = (await call(b, tok, "lookup-self", op=READ)).data
        assert data["id"] == tok.id and data["ttl"] == 600 and data["creation_ttl"] == 600
        assert data["path"] == "auth/token/create" and data["display_name"] == "token"
        assert data["expire_time"].endswith("Z") and data["renewable"] is True
        assert data["meta"] is None and data["orphan"] is False and data["type"] == "service"
        rdata = (await call(b, root, "lookup-self", op=READ)).data
        assert rdata["expire_time"] is None and rdata["ttl"] == 0 and "issue_time" not in rdata
        assert rdata["path"] == "auth/token/root" and rdata["display_name"] == "root"
        with pytest.raises(PermissionDenied, match="bad token"):
            await call(b, root, "lookup", {"token": "hvs.unknown"})
        with pytest.raises(UserError, match="missing accessor"):
            await call(b, root, "lookup-accessor", {})
        with pytest.raises(UserError, match="invalid accessor"):
            await call(b, root, "lookup-accessor", {"accessor": "nope"})
        acc = (await call(b, root, "lookup-accessor", {"accessor": tok.accessor})).data
        assert acc["id"] == "" and acc["accessor"] == tok.accessor

        clock.advance(100)
        renewed = await call(b, tok, "renew-self", {"increment": "300s"})
        assert renewed.auth["lease_duration"] == 300 and renewed.auth["client_token"] == tok.id
        by_acc = await call(b, root, "renew-accessor", {"accessor": tok.accessor})
        assert by_acc.auth["client_token"] == "" and by_acc.auth["lease_duration"] == 300
        with pytest.raises(UserError, match="token not found"):
            await call(b, root, "renew", {"token": "hvs.gone"})
        with pytest.raises(UserError, match="invalid lease ID"):
            await call(b, root, "renew-self", {})

        kid = (await call(b, tok, "create", {})).auth
        assert await call(b, root, "revoke", {"token": "hvs.unknown"}) is None
        with pytest.raises(UserError, match="missing token ID"):
            await call(b, root, "revoke", {})
        await call(b, root, "revoke-accessor", {"accessor": tok.accessor})
        assert await store.lookup(tok.id) is None and await store.lookup(kid["client_token"]) is None

        a = (await call(b, root, "create", {})).auth
        a_tok = await store.lookup(a["client_token"])
        a_kid = (await call(b, a_tok, "create", {"policies": ["dev"]})).auth
        nonroot = await store.lookup(a_kid["client_token"])
        with pytest.raises(UserError, match="root or sudo privileges required to revoke"):
            await call(b, nonroot, "revoke-orphan", {"token": a["client_token"]})
        await call(b, root, "revoke-orphan", {"token": a["client_token"]})
        assert (await store.lookup(a_kid["client_token"])).orphan
        await call(b, nonroot, "revoke-self", {})
        assert await store.lookup(a_kid["client_token"]) is None
        keys = (await call(b, root, "accessors/", op=LIST)).data["keys"]
        assert root.accessor in keys

    asyncio.run(go())


def test_handler_roles() -> None:
    async def go() -> None:
        b, store, root = await backend()
        assert await call(b, root, "roles/web", {"allowed_policies": "dev,ops", "orphan": True,
                                                  "token_period": "1h", "path_suffix": "v1"}) is None
        data = (await call(b, root, "roles/web", op=READ)).data
        assert data["allowed_policies"] == ["dev", "ops"] and data["token_period"] == 3600
        assert data["period"] == 3600 and data["token_type"] == "default-service"
        assert data["name"] == "web" and data["orphan"] is True
        assert (await call(b, root, "roles/", op=LIST)).data["keys"] == ["web"]
        assert await call(b, root, "roles/nope", op=READ) is None

        child = await store.lookup((await call(b, root, "create", {"policies": ["default"]})).auth["client_token"])
        auth = (await call(b, child, "create/web", {})).auth  # a role may grant beyond the parent
        assert auth["policies"] == ["default", "dev", "ops"] and auth["orphan"]
        made = await store.lookup(auth["client_token"])
        assert made.role == "web" and made.period == 3600 and made.path == "auth/token/create/web/v1"
        with pytest.raises(UserError, match="must be subset of the role's allowed policies"):
            await call(b, root, "create/web", {"policies": ["root"]})
        with pytest.raises(UserError, match="unknown role nope"):
            await call(b, root, "create/nope", {})
        with pytest.raises(UserError, match="invalid 'token_type'"):
            await call(b, root, "roles/bad", {"token_type": "weird"})
        with pytest.raises(UserError, match="error converting input"):
            await call(b, root, "roles/bad", {"orphan": "maybe"})
        await call(b, root, "roles/deny", {"disallowed_policies": ["ops"]})
        with pytest.raises(UserError, match='token policy "ops" is disallowed by this role'):
            await call(b, root, "create/deny", {"policies": ["ops"]})
        await call(b, root, "roles/web", op="delete")
        assert await call(b, root, "roles/web", op=READ) is None

    asyncio.run(go())


def test_handler_tidy() -> None:
    async def go() -> None:
        b, _, root = await backend()
        resp = await call(b, root, "tidy", {})
        assert resp.status == 202 and "Tidy operation successfully started" in resp.warnings[0]
        await asyncio.gather(*b.background)

    asyncio.run(go())
