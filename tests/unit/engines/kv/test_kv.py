"""KV v1 and v2 engines driven in-process through their route tables (no HTTP)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import patch

import pytest

from tests.unit.engines.transit.tx import CREATE, DELETE, LIST, READ, UPDATE
from transit.engines.kv import PATCH, KVv1Backend, KVv2Backend, kv_factory
from transit.engines.kv.common import format_time, now_ns
from transit.engines.mounts import MountTable
from transit.errors import NotFound, UnsupportedOperation, UserError
from transit.gocompat import format_duration
from transit.logical import MOUNT_DEFAULT_TTL, Request, Response
from transit.storage.base import StorageView
from transit.storage.inmem import InmemBackend


class KV:
    def __init__(self, version: str = "2") -> None:
        self.physical = InmemBackend()
        self.storage = StorageView(self.physical, "logical/x/")
        self.b = kv_factory(self.storage, {"version": version})

    async def setup(self) -> KV:
        setup = getattr(self.b, "setup", None)
        if setup is not None:
            await setup()
        return self

    async def call(self, op: str, path: str, data: dict[str, Any] | None = None) -> Response | None:
        return await self.b.handle(Request(op, path, dict(data or {}), self.storage, "secret/"))

    async def put(self, path: str, data: Any, **options: Any) -> Response:
        body: dict[str, Any] = {"data": data}
        if options:
            body["options"] = options
        resp = await self.call(UPDATE, f"data/{path}", body)
        assert resp is not None
        return resp

    async def get(self, path: str, version: int | None = None) -> Response | None:
        q = {"version": str(version)} if version is not None else {}
        return await self.call(READ, f"data/{path}", q)

    async def stored(self) -> list[str]:
        out: list[str] = []
        stack = [""]
        while stack:
            folder = stack.pop()
            for child in await self.storage.list(folder):
                (stack if child.endswith("/") else out).append(folder + child)
        return sorted(k for k in out if k != "kv-format")


async def kv2() -> KV:
    return await KV("2").setup()


def data_of(resp: Response | None) -> dict[str, Any]:
    assert resp is not None and resp.data is not None
    return resp.data


# -- factory --------------------------------------------------------------------------------


def test_factory_picks_version() -> None:
    s = StorageView(InmemBackend(), "x/")
    assert isinstance(kv_factory(s, {"version": "2"}), KVv2Backend)
    assert isinstance(kv_factory(s, {"version": 2}), KVv2Backend)
    assert isinstance(kv_factory(s, {"version": "1"}), KVv1Backend)
    assert isinstance(kv_factory(s, {}), KVv1Backend)


def test_time_and_duration_formats() -> None:
    assert format_time(0) == ""
    assert format_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert format_time(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert format_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert [format_duration(s) for s in (0, 5, 90, 3600, 3661)] == [
        "0s", "5s", "1m30s", "1h0m0s", "1h1m1s"]


# -- v2 data --------------------------------------------------------------------------------


def test_write_read_versions() -> None:
    async def go() -> None:
        kv = await kv2()
        w1 = data_of(await kv.put("a/b", {"k": "v1"}))
        assert w1["version"] == 1 and w1["destroyed"] is False and w1["deletion_time"] == ""
        assert w1["custom_metadata"] is None and w1["created_time"].endswith("Z")
        await kv.put("a/b", {"k": "v2"})
        latest = data_of(await kv.get("a/b"))
        assert latest["data"] == {"k": "v2"} and latest["metadata"]["version"] == 2
        assert data_of(await kv.get("a/b", 1))["data"] == {"k": "v1"}
        assert data_of(await kv.get("a/b", 0))["metadata"]["version"] == 2
        assert data_of(await kv.get("a/b", -1))["metadata"]["version"] == 2
        assert await kv.get("a/b", 9) is None
        assert await kv.get("nope") is None
    asyncio.run(go())


def test_read_bad_version_param() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.put("k", {"a": 1})
        with pytest.raises(UserError, match="version"):
            await kv.call(READ, "data/k", {"version": "abc"})
    asyncio.run(go())


def test_write_null_and_empty_data() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.put("n", None)
        assert data_of(await kv.get("n"))["data"] is None
        await kv.put("e", {})
        assert data_of(await kv.get("e"))["data"] == {}
    asyncio.run(go())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "no data provided"),
        ({"data": "x"}, "error converting input"),
        ({"data": [1]}, "error converting input"),
        ({"data": {"a": 1}, "options": "x"}, "error converting input"),
        ({"data": {"a": 1}, "options": {"cas": "x"}}, "error parsing check-and-set parameter"),
        ({"data": {"a": 1}, "options": {"cas": 1}}, "check-and-set parameter did not match"),
        ({"data": {"a": 1}, "options": {"cas": [1]}}, "error parsing check-and-set parameter"),
    ],
)
def test_write_bad_input_stores_nothing(body: dict[str, Any], message: str) -> None:
    async def go() -> None:
        kv = await kv2()
        with pytest.raises(UserError, match=message):
            await kv.call(UPDATE, "data/bad", body)
        assert await kv.stored() == []

    asyncio.run(go())


def test_cas() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.put("c", {"a": 1}, cas=0)
        with pytest.raises(UserError, match="^check-and-set parameter did not match the current"):
            await kv.put("c", {"a": 2}, cas=0)
        with pytest.raises(UserError, match="did not match"):
            await kv.put("c", {"a": 2}, cas=-1)
        assert data_of(await kv.put("c", {"a": 2}, cas="1"))["version"] == 2
        assert data_of(await kv.get("c"))["data"] == {"a": 2}
    asyncio.run(go())


def test_cas_required_by_config_and_metadata() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.call(UPDATE, "config", {"cas_required": True})
        with pytest.raises(UserError, match="^check-and-set parameter required for this call$"):
            await kv.put("x", {"a": 1})
        assert await kv.stored() == ["config"]
        await kv.put("x", {"a": 1}, cas=0)
        await kv.call(UPDATE, "config", {"cas_required": False})
        await kv.call(UPDATE, "metadata/y", {"cas_required": True})
        with pytest.raises(UserError, match="required"):
            await kv.put("y", {"a": 1})
        await kv.put("y", {"a": 1}, cas=0)
        await kv.put("z", {"a": 1})  # no cas needed elsewhere
    asyncio.run(go())


def test_max_versions_pruning() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.call(UPDATE, "metadata/p", {"max_versions": 2})
        for i in range(1, 4):
            await kv.put("p", {"i": i})
        meta = data_of(await kv.call(READ, "metadata/p"))
        assert meta["current_version"] == 3 and meta["oldest_version"] == 2
        assert sorted(meta["versions"]) == ["2", "3"]
        assert await kv.get("p", 1) is None
        assert len([k for k in await kv.stored() if k.startswith("versions/")]) == 2
        # the mount-wide setting applies when the key sets none; the default keeps 10
        await kv.call(UPDATE, "config", {"max_versions": 3})
        for i in range(5):
            await kv.put("q", {"i": i})
        assert sorted(data_of(await kv.call(READ, "metadata/q"))["versions"]) == ["3", "4", "5"]
        await kv.call(UPDATE, "config", {"max_versions": 0})
        for i in range(12):
            await kv.put("r", {"i": i})
        assert len(data_of(await kv.call(READ, "metadata/r"))["versions"]) == 10
        # shrinking max_versions on the key prunes at once
        await kv.call(UPDATE, "metadata/r", {"max_versions": 1})
        assert list(data_of(await kv.call(READ, "metadata/r"))["versions"]) == ["12"]
    asyncio.run(go())


def test_soft_delete_undelete_destroy() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.put("d", {"a": 1})
        await kv.put("d", {"a": 2})
        assert await kv.call(DELETE, "data/d") is None
        deleted = await kv.get("d")
        assert deleted is not None and deleted.status == 404
        assert deleted.data is not None and deleted.data["data"] is None
        assert deleted.data["metadata"]["deletion_time"] != ""
        assert data_of(await kv.get("d", 1))["data"] == {"a": 1}
        await kv.call(UPDATE, "undelete/d", {"versions": [2]})
        assert data_of(await kv.get("d"))["data"] == {"a": 2}
        await kv.call(UPDATE, "delete/d", {"versions": [1, 2, 99]})
        assert (await kv.get("d", 1)).status == 404  # type: ignore[union-attr]
        await kv.call(UPDATE, "undelete/d", {"versions": "1"})
        assert data_of(await kv.get("d", 1))["data"] == {"a": 1}
        await kv.call(UPDATE, "destroy/d", {"versions": [1]})
        gone = await kv.get("d", 1)
        assert gone is not None and gone.status == 404 and gone.data is not None
        assert gone.data["metadata"]["destroyed"] is True
        await kv.call(UPDATE, "undelete/d", {"versions": [1]})  # destroyed stays destroyed
        assert (await kv.get("d", 1)).status == 404  # type: ignore[union-attr]
        assert len([k for k in await kv.stored() if k.startswith("versions/")]) == 1
        # missing keys are not an error
        assert await kv.call(UPDATE, "delete/none", {"versions": [1]}) is None
        assert await kv.call(DELETE, "data/none") is None
    asyncio.run(go())


@pytest.mark.parametrize("route", ["delete", "undelete", "destroy"])
@pytest.mark.parametrize(
    ("body", "message"),
    [({}, "No version number provided"), ({"versions": []}, "No version number provided"),
     ({"versions": ["1", "a"]}, "'\\[1\\]' cannot parse"), ({"versions": "x"}, "cannot parse"),
     ({"versions": ["\u00b2"]}, "'\\[0\\]' cannot parse"),  # isdigit() but not int()
     ({"versions": [{"a": 1}]}, "cannot parse")],
)
def test_versions_bad_input(route: str, body: dict[str, Any], message: str) -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.put("v", {"a": 1})
        before = data_of(await kv.call(READ, "metadata/v"))
        with pytest.raises(UserError, match=message):
            await kv.call(UPDATE, f"{route}/v", body)
        assert data_of(await kv.call(READ, "metadata/v")) == before

    asyncio.run(go())


def test_patch() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.put("p", {"a": 1, "b": {"c": 1, "d": 2}})
        r = data_of(await kv.call(PATCH, "data/p", {"data": {"a": None, "b": {"c": 9}, "e": 3}}))
        assert r["version"] == 2
        assert data_of(await kv.get("p"))["data"] == {"b": {"c": 9, "d": 2}, "e": 3}
        with pytest.raises(UserError, match="did not match"):
            await kv.call(PATCH, "data/p", {"data": {"x": 1}, "options": {"cas": 1}})
        await kv.call(PATCH, "data/p", {"data": {"x": 1}, "options": {"cas": 2}})
        with pytest.raises(UserError, match="no data provided"):
            await kv.call(PATCH, "data/p", {})
        with pytest.raises(UserError, match="error converting input"):
            await kv.call(PATCH, "data/p", {"data": "x"})
        with pytest.raises(NotFound):  # the API answers 404 {"errors":[]}
            await kv.call(PATCH, "data/missing", {"data": {"a": 1}})
        await kv.call(DELETE, "data/p")
        deleted = await kv.call(PATCH, "data/p", {"data": {"a": 1}})
        assert deleted is not None and deleted.status == 404 and deleted.data is not None
        assert deleted.data["version"] == 3 and deleted.data["deletion_time"]
        assert data_of(await kv.call(READ, "metadata/p"))["current_version"] == 3
    asyncio.run(go())


def test_subkeys() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.put("s", {"a": {"b": {"c": 1}}, "d": [1, 2]})
        assert data_of(await kv.call(READ, "subkeys/s"))["subkeys"] == {"a": {"b": {"c": None}},
                                                                        "d": None}
        r = data_of(await kv.call(READ, "subkeys/s", {"depth": "1"}))
        assert r["subkeys"] == {"a": None, "d": None} and r["metadata"]["version"] == 1
        assert await kv.call(READ, "subkeys/none") is None
    asyncio.run(go())


def test_delete_version_after() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.call(UPDATE, "config", {"delete_version_after": "1h"})
        assert data_of(await kv.call(READ, "config"))["delete_version_after"] == "1h0m0s"
        w = data_of(await kv.put("t", {"a": 1}))
        assert w["deletion_time"] > w["created_time"]
        assert data_of(await kv.get("t"))["data"] == {"a": 1}  # not yet
        await kv.call(UPDATE, "metadata/t", {"delete_version_after": "30m"})
        w2 = data_of(await kv.put("t", {"a": 2}))  # the smaller of key (30m) and mount (1h)
        assert data_of(await kv.call(READ, "metadata/t"))["delete_version_after"] == "30m0s"
        assert w2["deletion_time"] < format_time(now_ns() + 31 * 60 * 10**9)
        # two hours later both versions read as deleted
        later = now_ns() + 2 * 3600 * 10**9
        with patch("transit.engines.kv.store.now_ns", return_value=later):
            gone = await kv.get("t")
            assert gone is not None and gone.status == 404 and gone.data is not None
            assert gone.data["data"] is None and gone.data["metadata"]["version"] == 2
            assert (await kv.get("t", 1)).status == 404  # type: ignore[union-attr]
    asyncio.run(go())


# -- v2 metadata and config ------------------------------------------------------------------


def test_metadata_read_write_patch_delete() -> None:
    async def go() -> None:
        kv = await kv2()
        await kv.call(UPDATE, "metadata/m", {"max_versions": 5, "custom_metadata": {"k": "v", "n": 1}})
        meta = data_of(await kv.call(READ, "metadata/m"))
        assert meta["current_version"] == 0 and meta["max_versions"] == 5
        assert meta["custom_metadata"] == {"k": "v", "n": "1"} and meta["versions"] == {}
        assert set(meta) == {"cas_required", "created_time", "current_version", "custom_metadata",
                             "delete_version_after", "max_versions", "oldest_version",
                             "updated_time", "versions"}
        assert await kv.get("m") is None  # metadata without versions reads as 404
        assert data_of(await kv.put("m", {"a": 1}))["custom_metadata"] == {"k": "v", "n": "1"}
        await kv.call(PATCH, "metadata/m", {"custom_metadata": {"k": None, "x": "y"},
                                            "cas_required": True})
        meta = data_of(await kv.call(READ, "metadata/m"))
        assert meta["custom_metadata"] == {"n": "1", "x": "y"} and meta["cas_required"] is True
        assert meta["max_versions"] == 5
        assert await kv.call(PATCH, "metadata/none", {"max_versions": 1}) is None
        assert await kv.call(DELETE, "metadata/m") is None
        assert await kv.call(READ, "metadata/m") is None
        assert await kv.get("m") is None
        assert await kv.stored() == []
        assert await kv.call(DELETE, "metadata/m") is None
    asyncio.run(go())


def test_metadata_list() -> None:
    async def go() -> None:
        kv = await kv2()
        for p in ("a", "b/c", "b/d/e"):
            await kv.put(p, {"x": 1})
        assert data_of(await kv.call(LIST, "metadata/"))["keys"] == ["a", "b/"]
        assert data_of(await kv.call(LIST, "metadata/b/"))["keys"] == ["c", "d/"]
        assert data_of(await kv.call(LIST, "metadata/b"))["keys"] == ["c", "d/"]
        assert await kv.call(LIST, "metadata/zzz/") is None
    asyncio.run(go())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"custom_metadata": "x"}, "error converting input"),
        ({"custom_metadata": {"k": {"n": 1}}}, "custom_metadata"),
        ({"custom_metadata": {"": "v"}}, 'length of key "" is 0'),
        ({"custom_metadata": {"k" * 129: "v"}}, "is 129 but must be 0 < len\\(key\\) <= 128"),
        ({"custom_metadata": {"k": "v" * 513}}, "is 513 but must be"),
        ({"custom_metadata": {f"k{i}": "v" for i in range(65)}}, "at most 64 keys, provided 65"),
        ({"max_versions": "x"}, "max_versions"),
        ({"cas_required": "maybe"}, "cas_required"),
        ({"delete_version_after": "bogus"}, "delete_version_after"),
        ({"delete_version_after": "-1s"}, "negative"),
    ],
)
def test_metadata_bad_input_stores_nothing(body: dict[str, Any], message: str) -> None:
    async def go() -> None:
        kv = await kv2()
        with pytest.raises(UserError, match=message):
            await kv.call(UPDATE, "metadata/bad", body)
        assert await kv.stored() == []
        await kv.call(UPDATE, "metadata/bad", {"max_versions": 3})
        before = data_of(await kv.call(READ, "metadata/bad"))
        with pytest.raises(UserError, match=message):
            await kv.call(PATCH, "metadata/bad", body)
        assert data_of(await kv.call(READ, "metadata/bad")) == before

    asyncio.run(go())


def test_custom_metadata_multierror_format() -> None:
    async def go() -> None:
        kv = await kv2()
        with pytest.raises(UserError) as err:
            await kv.call(UPDATE, "metadata/m", {"custom_metadata": {"": "v" * 600}})
        assert err.value.message.startswith("2 errors occurred:\n\t* custom_metadata validation")
        assert err.value.message.endswith("\n\n")

    asyncio.run(go())


def test_config() -> None:
    async def go() -> None:
        kv = await kv2()
        assert data_of(await kv.call(READ, "config")) == {
            "cas_required": False, "delete_version_after": "0s", "max_versions": 0}
        await kv.call(UPDATE, "config", {"max_versions": "7", "delete_version_after": 90})
        assert data_of(await kv.call(READ, "config")) == {
            "cas_required": False, "delete_version_after": "1m30s", "max_versions": 7}
        with pytest.raises(UserError, match="max_versions"):
            await kv.call(UPDATE, "config", {"max_versions": "x"})
        assert data_of(await kv.call(READ, "config"))["max_versions"] == 7
    asyncio.run(go())


def test_invalid_v2_path_and_existence() -> None:
    async def go() -> None:
        kv = await kv2()
        resp = await kv.call(READ, "foo")
        assert resp is not None and resp.status == 404 and resp.data is None
        assert resp.warnings and "vault kv get" in resp.warnings[0]
        put = await kv.call(UPDATE, "foo", {"a": 1})
        assert put is not None and "vault kv put" in put.warnings[0]  # type: ignore[index]
        assert await kv.stored() == []
        assert await kv.b.exists(Request(UPDATE, "data/e", {}, kv.storage)) is False
        assert await kv.b.exists(Request(UPDATE, "metadata/e", {}, kv.storage)) is False
        await kv.put("e", {"a": 1})
        assert await kv.b.exists(Request(UPDATE, "data/e", {}, kv.storage)) is True
        assert await kv.b.exists(Request(UPDATE, "metadata/e", {}, kv.storage)) is True
        # CREATE is served by the UPDATE handler
        assert data_of(await kv.call(CREATE, "data/new", {"data": {"a": 1}}))["version"] == 1
        with pytest.raises(UnsupportedOperation):
            await kv.call(LIST, "data/")
    asyncio.run(go())


# -- v1 -------------------------------------------------------------------------------------


def test_v1_crud_and_list() -> None:
    async def go() -> None:
        kv = await KV("1").setup()
        assert await kv.call(UPDATE, "a/b", {"x": 1, "path": "p", "ttl": "1h"}) is None
        r = await kv.call(READ, "a/b")
        assert r is not None and r.data == {"x": 1, "path": "p", "ttl": "1h"}
        assert r.lease_duration == 3600
        await kv.call(UPDATE, "c", {"y": "z"})
        # no ttl in the data: the mount's default, filled in by the core (MOUNT_DEFAULT_TTL)
        assert (await kv.call(READ, "c")).lease_duration == MOUNT_DEFAULT_TTL  # type: ignore[union-attr]
        assert data_of(await kv.call(LIST, "")) == {"keys": ["a/", "c"]}
        assert data_of(await kv.call(LIST, "a/")) == {"keys": ["b"]}
        assert await kv.call(LIST, "zz/") is None
        assert await kv.b.exists(Request(UPDATE, "a/b", {}, kv.storage)) is True
        assert await kv.b.exists(Request(UPDATE, "a/x", {}, kv.storage)) is False
        assert await kv.call(DELETE, "a/b") is None
        assert await kv.call(READ, "a/b") is None
        with pytest.raises(UserError, match="missing data fields"):
            await kv.call(UPDATE, "e", {})
        with pytest.raises(UserError, match="ending in '/'"):
            await kv.call(UPDATE, "dir/", {"a": 1})
        assert await kv.stored() == ["c"]
    asyncio.run(go())


# -- mount table: tune (v1 -> v2 upgrade) and remount --------------------------------------


async def _table() -> tuple[MountTable, InmemBackend]:
    physical = InmemBackend()
    table = MountTable(physical, {"kv": kv_factory, "generic": kv_factory})
    await table.load([])
    return table, physical


async def _call(table: MountTable, op: str, path: str, data: dict[str, Any] | None = None
                ) -> Response | None:
    routed = table.route(path)
    assert routed is not None
    entry, inner = routed
    assert entry.engine is not None
    return await entry.engine.handle(Request(op, inner, dict(data or {}), entry.storage))


def test_upgrade_v1_to_v2_keeps_data() -> None:
    async def go() -> None:
        table, physical = await _table()
        await table.mount("kv", "kv", options={"version": "1"})
        await _call(table, UPDATE, "kv/a/b", {"x": 1})
        await _call(table, UPDATE, "kv/c", {"y": 2})
        await table.tune("kv", options={"version": "2"}, reload=True)
        assert isinstance(table.get("kv").engine, KVv2Backend)  # type: ignore[union-attr]
        assert data_of(await _call(table, READ, "kv/data/a/b"))["data"] == {"x": 1}
        meta = data_of(await _call(table, READ, "kv/metadata/c"))
        assert meta["current_version"] == 1 and meta["oldest_version"] == 1
        assert data_of(await _call(table, LIST, "kv/metadata/"))["keys"] == ["a/", "c"]
        # the table persisted the new options; a restart keeps the v2 engine and data
        again = MountTable(physical, {"kv": kv_factory})
        await again.load([])
        assert again.get("kv").options == {"version": "2"}  # type: ignore[union-attr]
        assert data_of(await _call(again, READ, "kv/data/c"))["data"] == {"y": 2}
    asyncio.run(go())


def test_remount_moves_data() -> None:
    async def go() -> None:
        table, physical = await _table()
        await table.mount("one", "kv", options={"version": "2"})
        await table.mount("other", "kv")
        await _call(table, UPDATE, "one/data/s", {"data": {"a": 1}})
        await table.remount("one", "two/deep")
        assert table.get("one") is None and table.route("one/data/s") is None
        assert data_of(await _call(table, READ, "two/deep/data/s"))["data"] == {"a": 1}
        with pytest.raises(UserError, match='no matching mount at "one/"'):
            await table.remount("one", "three")
        with pytest.raises(UserError, match='path already in use at "other/"'):
            await table.remount("two/deep", "other")
        with pytest.raises(UserError, match="cannot remount to destination sys/x/"):
            await table.remount("two/deep", "sys/x")
        again = MountTable(physical, {"kv": kv_factory})
        await again.load([])
        assert data_of(await _call(again, READ, "two/deep/data/s"))["data"] == {"a": 1}
    asyncio.run(go())


def test_tune_unknown_mount() -> None:
    async def go() -> None:
        table, _ = await _table()
        with pytest.raises(UserError, match='tune of path "x/" failed: no mount entry found'):
            await table.tune("x", description="d")
    asyncio.run(go())


def test_sys_remount_and_status_handlers() -> None:
    async def go() -> None:
        from types import SimpleNamespace

        from transit.engines.system import mounts as sysmounts
        from transit.fields import FieldData

        table, _ = await _table()
        await table.mount("src", "kv")
        b: Any = SimpleNamespace(mounts=table)
        fields = sysmounts.REMOUNT_FIELDS
        resp = await sysmounts.remount(b, None, FieldData({"from": "src", "to": "dst"}, fields))  # type: ignore[arg-type]
        mid = resp.data["migration_id"]  # type: ignore[index]
        st = await sysmounts.remount_status(
            b, None, FieldData({"migration_id": mid}, sysmounts.REMOUNT_STATUS_FIELDS))  # type: ignore[arg-type]
        assert st is not None and st.data is not None
        assert st.data["migration_info"]["source_mount"] == "src/"
        assert st.data["migration_info"]["status"] == "success"
        assert await sysmounts.remount_status(
            b, None, FieldData({"migration_id": "x"}, sysmounts.REMOUNT_STATUS_FIELDS)) is None  # type: ignore[arg-type]
        with pytest.raises(UserError, match="both 'from' and 'to'"):
            await sysmounts.remount(b, None, FieldData({"from": "dst"}, fields))  # type: ignore[arg-type]
    asyncio.run(go())
