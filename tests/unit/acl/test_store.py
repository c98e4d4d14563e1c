"""The ACL policy store (transit/acl/store.py) over in-memory storage."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tests.loop import ticks_while
from transit.acl import ACL, AclPolicyStore, parse_policy
from transit.acl.store import DEFAULT_POLICY
from transit.errors import UserError
from transit.storage.base import StorageView
from transit.storage.inmem import InmemBackend


def acl(*texts: str) -> ACL:
    return ACL([parse_policy(f"p{i}", t) for i, t in enumerate(texts)])


def caps(a: ACL, path: str) -> list[str]:
    return a.capabilities(path)


def store() -> tuple[AclPolicyStore, InmemBackend]:
    backend = InmemBackend()
    return AclPolicyStore(StorageView(backend, "sys/policy/")), backend


def test_store_setup_creates_default_and_keeps_edits():
    async def go():
        s, backend = store()
        await s.setup()
        assert await s.list() == ["default"]
        default = await s.get("default")
        assert default is not None and default.raw == DEFAULT_POLICY
        assert json.loads(await backend.get("sys/policy/default"))["Raw"] == DEFAULT_POLICY
        await s.put("default", 'path "x" { capabilities = ["read"] }')
        s2 = AclPolicyStore(StorageView(backend, "sys/policy/"))
        await s2.setup()
        assert (await s2.get("default")).raw == 'path "x" { capabilities = ["read"] }'
        # response-wrapping is stored but hidden and immutable
        assert (await s2.get("response-wrapping")) is not None
        assert "response-wrapping" not in await s2.list()

    asyncio.run(go())


def test_store_put_get_list_delete_verbatim_and_lowercase():
    async def go():
        s, _ = store()
        await s.setup()
        text = '# keep me\npath "Secret/*"   {  capabilities = ["read"]  }\n\n'
        await s.put("  MyPolicy ", text)
        p = await s.get("mypolicy")
        assert p is not None and p.name == "mypolicy" and p.raw == text
        assert (await s.get("MYPOLICY")) is p
        assert await s.list() == ["default", "mypolicy"]
        await s.delete("MyPolicy")
        assert await s.get("mypolicy") is None
        assert await s.list() == ["default"]
        await s.delete("never-existed")  # not an error

    asyncio.run(go())


def test_store_parses_a_large_policy_in_a_process_and_keeps_the_loop_turning():
    """A policy text over INLINE_PARSE_BYTES (the HCL parser takes ~1 ms per path block) is
    parsed in the process pool, when written and when loaded by another store: the same
    policy as an inline parse, the same error for bad text, and the loop turns meanwhile."""
    from transit import pools
    from transit.acl.store import INLINE_PARSE_BYTES

    blocks = [f'path "secret/data/app{i}/*" {{\n  capabilities = ["read", "list"]\n}}\n'
              for i in range(400)]
    text = "".join(blocks)
    assert len(text) > INLINE_PARSE_BYTES

    async def go():
        s, backend = store()
        await s.setup()
        pools.shutdown()
        stored, ticks = await ticks_while(s.put("big", text))
        assert pools._processes is not None and ticks > 0
        assert stored == parse_policy("big", text)
        other = AclPolicyStore(StorageView(backend, "sys/policy/"))
        assert await other.get("big") == stored  # loaded (and parsed) again, off the loop
        assert caps(await other.acl_for(["big"]), "secret/data/app399/x") == ["list", "read"]
        bad = text + 'path "x" { capabilities = ["read"] bogus = 1 }\n'
        with pytest.raises(UserError) as inline:
            parse_policy("big", bad)
        with pytest.raises(UserError) as pooled:
            await s.put("big", bad)
        assert pooled.value.message == inline.value.message
        assert (await s.get("big")) == stored  # nothing half-written

    try:
        asyncio.run(go())
    finally:
        pools.shutdown()


def test_store_root_and_default_protections():
    async def go():
        s, _ = store()
        await s.setup()
        for name in ("root", "ROOT", "response-wrapping"):
            with pytest.raises(UserError) as exc:
                await s.put(name, 'path "x" { capabilities = ["read"] }')
            assert exc.value.message == f'cannot update "{name.lower()}" policy'
        with pytest.raises(UserError) as exc:
            await s.delete("root")
        assert exc.value.message == 'cannot delete "root" policy'
        with pytest.raises(UserError) as exc:
            await s.delete("default")
        assert exc.value.message == "cannot delete default policy"
        root = await s.get("root")
        assert root is not None and root.raw == "" and root.is_root
        with pytest.raises(UserError):
            await s.put("bad", 'path "x" { capabilities = ["nope"] }')
        assert await s.get("bad") is None

    asyncio.run(go())


def test_store_acl_for_caches_and_invalidates():
    async def go():
        s, _ = store()
        await s.setup()
        await s.put("app", 'path "transit/encrypt/*" { capabilities = ["update"] }')
        a1 = await s.acl_for(["default", "app"])
        assert a1 is await s.acl_for(["app", "default"])
        assert a1.allowed("transit/encrypt/k", "update").allowed
        assert a1.allowed("auth/token/lookup-self", "read").allowed
        await s.put("app", 'path "transit/decrypt/*" { capabilities = ["update"] }')
        a2 = await s.acl_for(["default", "app"])
        assert a2 is not a1
        assert not a2.allowed("transit/encrypt/k", "update").allowed
        assert a2.allowed("transit/decrypt/k", "update").allowed
        await s.delete("app")
        a3 = await s.acl_for(["default", "app"])  # a deleted policy counts as empty
        assert not a3.allowed("transit/decrypt/k", "update").allowed
        assert (await s.acl_for(["root"])).allowed("sys/audit", "update").sudo
        s.invalidate()
        assert (await s.acl_for(["default"])).allowed("sys/capabilities-self", "update").allowed

    asyncio.run(go())


def test_store_base64_is_decoded_by_handler_not_store():
    # the store keeps exactly what it is given; base64 decoding is the HTTP handler's job
    from transit.engines.system.policies import _decode_policy

    text = 'path "x" { capabilities = ["read"] }'
    assert _decode_policy(base64.b64encode(text.encode()).decode()) == text
    assert _decode_policy(text) == text
