"""The audit broker (transit/audit/broker.py): entry shapes and hashing, fail-closed logging
across devices, and the device table and salts."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.loop import ticks_while
from tests.unit.audit.helpers import (
    ACCESSOR,
    PLAINTEXT,
    TOKEN,
    Decision,
    expected,
    lines,
    make_req,
    new_broker,
    salt_of,
)
from transit import pools
from transit.audit import AuditBroker
from transit.audit.broker import AUDIT_TABLE_KEY
from transit.audit.hashing import SMALL_BYTES, Hasher, small
from transit.errors import AuditFailed, InternalError, UserError
from transit.logical import Response
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend


def test_entries_shape_and_hashing(tmp_path: Path) -> None:
    async def go() -> None:
        broker, storage = new_broker()
        log = tmp_path / "audit.log"
        await broker.enable("file", "file", {"file_path": str(log)})
        assert broker.enabled
        req = make_req()
        await broker.log_request(req, Decision())
        resp = Response(data={"ciphertext": "vault:v1:abc", "key_version": 1},
                        warnings=["w"], wrap_info=None)
        await broker.log_response(req, Decision(), resp, "")
        salt = await salt_of(storage, broker, "file/")
        first, second = lines(log)
        assert list(first) == ["time", "type", "auth", "request", "error"]
        assert first["type"] == "request" and second["type"] == "response"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", first["time"])
        auth = first["auth"]
        assert auth == {
            "client_token": expected(salt, TOKEN), "accessor": expected(salt, ACCESSOR),
            "display_name": "token-app", "policies": ["app", "default"],
            "token_policies": ["app", "default"], "metadata": {"team": "x"}, "entity_id": "",
            "token_type": "service", "token_ttl": 3600,
            "token_issue_time": "2023-11-14T22:13:20Z",
            "policy_results": {"allowed": True,
                               "granting_policies": [{"name": "app", "type": "acl"}]},
        }
        assert first["request"] == {
            "id": req.id, "operation": "update", "mount_point": "transit/",
            "mount_type": "transit", "mount_accessor": "transit_abcd1234",
            "client_token": expected(salt, TOKEN),
            "client_token_accessor": expected(salt, ACCESSOR), "namespace": {"id": "root"},
            "path": "transit/encrypt/app", "data": {"plaintext": expected(salt, PLAINTEXT)},
            "remote_address": "10.0.0.9", "remote_port": 51234,
        }
        assert first["error"] == ""
        assert second["auth"] == first["auth"] and second["request"] == first["request"]
        assert list(second) == ["time", "type", "auth", "request", "response", "error"]
        assert second["response"] == {
            "mount_type": "transit",
            "data": {"ciphertext": expected(salt, "vault:v1:abc"), "key_version": 1},
            "warnings": ["w"],
        }
        text = log.read_text()
        assert TOKEN not in text and PLAINTEXT not in text and "vault:v1:abc" not in text
        assert ACCESSOR not in text

    asyncio.run(go())


def test_response_auth_wrap_info_error_and_elide(tmp_path: Path) -> None:
    async def go() -> None:
        broker, storage = new_broker()
        log = tmp_path / "a.log"
        await broker.enable("f", "file", {"file_path": str(log), "hmac_accessor": "false",
                                          "elide_list_responses": "true"})
        salt = await salt_of(storage, broker, "f/")
        req = make_req({}, op="list", path="keys")
        resp = Response(
            data={"keys": ["a", "b", "c"]},
            auth={"client_token": "hvs.child", "accessor": "acc2", "policies": ["p"]},
            wrap_info={"token": "hvs.wrap", "accessor": "wacc", "ttl": 60},
        )
        await broker.log_response(req, None, resp, "1 error occurred")
        (entry,) = lines(log)
        assert entry["error"] == "1 error occurred"
        assert "policy_results" not in entry["auth"]
        assert entry["auth"]["accessor"] == ACCESSOR  # hmac_accessor=false
        r = entry["response"]
        assert r["data"] == {"keys": 3}
        assert r["auth"] == {"client_token": expected(salt, "hvs.child"), "accessor": "acc2",
                             "policies": ["p"]}
        assert r["wrap_info"] == {"token": expected(salt, "hvs.wrap"), "accessor": "wacc",
                                  "ttl": 60}
        await broker.log_response(req, None, None, "permission denied")
        assert lines(log)[1]["response"] == {"mount_type": "transit", "data": None}

    asyncio.run(go())


def test_log_raw_and_prefix(tmp_path: Path) -> None:
    async def go() -> None:
        broker, _ = new_broker()
        log = tmp_path / "raw.log"
        await broker.enable("raw", "file", {"file_path": str(log), "log_raw": "true",
                                            "prefix": "@cee:"})
        await broker.log_request(make_req(), Decision())
        text = log.read_text()
        assert text.startswith("@cee:{")
        entry = orjson.loads(text[len("@cee:"):])
        assert entry["request"]["data"] == {"plaintext": PLAINTEXT}
        assert entry["auth"]["client_token"] == TOKEN

    asyncio.run(go())


def test_non_hmac_keys_from_mount_config(tmp_path: Path) -> None:
    @dataclass
    class Mount:
        config: dict[str, Any]

    class Mounts:
        def get(self, path: str) -> Mount | None:
            cfg = {"audit_non_hmac_request_keys": ["plaintext"],
                   "audit_non_hmac_response_keys": ["ciphertext"]}
            return Mount(cfg) if path == "transit/" else None

    async def go() -> None:
        broker, storage = new_broker()
        broker.mounts = Mounts()
        log = tmp_path / "a.log"
        await broker.enable("file", "file", {"file_path": str(log)})
        salt = await salt_of(storage, broker, "file/")
        req = make_req({"plaintext": PLAINTEXT, "context": "ctx"})
        await broker.log_response(req, Decision(), Response(data={"ciphertext": "vault:v1:x",
                                                                 "plaintext": "leak?"}), "")
        (entry,) = lines(log)
        assert entry["request"]["data"] == {"plaintext": PLAINTEXT,
                                            "context": expected(salt, "ctx")}
        assert entry["response"]["data"] == {"ciphertext": "vault:v1:x",
                                             "plaintext": expected(salt, "leak?")}

    asyncio.run(go())


def test_no_devices_logs_nothing_and_never_fails() -> None:
    async def go() -> None:
        broker, _ = new_broker()
        assert not broker.enabled
        await broker.log_request(make_req(), Decision())
        await broker.log_response(make_req(), Decision(), None, "")

    asyncio.run(go())


def test_small_counts_values_and_bytes() -> None:
    assert small({"plaintext": PLAINTEXT, "context": ""}) and small(None) and small({})
    assert small({"batch_input": [{"plaintext": "x"}] * 200})
    assert not small({"batch_input": [{"plaintext": "x"}] * 300})  # over 512 values
    assert not small({"blob": "x" * (SMALL_BYTES + 1)})
    assert not small([[["x"] * 100] * 10] * 10)


def test_large_entries_are_built_off_the_loop_and_hash_the_same(tmp_path: Path) -> None:
    """A 3,000-item batch: its entries are built on the thread pool (the loop keeps turning)
    and are exactly what hashing on the loop gives; a small request never leaves the loop."""

    async def go() -> None:
        broker, storage = new_broker()
        log = tmp_path / "audit.log"
        await broker.enable("file", "file", {"file_path": str(log)})
        salt = await salt_of(storage, broker, "file/")
        items = [{"plaintext": f"item {i}"} for i in range(3000)]
        results = [{"ciphertext": f"vault:v1:{i}", "key_version": 1} for i in range(3000)]
        req = make_req({"batch_input": items})
        assert (await ticks_while(broker.log_request(req, Decision())))[1] > 0
        resp = Response(data={"batch_results": results})
        assert (await ticks_while(broker.log_response(req, Decision(), resp, "")))[1] > 0
        small_req = make_req()
        assert (await ticks_while(broker.log_request(small_req, Decision())))[1] == 0
        first, second, third = lines(log)
        h = Hasher(salt)
        assert first["request"]["data"] == h.data({"batch_input": items})
        assert first["request"]["data"]["batch_input"][7] == {
            "plaintext": expected(salt, "item 7")}
        assert second["response"]["data"] == h.data({"batch_results": results})
        assert second["request"] == first["request"]
        assert third["type"] == "request"
        assert third["request"]["data"] == {"plaintext": expected(salt, PLAINTEXT)}

    try:
        asyncio.run(go())
    finally:
        pools.shutdown()


def test_fail_closed_when_the_only_device_breaks(tmp_path: Path) -> None:
    """Log rotation gone wrong: the file is moved away, a directory takes its place and the
    SIGHUP reopen fails; every entry now fails for real and the broker raises."""

    async def go() -> None:
        broker, _ = new_broker()
        log = tmp_path / "logs" / "audit.log"
        await broker.enable("file", "file", {"file_path": str(log)})
        await broker.log_request(make_req(), Decision())
        shutil.rmtree(tmp_path / "logs")
        (tmp_path / "logs").mkdir()
        log.mkdir()  # the file path is now a directory
        broker.reload()
        with pytest.raises(AuditFailed) as exc:
            await broker.log_request(make_req(), Decision())
        assert isinstance(exc.value, InternalError)
        with pytest.raises(AuditFailed, match="response"):
            await broker.log_response(make_req(), Decision(), None, "")
        # the path comes back: the device recovers by itself on the next write
        log.rmdir()
        await broker.log_request(make_req(), Decision())
        assert [e["type"] for e in lines(log)] == ["request"]

    asyncio.run(go())


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_one_failing_device_and_one_working_device(tmp_path: Path) -> None:
    async def go() -> None:
        broker, _ = new_broker()
        good = tmp_path / "good.log"
        await broker.enable("full", "file", {"file_path": "/dev/full"})  # ENOSPC on write
        with pytest.raises(AuditFailed):
            await broker.log_request(make_req(), Decision())
        await broker.enable("good", "file", {"file_path": str(good)})
        await broker.log_request(make_req(), Decision())
        await broker.log_response(make_req(), Decision(), Response(data={"a": "b"}), "")
        assert [e["type"] for e in lines(good)] == ["request", "response"]
        await broker.disable("good")
        with pytest.raises(AuditFailed):
            await broker.log_request(make_req(), Decision())
        assert await broker.disable("full") is True
        await broker.log_request(make_req(), Decision())  # nothing enabled: passes

    asyncio.run(go())


def test_enable_validation_and_nothing_stored_on_failure(tmp_path: Path) -> None:
    async def go() -> None:
        broker, storage = new_broker()
        with pytest.raises(UserError, match="file sink creation failed"):
            await broker.enable("bad", "file", {"file_path": str(tmp_path)})
        with pytest.raises(UserError, match="unknown backend type"):
            await broker.enable("x", "socket", {})
        with pytest.raises(UserError, match="file_path"):
            await broker.enable("x", "file", {})
        assert await storage.get(AUDIT_TABLE_KEY) is None
        assert await storage.list("audit/") == []
        assert not broker.enabled
        await broker.enable("a/b", "file", {"file_path": "discard"})
        for clash in ("a/b", "a", "a/b/c", "/a/b/"):
            with pytest.raises(UserError, match="path already in use"):
                await broker.enable(clash, "file", {"file_path": "discard"})
        assert [e.path for e in broker.entries()] == ["a/b/"]
        assert await broker.disable("nope") is False

    asyncio.run(go())


def test_audit_hash_reproduces_logged_values(tmp_path: Path) -> None:
    async def go() -> None:
        broker, storage = new_broker()
        log = tmp_path / "a.log"
        await broker.enable("file", "file", {"file_path": str(log)})
        await broker.log_request(make_req(), Decision())
        (entry,) = lines(log)
        assert await broker.hash("file", PLAINTEXT) == entry["request"]["data"]["plaintext"]
        assert await broker.hash("/file/", TOKEN) == entry["request"]["client_token"]
        salt = await salt_of(storage, broker, "file/")
        assert await broker.hash("file", "x") == expected(salt, "x")
        with pytest.raises(UserError, match="unknown audit backend"):
            await broker.hash("other", "x")

    asyncio.run(go())


def test_table_and_salt_persist_across_brokers(tmp_path: Path) -> None:
    async def go() -> None:
        backend = InmemBackend()
        first = AuditBroker(StorageView(backend, ""))
        log = tmp_path / "a.log"
        await first.enable("file", "file", {"file_path": str(log), "hmac_accessor": "false"},
                           description="main", local=False)
        await first.enable("second", "file", {"file_path": "discard"})
        h1 = await first.hash("file", "value")
        first.teardown()
        assert not first.enabled

        again = AuditBroker(StorageView(backend, ""))
        await again.setup()
        assert [e.describe() for e in again.entries()] == [
            {"type": "file", "description": "main",
             "options": {"file_path": str(log), "hmac_accessor": "false"}, "local": False,
             "path": "file/"},
            {"type": "file", "description": "", "options": {"file_path": "discard"},
             "local": False, "path": "second/"},
        ]
        assert await again.hash("file", "value") == h1  # same salt
        assert await again.hash("second", "value") != h1  # salts are per device
        await again.log_request(make_req(), Decision())
        (entry,) = lines(log)
        assert entry["auth"]["accessor"] == ACCESSOR  # options survived
        table = orjson.loads(await backend.get(AUDIT_TABLE_KEY) or b"")
        assert table["type"] == "audit" and len(table["entries"]) == 2

        # disable removes the row and the salt
        uuid = next(e.uuid for e in again.entries() if e.path == "second/")
        await again.disable("second")
        assert await backend.get(f"audit/{uuid}/salt") is None
        third = AuditBroker(StorageView(backend, ""))
        await third.setup()
        assert [e.path for e in third.entries()] == ["file/"]

    asyncio.run(go())


def test_setup_with_an_unopenable_file_fails_closed_instead_of_crashing(tmp_path: Path) -> None:
    async def go() -> None:
        backend = InmemBackend()
        first = AuditBroker(StorageView(backend, ""))
        log = tmp_path / "gone" / "a.log"
        await first.enable("file", "file", {"file_path": str(log)})
        first.teardown()
        shutil.rmtree(tmp_path / "gone")
        (tmp_path / "gone").mkdir()
        log.mkdir()
        again = AuditBroker(StorageView(backend, ""))
        await again.setup()
        assert again.enabled
        with pytest.raises(AuditFailed):
            await again.log_request(make_req(), Decision())

    asyncio.run(go())


def test_error_messages_do_not_carry_request_secrets_in_clear(tmp_path: Path) -> None:
    """An error that quotes a request value (Go's `error converting input map[pw:hunter2]`)
    is logged with that value hashed, as it is in the request data."""

    async def go() -> None:
        broker, storage = new_broker()
        log = tmp_path / "audit.log"
        await broker.enable("file", "file", {"file_path": str(log)})
        salt = await salt_of(storage, broker, "file/")
        req = make_req({"plaintext": {"pw": "hunter2"}, "context": "abc"})
        error = ('Field validation failed: error converting input map[pw:hunter2] for field '
                 '"plaintext": abc')
        await broker.log_request(req, Decision(), error)
        await broker.log_response(req, Decision(), None, error)
        first, second = lines(log)
        scrubbed = error.replace("hunter2", expected(salt, "hunter2"))
        assert first["error"] == second["error"] == scrubbed  # "abc" is too short to scrub
        assert "hunter2" not in log.read_text()

    asyncio.run(go())
