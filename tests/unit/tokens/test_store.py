"""The token store (transit/tokens/store.py) over in-memory storage: create, lookup, expiry,
uses, revocation trees, renewals, tidy, roles and TTL helpers, and its bounded caches."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.unit.tokens.helpers import Clock, dump, make
from transit.errors import InternalError, PermissionDenied, UserError
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend
from transit.tokens import TokenEntry, TokenStore
from transit.tokens.roles import TokenRole, glob_match, sanitize_policies
from transit.tokens.ttl import calculate_ttl, human_duration
from transit.tokens.wrapping import parse_wrap_ttl


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
