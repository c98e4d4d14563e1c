"""The sys/policy and sys/policies/acl handlers (transit/engines/system/policies.py) over a
real ACL policy store and a fake of the node's port."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from transit.acl import AclPolicyStore
from transit.errors import UserError
from transit.storage.base import StorageView
from transit.storage.inmem import InmemBackend


def store() -> tuple[AclPolicyStore, InmemBackend]:
    backend = InmemBackend()
    return AclPolicyStore(StorageView(backend, "sys/policy/")), backend


class _FakeTokens:
    def __init__(self, entries: dict[str, Any]) -> None:
        self.entries = entries

    async def lookup(self, token: str) -> Any:
        return self.entries.get(token)

    async def lookup_accessor(self, accessor: str) -> Any:
        return next((e for e in self.entries.values() if e.accessor == accessor), None)


def _backend() -> Any:
    from types import SimpleNamespace

    s, _ = store()
    asyncio.run(s.setup())
    tok = SimpleNamespace(policies=["default", "app"], accessor="acc1")
    core = SimpleNamespace(policies=s, tokens=_FakeTokens({"t1": tok}))
    return core, tok  # the node's NodeControl port, as far as these handlers use it


def _call(b: Any, fn: Any, path: str, raw: dict[str, Any], fields: Any, token: Any = None):
    from transit.fields import FieldData
    from transit.logical import Request

    req = Request("update", path, raw, None, token=token)
    fd = FieldData(raw, fields)
    fd.validate()
    return asyncio.run(fn(b, req, fd))


def test_handlers_policy_crud_and_legacy_shapes():
    from transit.engines.system import policies as h

    b, _ = _backend()
    text = 'path "transit/*" { capabilities = ["read"] }'
    enc = base64.b64encode(text.encode()).decode()
    assert (
        _call(
            b, h.write_policy, "policies/acl/App", {"name": "App", "policy": enc}, h.POLICY_FIELDS
        )
        is None
    )
    r = _call(b, h.read_policy, "policies/acl/app", {"name": "app"}, h.POLICY_FIELDS)
    assert r.data == {"name": "app", "policy": text}
    r = _call(b, h.list_policies, "policies/acl", {}, {})
    assert r.data == {"keys": ["app", "default", "root"]} and not r.mirror_data
    r = _call(b, h.list_policies_legacy, "policy", {}, {})
    assert r.data == {"keys": ["app", "default", "root"], "policies": ["app", "default", "root"]}
    assert r.mirror_data
    r = _call(b, h.read_policy_legacy, "policy/app", {"name": "app"}, h.LEGACY_POLICY_FIELDS)
    assert r.data == {"name": "app", "rules": text}
    r = _call(
        b,
        h.write_policy_legacy,
        "policy/app",
        {"name": "app", "rules": text},
        h.LEGACY_POLICY_FIELDS,
    )
    assert r.warnings == ["'rules' is deprecated, please use 'policy' instead"]
    assert _call(b, h.read_policy, "policies/acl/nope", {"name": "nope"}, h.POLICY_FIELDS) is None
    with pytest.raises(UserError, match="'policy' parameter not supplied or empty"):
        _call(b, h.write_policy, "policies/acl/x", {"name": "x"}, h.POLICY_FIELDS)
    with pytest.raises(UserError, match='cannot update "root" policy'):
        _call(
            b,
            h.write_policy,
            "policies/acl/root",
            {"name": "root", "policy": text},
            h.POLICY_FIELDS,
        )
    _call(b, h.delete_policy, "policies/acl/app", {"name": "app"}, h.POLICY_FIELDS)
    assert _call(b, h.list_policies, "policies/acl", {}, {}).data == {"keys": ["default", "root"]}


def test_handlers_capabilities():
    from types import SimpleNamespace

    from transit.engines.system import policies as h

    b, tok = _backend()
    asyncio.run(
        b.policies.put("app", 'path "transit/keys/*" { capabilities = ["read", "list"] }')
    )
    F = h.CAPABILITIES_FIELDS
    r = _call(
        b, h.capabilities_self, "capabilities-self", {"paths": ["transit/keys/a", "x"]}, F, tok
    )
    assert r.data == {"transit/keys/a": ["list", "read"], "x": ["deny"]}
    r = _call(b, h.capabilities_self, "capabilities-self", {"path": "transit/keys/a"}, F, tok)
    assert r.data == {"transit/keys/a": ["list", "read"], "capabilities": ["list", "read"]}
    root = SimpleNamespace(policies=["root"])
    r = _call(b, h.capabilities_self, "capabilities-self", {"paths": ["a"]}, F, root)
    assert r.data["capabilities"] == ["root"]
    r = _call(b, h.capabilities, "capabilities", {"token": "t1", "paths": ["transit/keys/a"]}, F)
    assert r.data["capabilities"] == ["list", "read"]
    r = _call(
        b,
        h.capabilities_accessor,
        "capabilities-accessor",
        {"accessor": "acc1", "paths": "x,transit/keys/b"},
        F,
    )
    assert r.data == {"x": ["deny"], "transit/keys/b": ["list", "read"]}
    for fn, raw, msg in [
        (h.capabilities, {"token": "nope", "paths": ["a"]}, "invalid token"),
        (h.capabilities_accessor, {"accessor": "nope", "paths": ["a"]}, "invalid accessor"),
        (h.capabilities_accessor, {"paths": ["a"]}, "missing accessor"),
        (h.capabilities_self, {}, "paths must be supplied"),
    ]:
        with pytest.raises(UserError) as exc:
            _call(b, fn, "capabilities", raw, F, tok)
        assert exc.value.message == msg
    empty = SimpleNamespace(policies=[])
    r = _call(b, h.capabilities_self, "capabilities-self", {"paths": ["a"]}, F, empty)
    assert r.data["a"] == ["deny"]
