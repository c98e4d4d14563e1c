"""Declarative audit devices (the server config's `audit` stanzas, issue 13) in the broker:
`check_declared` validates them like the API, and `setup` reconciles them on the active node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from transit.audit import AuditBroker
from transit.audit.broker import AUDIT_TABLE_KEY, check_declared
from transit.config import AuditDeviceConfig
from transit.errors import ConfigError, UserError
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend


def test_check_declared_validates_options_like_the_api() -> None:
    bad = (AuditDeviceConfig("file", "a/", options={"file_path": "/a", "format": "jsonx"}),)
    with pytest.raises(ConfigError, match='audit "file" "a": unsupported "format"'):
        check_declared(bad)
    bad = (AuditDeviceConfig("file", "a/", options={"file_path": "/a", "mode": "rw"}),)
    with pytest.raises(ConfigError, match="octal file mode"):
        check_declared(bad)


def _decl(path: str, file_path: Path, **extra: str) -> AuditDeviceConfig:
    return AuditDeviceConfig("file", path, "d", False, {"file_path": str(file_path), **extra})


def test_declared_devices_are_reconciled_on_the_active_node(tmp_path: Path) -> None:
    async def go() -> None:
        storage = StorageView(InmemBackend(), "")
        broker = AuditBroker(storage)
        broker.declared = (_decl("conf/", tmp_path / "a.log"),)
        await broker.setup(create=False)  # a standby: never writes
        assert await storage.get(AUDIT_TABLE_KEY) is None and not broker.enabled
        await broker.setup()
        (entry,) = broker.entries()
        assert (entry.path, entry.declared, entry.description) == ("conf/", True, "d")
        assert entry.describe() == {"type": "file", "description": "d", "local": False,
                                    "options": {"file_path": str(tmp_path / "a.log")},
                                    "path": "conf/"}
        table = await storage.get(AUDIT_TABLE_KEY)
        await broker.setup()  # unchanged: no write
        assert await storage.get(AUDIT_TABLE_KEY) == table
        # the API: cannot disable it, cannot enable over it; other devices work beside it
        with pytest.raises(UserError, match="configuration-managed"):
            await broker.disable("conf")
        with pytest.raises(UserError, match="path already in use"):
            await broker.enable("conf", "file", {"file_path": str(tmp_path / "x.log")})
        await broker.enable("api", "file", {"file_path": str(tmp_path / "api.log")})
        # a changed stanza updates in place (same uuid, so the same salt and HMACs)
        broker.declared = (_decl("conf/", tmp_path / "b.log", hmac_accessor="false"),)
        await broker.setup()
        conf = next(e for e in broker.entries() if e.path == "conf/")
        assert conf.uuid == entry.uuid and conf.options["file_path"].endswith("b.log")
        # a stanza on a path the API owns is skipped (error logged), never taken over
        broker.declared = (_decl("conf/", tmp_path / "b.log", hmac_accessor="false"),
                           _decl("api/", tmp_path / "c.log"))
        await broker.setup()
        api = next(e for e in broker.entries() if e.path == "api/")
        assert not api.declared and api.options["file_path"].endswith("api.log")
        # a removed stanza disables its device (and only it)
        broker.declared = ()
        await broker.setup()
        assert [e.path for e in broker.entries()] == ["api/"]
        assert await storage.get(f"audit/{entry.uuid}/salt") is None
        stored = orjson.loads(await storage.get(AUDIT_TABLE_KEY))
        assert [e["path"] for e in stored["entries"]] == ["api/"]
        broker.allow_api_creation = False  # OpenBao's default
        with pytest.raises(UserError, match="cannot enable audit device via API"):
            await broker.enable("api2", "file", {"file_path": str(tmp_path / "d.log")})
        broker.teardown()

    asyncio.run(go())
