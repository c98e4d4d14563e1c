"""Token leases over in-memory storage (transit/tokens/leases.py, the lease parts of the token
store and expiration manager, transit/engines/system/leases.py): lease IDs, the lease index
written and deleted with its token, prefix revocation that reads only the index under the
prefix (tokens of logins included, with their children), lazy revocation, the backfill for
tokens stored before the index, and tidy's repairs."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from transit.engines.system import leases as handlers
from transit.errors import UserError
from transit.fields import FieldData
from transit.logical import UPDATE, Request
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend
from transit.tokens import TokenEntry, TokenStore, leases
from transit.tokens.expiration import ExpirationManager


class Clock:
    def __init__(self, t: float = 1_700_000_000.25) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


class Recording(InmemBackend):
    """In-memory storage that records the prefixes listed and the keys read."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: list[str] = []
        self.read: list[str] = []

    async def list(self, prefix: str) -> list[str]:
        self.listed.append(prefix)
        return await super().list(prefix)

    async def get(self, key: str) -> bytes | None:
        self.read.append(key)
        return await super().get(key)


async def make(clock: Clock | None = None, physical: InmemBackend | None = None) -> TokenStore:
    store = TokenStore(StorageView(physical if physical is not None else InmemBackend(),
                                   "sys/token/"), clock=clock or Clock())
    await store.setup()
    return store


def index_keys(physical: InmemBackend) -> set[str]:
    return {k[len("sys/token/lease/"):] for k in physical._data
            if k.startswith("sys/token/lease/")}


def node(store: TokenStore) -> Any:
    return SimpleNamespace(tokens=store)


async def call(handler: Any, store: TokenStore, path: str, fields: dict[str, Any],
               data: dict[str, Any], params: dict[str, str] | None = None) -> Any:
    req = Request(UPDATE, path, data, None)
    return await handler(node(store), req, FieldData({**data, **(params or {})}, fields))


# --- lease IDs -----------------------------------------------------------------------------------


def test_lease_ids_are_the_token_path_and_its_salted_hash() -> None:
    h = "ab" * 32
    assert leases.lease_id(TokenEntry(path="auth/approle/login", hash=h)) == (
        f"auth/approle/login/h{h}")
    # Go's path.Join cleans: no empty, "." or ".." segment, no leading "/"
    assert leases.lease_id(TokenEntry(path="auth/token/create/r//a/./b/", hash=h)) == (
        f"auth/token/create/r/a/b/h{h}")
    assert leases.lease_id(TokenEntry(path="/x/../../y", hash=h)) == f"y/h{h}"
    assert leases.token_hash(f"auth/approle/login/h{h}") == h
    assert leases.token_hash(f"h{h}") == h
    for bad in ("", "auth/approle/login", f"x/{h}", f"x/h{h[:-1]}", f"x/h{h}0", f"x/H{h}",
                f"x/h{h.upper()}"):
        assert leases.token_hash(bad) is None, bad


def test_folders_refuse_segments_no_lease_id_has() -> None:
    assert leases.folder("") == ""
    assert leases.folder("auth/approle") == "auth/approle/"
    assert leases.folder("auth/approle/") == "auth/approle/"
    for bad in ("auth//x", "/auth", "auth/./x", "auth/../x", "..", ".", "auth/.."):
        assert leases.folder(bad) is None, bad


def test_which_tokens_have_leases() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        root = await store.create_root()  # sys/init, generate-root, dev: no lease (Vault)
        assert not root.has_lease and index_keys(physical) == set()
        batch = await store.create(root, policies=["default"], ttl=60, type="batch")
        assert not batch.has_lease and index_keys(physical) == set()
        forever = await store.create(root, policies=["root"], ttl=0)  # a lease all the same
        timed = await store.create(root, policies=["default"], ttl=60)
        assert index_keys(physical) == {leases.lease_id(forever), leases.lease_id(timed)}
        assert leases.lease_id(timed) == f"auth/token/create/h{timed.hash}"

    asyncio.run(go())


# --- the index lives and dies with its token ----------------------------------------------------


def test_index_entry_is_written_and_deleted_with_the_token() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        root = await store.create_root()
        login = await store.create(None, policies=["default"], ttl=60, path="auth/approle/login")
        child = await store.create(login, policies=["default"], ttl=30)
        assert index_keys(physical) == {leases.lease_id(login), leases.lease_id(child)}
        await store.revoke(login)  # the tree: both, with their lease entries
        assert index_keys(physical) == set()
        other = await store.create(root, policies=["default"], ttl=60)
        await store.revoke_orphan(other)
        assert index_keys(physical) == set()

    asyncio.run(go())


def test_lookup_data_matches_vaults_lease_lookup() -> None:
    async def go() -> None:
        clock = Clock()
        store = await make(clock)
        root = await store.create_root()
        tok = await store.create(root, policies=["default"], ttl=3600)
        lease = leases.lease_id(tok)
        clock.advance(100.6)  # Vault: expire - now rounded to the second
        data = leases.lookup_data(tok, lease, clock())
        assert data["ttl"] == 3499
        assert data["renewable"] is True and data["last_renewal"] is None
        assert data["expire_time"] == tok.lookup_data(clock())["expire_time"]
        assert data["issue_time"] == tok.lookup_data(clock())["issue_time"]
        await store.renew(tok, 7200)
        data = leases.lookup_data(tok, lease, clock())
        assert data["last_renewal"] == tok.lookup_data(clock())["last_renewal"]
        assert data["ttl"] == 7199  # 7199.85 s from the rounded now: Go truncates too
        # a lease that never expires: issue_time and renewable in the token lookup too
        forever = await store.create(root, policies=["root"], ttl=0)
        assert forever.lookup_data(clock())["renewable"] is False
        assert "issue_time" in forever.lookup_data(clock())
        assert "issue_time" not in root.lookup_data(clock())  # no lease at all
        assert leases.lookup_data(forever, "x", clock())["expire_time"] is None

    asyncio.run(go())


def test_find_checks_the_whole_lease_id() -> None:
    async def go() -> None:
        store = await make()
        tok = await store.create(None, policies=["default"], ttl=60, path="auth/approle/login")
        lease = leases.lease_id(tok)
        assert await leases.find(store, lease) is tok
        assert await leases.find(store, f"auth/userpass/login/h{tok.hash}") is None
        assert await leases.find(store, lease + "/") is None
        assert await leases.find(store, "auth/approle/login/nope") is None

    asyncio.run(go())


# --- revocation -----------------------------------------------------------------------------------


def test_revoke_prefix_of_a_mount_takes_its_logins_and_their_children() -> None:
    async def go() -> None:
        physical = Recording()
        store = await make(physical=physical)
        root = await store.create_root()
        logins = [await store.create(None, policies=["default"], ttl=60,
                                     path="auth/approle/login") for _ in range(3)]
        child = await store.create(logins[0], policies=["default"], ttl=30)  # auth/token/...
        grandchild = await store.create(child, policies=["default"], ttl=20)
        near = await store.create(None, policies=["default"], ttl=60, path="auth/approle2/login")
        user = await store.create(None, policies=["default"], ttl=60,
                                  path="auth/userpass/login/alice")
        unrelated = await store.create(root, policies=["default"], ttl=60)
        physical.listed.clear()
        physical.read.clear()

        await handlers._revoke_prefix(store, "auth/approle", force=False, sync=True)
        for t in (*logins, child, grandchild):
            assert await store.lookup(t.id) is None
        for t in (near, user, unrelated, root):
            assert await store.lookup(t.id) is t
        # the index under the prefix only: never a scan of every token
        assert "sys/token/id/" not in physical.listed
        assert all(p.startswith(("sys/token/lease/auth/approle/", "sys/token/parent/"))
                   for p in physical.listed), physical.listed
        assert index_keys(physical) == {leases.lease_id(t) for t in (near, user, unrelated)}

    asyncio.run(go())


def test_revoke_prefix_of_one_lease_and_of_nothing() -> None:
    async def go() -> None:
        store = await make()
        a = await store.create(None, policies=["default"], ttl=60, path="auth/approle/login")
        b = await store.create(None, policies=["default"], ttl=60, path="auth/approle/login")
        await handlers._revoke_prefix(store, leases.lease_id(a), force=False, sync=True)
        assert await store.lookup(a.id) is None and await store.lookup(b.id) is b
        for prefix in ("auth/approl", "auth/app", "auth//approle", "auth/../auth/approle"):
            await handlers._revoke_prefix(store, prefix, force=True, sync=True)
        assert await store.lookup(b.id) is b

    asyncio.run(go())


def test_lazy_revocation_ends_the_lease_and_the_manager_revokes() -> None:
    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        manager = ExpirationManager(store)
        manager.start()
        root = await store.create_root()
        tok = await store.create(root, policies=["default"], ttl=3600)
        forever = await store.create(root, policies=["root"], ttl=0)
        held = await store.lookup(tok.id)
        for t in (tok, forever):
            resp = await call(handlers.revoke, store, "leases/revoke", handlers.REVOKE_FIELDS,
                              {"lease_id": leases.lease_id(t), "sync": False})
            assert resp.status == 202 and resp.data is None and not resp.warnings
        # the lease is over at once, for a copy a request holds too ...
        assert held is not None and held.expired(clock())
        assert index_keys(physical) == {leases.lease_id(tok), leases.lease_id(forever)}
        # ... a lookup revokes it (as any expired token), the manager the others
        assert await store.lookup(forever.id) is None
        assert index_keys(physical) == {leases.lease_id(tok)}
        clock.advance(1)
        while await manager.tick():
            pass
        assert index_keys(physical) == set()
        assert {k for k in physical._data if k.startswith("sys/token/id/")} == {
            "sys/token/id/" + root.hash}

    asyncio.run(go())


def test_a_racing_renewal_cannot_undo_a_lazy_revocation() -> None:
    async def go() -> None:
        clock, physical = Clock(), InmemBackend()
        store = await make(clock, physical)
        tok = await store.create(None, policies=["default"], ttl=600, path="auth/approle/login")
        raw = await store.storage.get("id/" + tok.hash)
        assert raw is not None
        stale = TokenEntry.from_json(raw, id=tok.id, hash=tok.hash)  # read before the revoke
        assert await store.expire_now(tok.hash) is True
        await store.renew(stale, 3600)  # the renewal commits after: its own expiry ...
        assert await store.lookup(tok.id) is None  # ... but the token stays used up
        manager = ExpirationManager(store)
        manager.start()
        clock.advance(3601)
        while await manager.tick():
            pass
        assert index_keys(physical) == set()
        assert await store.expire_now(tok.hash) is False  # gone

    asyncio.run(go())


def test_handlers_errors_and_answers() -> None:
    async def go() -> None:
        store = await make()
        tok = await store.create(None, policies=["default"], ttl=60, path="auth/approle/login")
        fixed = await store.create(None, policies=["default"], ttl=60, renewable=False,
                                   path="auth/approle/login")
        lease = leases.lease_id(tok)

        async def error(handler: Any, path: str, fields: Any, data: dict[str, Any],
                        params: dict[str, str] | None = None) -> str:
            with pytest.raises(UserError) as exc:
                await call(handler, store, path, fields, data, params)
            return exc.value.message

        assert await error(handlers.lookup, "leases/lookup", handlers.LOOKUP_FIELDS, {}) == (
            "lease_id must be specified")
        assert await error(handlers.lookup, "leases/lookup", handlers.LOOKUP_FIELDS,
                           {"lease_id": "nope"}) == "invalid lease"
        assert await error(handlers.renew, "leases/renew", handlers.RENEW_FIELDS,
                           {"lease_id": lease}) == "tokens cannot be renewed through this endpoint"
        assert await error(handlers.renew, "renew/" + lease, handlers.RENEW_FIELDS, {},
                           {"url_lease_id": lease}) == (
            "tokens cannot be renewed through this endpoint")
        assert await error(handlers.renew, "leases/renew", handlers.RENEW_FIELDS,
                           {"lease_id": leases.lease_id(fixed)}) == "lease is not renewable"
        assert await error(handlers.renew, "leases/renew", handlers.RENEW_FIELDS,
                           {"lease_id": "x/y"}) == "lease not found"
        assert await error(handlers.revoke, "leases/revoke/x/", handlers.REVOKE_FIELDS, {},
                           {"url_lease_id": "x/"}) == "cannot write to a path ending in '/'"
        assert await error(handlers.revoke_prefix, "leases/revoke-prefix/auth/",
                           handlers.PREFIX_FIELDS, {}, {"prefix": "auth/"}) == (
            "cannot write to a path ending in '/'")
        # a JSON null `sync` is Go's false: lazily
        resp = await call(handlers.revoke, store, "revoke", handlers.REVOKE_FIELDS,
                          {"lease_id": "unknown/x", "sync": None})
        assert resp.status == 202
        assert await call(handlers.revoke, store, "revoke", handlers.REVOKE_FIELDS,
                          {"lease_id": "unknown/x"}) is None
        data = (await call(handlers.lookup, store, "leases/lookup", handlers.LOOKUP_FIELDS,
                           {"lease_id": lease})).data
        assert set(data) == {"id", "issue_time", "expire_time", "last_renewal", "renewable",
                             "ttl"}
        assert await store.lookup(tok.id) is tok  # nothing above revoked it

    asyncio.run(go())


# --- tokens stored before the index existed; tidy -------------------------------------------------


async def _old_token(store: TokenStore, physical: InmemBackend, path: str) -> TokenEntry:
    """A token as a server without the lease index stored it: no `lease/` entry."""
    tok = await store.create(None, policies=["default"], ttl=600, path=path)
    await physical.delete("sys/token/" + leases.index_key(tok))
    return tok


def test_first_scan_backfills_the_index_and_marks_it_done() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        old = [await _old_token(store, physical, "auth/approle/login") for _ in range(3)]
        await store.create_root()
        assert index_keys(physical) == set()
        manager = ExpirationManager(store, scan_batch=2)
        manager.start()
        while await manager.tick():
            pass
        assert index_keys(physical) == {leases.lease_id(t) for t in old}
        assert physical._data.get("sys/token/" + leases.INDEXED_MARKER) is not None
        # once done, a later scan (a new activation) does not look again
        lost = await _old_token(store, physical, "auth/approle/login")
        manager.stop()
        manager.start()
        while await manager.tick():
            pass
        assert leases.lease_id(lost) not in index_keys(physical)
        # ... which tidy repairs, with the dangling entries the other way round
        await physical.put("sys/token/lease/auth/approle/login/h" + "0" * 64, b"1")
        await physical.put("sys/token/lease/junk/x", b"1")
        await store.tidy()
        assert index_keys(physical) == {leases.lease_id(t) for t in (*old, lost)}

    asyncio.run(go())


def test_backfill_never_indexes_a_revoked_token() -> None:
    async def go() -> None:
        physical = InmemBackend()
        store = await make(physical=physical)
        tok = await _old_token(store, physical, "auth/approle/login")
        await store.revoke(tok)
        assert await leases.ensure_indexed(store, tok.hash) is False
        assert index_keys(physical) == set()

    asyncio.run(go())


def test_collect_walks_the_index_depth_first() -> None:
    async def go() -> None:
        store = await make()
        paths = ["auth/approle/login", "auth/approle/login", "auth/userpass/login/alice",
                 "auth/token/create/r/s", "sys/wrapping/wrap"]
        made = [await store.create(None, policies=["default"], ttl=60, path=p) for p in paths]
        every = await leases.collect(store, "")
        assert sorted(every) == sorted(leases.lease_id(t) for t in made)
        assert sorted(await leases.collect(store, "auth/approle/")) == sorted(
            leases.lease_id(t) for t in made[:2])
        assert await leases.list_folder(store, "auth") == ["approle/", "token/", "userpass/"]
        assert await leases.list_folder(store, "auth//x") == []

    asyncio.run(go())
