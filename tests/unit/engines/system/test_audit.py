"""The sys/audit handlers (transit/engines/system/audit.py) over a real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.unit.audit.helpers import make_req, new_broker
from transit.errors import UserError


def test_sys_audit_handlers(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from transit.engines.system import audit as sys_audit
    from transit.fields import FieldData

    async def go() -> None:
        broker, _ = new_broker()
        b: Any = SimpleNamespace(audit=broker)  # the node's NodeControl port
        req = make_req({})

        def fd(schema: dict[str, Any], **raw: Any) -> FieldData:
            d = FieldData(raw, schema)
            d.validate()
            return d

        log = tmp_path / "a.log"
        opts = {"file_path": str(log), "hmac_accessor": False, "mode": "0600"}
        assert await sys_audit.enable_device(
            b, req, fd(sys_audit.ENABLE_FIELDS, path="file", type="file", options=opts)
        ) is None
        resp = await sys_audit.list_devices(b, req, fd({}))
        assert resp.mirror_data and resp.data == {"file/": {
            "type": "file", "description": "", "local": False, "path": "file/",
            "options": {"file_path": str(log), "hmac_accessor": "0", "mode": "0600"}}}
        h = await sys_audit.audit_hash(b, req, fd(sys_audit.HASH_FIELDS, path="file", input="x"))
        assert h.data == {"hash": await broker.hash("file", "x")}
        with pytest.raises(UserError, match='the "input" parameter is empty'):
            await sys_audit.audit_hash(b, req, fd(sys_audit.HASH_FIELDS, path="file"))
        with pytest.raises(UserError, match="unknown backend type"):
            await sys_audit.enable_device(b, req, fd(sys_audit.ENABLE_FIELDS, path="y"))
        with pytest.raises(UserError, match="Field validation failed"):
            await sys_audit.enable_device(b, req, fd(
                sys_audit.ENABLE_FIELDS, path="y", type="file", options={"file_path": ["a"]}))
        await sys_audit.disable_device(b, req, fd(sys_audit.ENABLE_FIELDS, path="file"))
        assert (await sys_audit.list_devices(b, req, fd({}))).data == {}

    asyncio.run(go())
