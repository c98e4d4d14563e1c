"""Token store, roles, wrapping and the auth/token handlers over in-memory storage."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from transit.engines.token import TokenBackend
from transit.errors import InternalError, PermissionDenied, UserError
from transit.logical import LIST, READ, UPDATE, Request, Response
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend
from transit.tokens import TokenEntry, TokenStore
from transit.tokens.roles import TokenRole, glob_match, sanitize_policies
from transit.tokens.ttl import calculate_ttl, human_duration
from transit.tokens.wrapping import Wrapper, parse_wrap_ttl


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


async def make(clock: Clock | None = None, physical: InmemBackend | None = None) -> TokenStore:
    store = TokenStore(StorageView(physical if physical is not None else InmemBackend(), "sys/token/"), clock=clock or Clock())
    await store.setup()
    return store


def dump(physical: InmemBackend) -> str:
    return repr(physical._data)


# --- store -----------------------------------------------------------------------------


def test_create_lookup_and_format() -> None:
    async def go() -> None:
        store = await make()
        root = await store.create_root()
        assert re.fullmatch(r"hvs\.[A-Za-z0-9]{24}", root.id)
        assert len(root.accessor) == 24 and root.is_root() and root.orphan
        child = await store.create(root, policies=["default", "dev"], ttl=3600, meta={"a": "b"})
        got = await store.lookup(child.id)
        assert got is child
        assert got.policies == ["default", "dev"] and got.parent == root.hash and not got.orphan
        assert await store.lookup("hvs.nope") is None
        assert await store.lookup("") is None

    asyncio.run(go())


def test_salted_storage_never_holds_token_ids() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        root = await store.create_root("dev-root-token")
        child = await store.create(root, policies=["default"], ttl=60)
        grandchild = await store.create(child, policies=["default"], ttl=60)
        text = dump(physical)
        for token in (root.id, child.id, grandchild.id):
            assert token not in text
            assert token.encode() not in b"".join(physical._data.values())
        for entry in (root, child, grandchild):  # accessors only inside (barrier) values
            assert not any(entry.accessor in k for k in physical._data)
        assert "sys/token/salt" in physical._data
        assert f"sys/token/id/{child.hash}" in physical._data
        assert f"sys/token/parent/{child.hash}/{grandchild.hash}" in physical._data

    asyncio.run(go())


def test_reload_from_storage_with_same_salt() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        root = await store.create_root()
        child = await store.create(root, policies=["default"], ttl=60)
        again = await make(physical=physical)  # a restart: empty cache, salt loaded
        got = await again.lookup(child.id)
        assert got is not None and got.id == child.id and got.hash == child.hash
        assert got.accessor == child.accessor and got.policies == ["default"]

    asyncio.run(go())


def test_expiry_uses_the_clock_and_revokes() -> None:
    async def go() -> None:
        clock = Clock()
        physical = InmemBackend()
        store = await make(clock, physical)
        root = await store.create_root()
        child = await store.create(root, policies=["default"], ttl=60)
        clock.advance(59)
        assert await store.lookup(child.id) is child
        clock.advance(1)
        assert await store.lookup(child.id) is None
        assert f"sys/token/id/{child.hash}" not in physical._data
        assert await store.lookup_accessor(child.accessor) is None

    asyncio.run(go())


def test_num_uses_counts_down_and_revokes() -> None:
    async def go() -> None:
        store = await make()
        root = await store.create_root()
        t = await store.create(root, policies=["default"], ttl=60, num_uses=2)
        await store.use(t)
        assert (await store.lookup(t.id)).num_uses == 1
        reloaded = await make(physical=None)  # unrelated store: nothing shared
        assert await reloaded.lookup(t.id) is None
        await store.use(t)
        assert await store.lookup(t.id) is None
        with pytest.raises(PermissionDenied):
            await store.use(t)
        await store.use(root)  # unlimited: no-op
        t2 = await store.create(root, policies=["default"], ttl=60, num_uses=5)
        await store.revoke(t2)  # revoke-self by a limited token: the use after it is a no-op
        await store.use(t2)
        assert await store.lookup(t2.id) is None

    asyncio.run(go())


def test_num_uses_persisted() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        root = await store.create_root()
        t = await store.create(root, policies=["default"], ttl=60, num_uses=3)
        await store.use(t)
        other = await make(physical=physical)
        assert (await other.lookup(t.id)).num_uses == 2

    asyncio.run(go())


def test_revoke_tree_and_orphans() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        root = await store.create_root()
        a = await store.create(root, policies=["default"], ttl=600)
        b = await store.create(a, policies=["default"], ttl=600)
        c = await store.create(b, policies=["default"], ttl=600)
        orphan = await store.create(a, policies=["default"], ttl=600, orphan=True)
        await store.revoke(a)
        for t in (a, b, c):
            assert await store.lookup(t.id) is None
        assert await store.lookup(orphan.id) is orphan
        assert await store.lookup(root.id) is root
        assert not [k for k in physical._data if "/parent/" in k]
        assert len([k for k in physical._data if "/accessor/" in k]) == 2

    asyncio.run(go())


def test_revoke_orphan_keeps_children() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        root = await store.create_root()
        a = await store.create(root, policies=["default"], ttl=600)
        b = await store.create(a, policies=["default"], ttl=600)
        await store.revoke_orphan(a)
        assert await store.lookup(a.id) is None
        got = await (await make(physical=physical)).lookup(b.id)
        assert got is not None and got.orphan
        await store.revoke(root)
        assert await store.lookup(b.id) is not None  # no longer in root's tree

    asyncio.run(go())


def test_accessor_lookups() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        root = await store.create_root()
        t = await store.create(root, policies=["default"], ttl=600)
        fresh = await make(physical=physical)
        by_acc = await fresh.lookup_accessor(t.accessor)
        assert by_acc is not None and by_acc.hash == t.hash and by_acc.id == ""
        assert (await fresh.lookup(t.id)) is by_acc and by_acc.id == t.id  # learns the id
        assert sorted(await store.list_accessors()) == sorted([root.accessor, t.accessor])
        assert await store.lookup_accessor("nope") is None
        await store.revoke(t)
        assert await store.lookup_accessor(t.accessor) is None

    asyncio.run(go())


def test_renew_ttl_period_and_explicit_max() -> None:
    async def go() -> None:
        clock = Clock()
        store = await make(clock)
        root = await store.create_root()
        with pytest.raises(UserError, match="invalid lease ID"):
            await store.renew(root)
        t = await store.create(root, policies=["default"], ttl=100, explicit_max_ttl=150)
        clock.advance(90)
        assert "exceeded the effective max_ttl" in (await store.renew(t))[0]
        assert t.ttl == 60 and t.expire_time == clock.t + 60
        clock.advance(30)
        warnings = await store.renew(t, increment=100)
        assert t.ttl == 30 and "exceeded the effective max_ttl" in warnings[0]
        clock.advance(30)
        assert await store.lookup(t.id) is None

        p = await store.create(root, policies=["default"], ttl=50, period=50)
        clock.advance(40)
        await store.renew(p, increment=1000)  # periodic: renew resets to the period
        assert p.ttl == 50 and p.expire_time == clock.t + 50
        clock.advance(45)
        assert await store.lookup(p.id) is p

        n = await store.create(root, policies=["default"], ttl=50, renewable=False)
        with pytest.raises(UserError, match="lease is not renewable"):
            await store.renew(n)

    asyncio.run(go())


def test_renew_past_explicit_max_is_an_error() -> None:
    async def go() -> None:
        clock = Clock()
        store = await make(clock)
        root = await store.create_root()
        t = await store.create(root, policies=["default"], ttl=100, period=100, explicit_max_ttl=100)
        clock.advance(99)
        await store.renew(t)
        assert t.ttl == 1

    asyncio.run(go())


def test_renew_never_outlives_the_parent() -> None:
    async def go() -> None:
        clock = Clock()
        store = await make(clock)
        root = await store.create_root()
        parent = await store.create(root, policies=["default"], ttl=100)
        child = await store.create(parent, policies=["default"], ttl=100)
        clock.advance(50)
        await store.renew(child, increment=1000)
        assert child.expire_time == parent.expire_time

    asyncio.run(go())


def test_invalidate_drops_a_stale_cache_entry() -> None:
    async def go() -> None:
        physical = InmemBackend()
        a = await make(physical=physical)
        root = await a.create_root()
        t = await a.create(root, policies=["default"], ttl=600)
        b = await make(physical=physical)  # another node/worker
        await b.revoke(await b.lookup(t.id))
        assert await a.lookup(t.id) is t  # stale until invalidated
        a.invalidate(t.hash)
        assert await a.lookup(t.id) is None

    asyncio.run(go())


def test_custom_ids_and_duplicates() -> None:
    async def go() -> None:
        store = await make()
        root = await store.create_root("root")
        assert (await store.lookup("root")) is root
        await store.create(root, policies=["default"], ttl=60, id="mytoken")
        with pytest.raises(UserError, match="duplicate ID"):
            await store.create(root, policies=["default"], ttl=60, id="mytoken")
        with pytest.raises(UserError, match="'hvs.' prefix"):
            await store.create(root, policies=["default"], ttl=60, id="hvs.abc")
        with pytest.raises(UserError, match="'.'"):
            await store.create(root, policies=["default"], ttl=60, id="a.b")

    asyncio.run(go())


def test_tidy_revokes_expired_and_dangling() -> None:
    async def go() -> None:
        clock = Clock()
        physical = InmemBackend()
        store = await make(clock, physical)
        root = await store.create_root()
        await store.create(root, policies=["default"], ttl=10)
        keep = await store.create(root, policies=["default"], ttl=1000)
        clock.advance(20)
        assert await store.tidy() == 1
        assert len([k for k in physical._data if "/id/" in k]) == 2
        assert await store.lookup(keep.id) is keep

    asyncio.run(go())


def test_entry_json_roundtrip_has_no_id() -> None:
    e = TokenEntry(id="hvs.secret", hash="h", accessor="acc", policies=["default"], ttl=5)
    raw = e.to_json()
    assert b"hvs.secret" not in raw
    back = TokenEntry.from_json(raw, id="x", hash="h")
    assert back.accessor == "acc" and back.policies == ["default"] and back.id == "x"


def test_roles_store() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        await store.roles.put(TokenRole(name="Web", allowed_policies=["a"], period=60))
        assert (await store.roles.get("web")).period == 60
        assert await store.roles.list() == ["web"]
        again = await make(physical=physical)
        assert (await again.roles.get("WEB")).allowed_policies == ["a"]
        await store.roles.delete("web")
        assert await store.roles.get("web") is None and await store.roles.list() == []

    asyncio.run(go())


def test_helpers() -> None:
    assert human_duration(768 * 3600) == "768h"
    assert human_duration(90) == "1m30s" and human_duration(3600 + 60) == "1h1m"
    assert sanitize_policies([" Dev", "dev", ""], True) == ["default", "dev"]
    assert sanitize_policies(["root", "x"], True) == ["root"]
    assert glob_match("dev-*", "dev-a") and not glob_match("dev-*", "prod")
    ttl, w = calculate_ttl(increment=0, backend_ttl=0, period=0, explicit_max_ttl=0, start=0, now=0)
    assert ttl == 768 * 3600 and w == []
    with pytest.raises(InternalError):
        calculate_ttl(increment=0, backend_ttl=10, period=0, explicit_max_ttl=10, start=1, now=20)
    assert parse_wrap_ttl("5m") == 300 and parse_wrap_ttl("60") == 60
    with pytest.raises(UserError, match="^error parsing X-Vault-Wrap-TTL: invalid duration 'nope'$"):
        parse_wrap_ttl("nope")
    for bad in ("0", "-5"):
        with pytest.raises(UserError, match="^wrap ttl must be greater than zero$"):
            parse_wrap_ttl(bad)


# --- wrapping --------------------------------------------------------------------------


async def make_wrapper(clock: Clock | None = None) -> tuple[TokenStore, Wrapper, InmemBackend]:
    physical = InmemBackend()
    store = await make(clock, physical)
    return store, Wrapper(store, StorageView(physical, "cubbyhole/")), physical


def _req(path: str, mount: str = "sys/", op: str = UPDATE, **kw: Any) -> Request:
    return Request(op, path, kw.pop("data", {}), None, mount, **kw)


def test_wrap_unwrap_once() -> None:
    async def go() -> None:
        store, wrapper, physical = await make_wrapper()
        resp = await wrapper.wrap(Response(data={"secret": "s3"}), 60, _req("wrapping/wrap"))
        info = resp.wrap_info
        assert info["ttl"] == 60 and info["creation_path"] == "sys/wrapping/wrap"
        assert resp.data is None and "wrapped_accessor" not in info
        assert b"s3" in b"".join(physical._data.values())
        entry = await store.lookup(info["token"])
        assert entry.policies == ["response-wrapping"] and entry.num_uses == 1 and entry.orphan
        looked = await wrapper.lookup(info["token"])
        assert looked.data["creation_ttl"] == 60
        assert looked.data["creation_path"] == "sys/wrapping/wrap"
        out = await wrapper.unwrap(info["token"])
        assert out.data == {"secret": "s3"}
        with pytest.raises(UserError, match="wrapping token is not valid"):
            await wrapper.unwrap(info["token"])
        assert not [k for k in physical._data if k.startswith("cubbyhole/")]

    asyncio.run(go())


def test_wrap_auth_rewrap_and_expiry() -> None:
    async def go() -> None:
        clock = Clock()
        store, wrapper, _ = await make_wrapper(clock)
        root = await store.create_root()
        child = await store.create(root, policies=["default"], ttl=60)
        resp = await wrapper.wrap(
            Response(auth=child.auth_block()), 30, _req("create", "auth/token/")
        )
        assert resp.wrap_info["wrapped_accessor"] == child.accessor
        assert resp.wrap_info["creation_path"] == "auth/token/create"
        new = await wrapper.rewrap(resp.wrap_info["token"])
        assert new.wrap_info["creation_path"] == "auth/token/create"
        assert new.wrap_info["token"] != resp.wrap_info["token"]
        with pytest.raises(UserError):
            await wrapper.lookup(resp.wrap_info["token"])
        out = await wrapper.unwrap(new.wrap_info["token"])
        assert out.auth["client_token"] == child.id
        # a normal token is not a wrapping token
        with pytest.raises(UserError, match="wrapping token is not valid"):
            await wrapper.unwrap(root.id)
        again = await wrapper.wrap(Response(data={"k": 1}), 30, _req("wrapping/wrap"))
        clock.advance(31)
        with pytest.raises(UserError, match="wrapping token is not valid"):
            await wrapper.unwrap(again.wrap_info["token"])

    asyncio.run(go())


def test_concurrent_unwraps_consume_once() -> None:
    async def go() -> None:
        _, wrapper, _ = await make_wrapper()
        resp = await wrapper.wrap(Response(data={"x": 1}), 60, _req("wrapping/wrap"))
        results = await asyncio.gather(
            *(wrapper.unwrap(resp.wrap_info["token"]) for _ in range(5)), return_exceptions=True
        )
        assert sum(isinstance(r, Response) for r in results) == 1

    asyncio.run(go())


def test_check_request_sources() -> None:
    async def go() -> None:
        store, wrapper, _ = await make_wrapper()
        resp = await wrapper.wrap(Response(data={"x": 1}), 60, _req("wrapping/wrap"))
        tok = resp.wrap_info["token"]
        entry = await wrapper.check_request(_req("wrapping/unwrap", client_token=tok))
        assert entry is not None and entry.id == tok
        assert await wrapper.check_request(_req("wrapping/unwrap", data={"token": tok})) is None
        for data in ({"token": ""}, {"token": 5}, {"token": "nope"}):
            with pytest.raises(UserError):
                await wrapper.check_request(_req("wrapping/unwrap", data=data))
        entry = await store.lookup(tok)
        await store.use(entry)  # wrapping tokens are consumed by unwrap, not by use
        assert await store.lookup(tok) is entry

    asyncio.run(go())


# --- auth/token handlers (through the engine, with a stand-in core) ---------------------


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


# --- bounded caches ------------------------------------------------------------------


def test_make_room_drops_the_oldest_eighth_only_when_full() -> None:
    from transit.tokens.cache import make_room

    cache = {i: str(i) for i in range(15)}
    assert make_room(cache, 16) == [] and len(cache) == 15
    cache[15] = "15"
    assert make_room(cache, 16) == ["0", "1"] and list(cache)[:2] == [2, 3]


def test_token_cache_is_bounded_and_evicted_tokens_still_work() -> None:
    async def go() -> None:
        clock = Clock()
        store = TokenStore(StorageView(InmemBackend(), "sys/token/"), clock=clock, cache_size=16)
        await store.setup()
        root = await store.create_root()
        tokens = [await store.create(root, policies=["default"], ttl=600) for _ in range(100)]
        assert len(store._by_hash) <= 16 and len(store._by_token) <= 16
        for t in tokens:  # each miss reads storage again and re-caches, within the bound
            got = await store.lookup(t.id)
            assert got is not None and got.hash == t.hash and got.accessor == t.accessor
            assert len(store._by_hash) <= 16
            assert all(store._by_hash.get(e.hash) is e for e in store._by_token.values())
        assert await store.lookup(root.id) is not None
        for t in tokens[:50]:
            await store.revoke(t)
        assert [await store.lookup(t.id) for t in tokens[:50]] == [None] * 50

    asyncio.run(go())


def test_a_renewal_through_an_evicted_copy_is_what_the_cache_holds() -> None:
    """A request holds an entry that the cache evicts; another lookup reloads a second copy;
    the renewal through the first must win, or the cached copy would expire the token at
    its old time."""

    async def go() -> None:
        clock = Clock()
        store = TokenStore(StorageView(InmemBackend(), "sys/token/"), clock=clock, cache_size=8)
        await store.setup()
        root = await store.create_root()
        held = await store.create(root, policies=["default"], ttl=60)
        for _ in range(20):
            await store.create(root, policies=["default"], ttl=600)
        assert held.hash not in store._by_hash
        reloaded = await store.lookup(held.id)
        assert reloaded is not None and reloaded is not held
        clock.advance(30)
        await store.renew(held, increment=300)
        clock.advance(100)  # past the old expiry
        got = await store.lookup(held.id)
        assert got is not None and got.expire_time == held.expire_time

    asyncio.run(go())


def test_uses_through_an_evicted_copy_are_counted_once() -> None:
    async def go() -> None:
        store = TokenStore(StorageView(InmemBackend(), "sys/token/"), clock=Clock(), cache_size=8)
        await store.setup()
        root = await store.create_root()
        held = await store.create(root, policies=["default"], ttl=600, num_uses=3)
        for _ in range(20):
            await store.create(root, policies=["default"], ttl=600)
        reloaded = await store.lookup(held.id)
        assert reloaded is not None and reloaded is not held
        await store.use(held)
        got = await store.lookup(held.id)
        assert got is not None and got.num_uses == 2
        await store.use(got)
        await store.use(held)  # the stale copy: storage decides
        assert await store.lookup(held.id) is None

    asyncio.run(go())


def test_role_cache_is_bounded() -> None:
    async def go() -> None:
        store = await make()
        store.roles.cache_size = 8
        for i in range(30):
            await store.roles.put(TokenRole(name=f"r{i}", period=i))
        assert len(store.roles._cache) <= 8
        for i in range(30):
            role = await store.roles.get(f"R{i}")
            assert role is not None and role.period == i
            assert len(store.roles._cache) <= 8

    asyncio.run(go())
