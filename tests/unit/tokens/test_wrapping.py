"""Response wrapping (transit/tokens/wrapping.py) over a token store on in-memory storage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.unit.tokens.helpers import Clock, make
from transit.errors import UserError
from transit.logical import UPDATE, Request, Response
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend
from transit.tokens import TokenStore
from transit.tokens.wrapping import Wrapper


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
