"""invalidate_key / invalidate_all against a real Core over in-memory storage.

"Another node" is a second Core over the same InmemBackend (unsealed with the same key), or
a direct write through the barrier: either way the first core's caches go stale until the
invalidation for that storage key is applied.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from transit.cluster.invalidate import invalidate_all, invalidate_key
from transit.core import Core
from transit.engines.transit.backend import TransitBackend
from transit.logical import READ, UPDATE, Request
from transit.storage.inmem import InmemBackend


async def dev_core() -> tuple[Core, bytes]:
    core = Core(InmemBackend())
    _root, unseal_key = await core.setup_dev("root")
    return core, unseal_key


async def other_node(core: Core, unseal_key: bytes) -> Core:
    """A second core over the same physical storage (what another node would see)."""
    other = Core(core.physical)
    await other.start()
    assert await other.seal.unseal(unseal_key)
    await other.post_unseal()
    return other


async def call(core: Core, op: str, path: str, data: dict[str, Any] | None = None) -> Any:
    req = Request(op, "", dict(data or {}), None, client_token="root")
    return await core.handle(req, path)


def transit(core: Core) -> tuple[TransitBackend, str]:
    entry = core.mounts.get("transit/")
    assert entry is not None and isinstance(entry.engine, TransitBackend)
    return entry.engine, entry.uuid


class TestTransitMount:
    def test_policy_key_drops_cached_transit_key(self) -> None:
        async def go() -> None:
            core, _ = await dev_core()
            await call(core, UPDATE, "transit/keys/k1")
            await call(core, UPDATE, "transit/keys/k2")
            engine, mount_uuid = transit(core)
            assert engine.policies.cached("k1") is not None
            await invalidate_key(core, f"logical/{mount_uuid}/policy/k1")
            assert engine.policies.cached("k1") is None
            assert engine.policies.cached("k2") is not None  # only the one key
            await invalidate_key(core, f"logical/{mount_uuid}/archive/k2")
            assert engine.policies.cached("k2") is None
        asyncio.run(go())

    def test_rotation_elsewhere_is_seen_after_invalidation(self) -> None:
        async def go() -> None:
            core, unseal_key = await dev_core()
            await call(core, UPDATE, "transit/keys/k1")
            other = await other_node(core, unseal_key)
            await call(other, UPDATE, "transit/keys/k1/rotate")
            read = await call(core, READ, "transit/keys/k1")
            assert read.data["latest_version"] == 1  # stale cache
            _, mount_uuid = transit(core)
            await invalidate_key(core, f"logical/{mount_uuid}/policy/k1")
            read = await call(core, READ, "transit/keys/k1")
            assert read.data["latest_version"] == 2
        asyncio.run(go())

    def test_config_key_reloads_mount_config(self) -> None:
        async def go() -> None:
            core, unseal_key = await dev_core()
            other = await other_node(core, unseal_key)
            await call(other, UPDATE, "transit/config/keys", {"disable_upsert": True})
            engine, mount_uuid = transit(core)
            assert engine.disable_upsert is False
            await invalidate_key(core, f"logical/{mount_uuid}/config/keys")
            assert engine.disable_upsert is True
        asyncio.run(go())

    def test_unknown_mount_and_kv_mount_are_ignored(self) -> None:
        async def go() -> None:
            core, _ = await dev_core()
            await invalidate_key(core, "logical/no-such-uuid/policy/k1")
            kv = core.mounts.get("secret/")
            assert kv is not None
            await invalidate_key(core, f"logical/{kv.uuid}/data/x")  # KV caches nothing
            await invalidate_key(core, f"logical/{kv.uuid}")
        asyncio.run(go())


class TestCoreCaches:
    def test_token_id_key(self) -> None:
        async def go() -> None:
            core, _ = await dev_core()
            root = await core.tokens.lookup("root")
            assert root is not None
            child = await core.tokens.create(root, policies=["default"])
            assert await core.tokens.lookup(child.id) is not None
            await core.barrier.delete(f"sys/token/id/{child.hash}")  # revoked elsewhere
            assert await core.tokens.lookup(child.id) is not None  # still cached
            await invalidate_key(core, f"sys/token/id/{child.hash}")
            assert await core.tokens.lookup(child.id) is None
            assert await core.tokens.lookup("root") is not None
            # index keys nothing caches: no error
            await invalidate_key(core, "sys/token/accessor/abc")
            await invalidate_key(core, f"sys/token/parent/{root.hash}/{child.hash}")
        asyncio.run(go())

    def test_token_role_key(self) -> None:
        async def go() -> None:
            core, unseal_key = await dev_core()
            await call(core, UPDATE, "auth/token/roles/r1", {"allowed_policies": "a"})
            assert await core.tokens.roles.get("r1") is not None
            other = await other_node(core, unseal_key)
            await other.tokens.roles.delete("r1")
            assert await core.tokens.roles.get("r1") is not None  # stale
            await invalidate_key(core, "sys/token/roles/r1")
            assert await core.tokens.roles.get("r1") is None
        asyncio.run(go())

    def test_token_salt_key_rereads_salt(self) -> None:
        async def go() -> None:
            core, _ = await dev_core()
            before = core.tokens.salt_id("x")
            await invalidate_key(core, "sys/token/salt")
            assert core.tokens.salt_id("x") == before
            assert await core.tokens.lookup("root") is not None
        asyncio.run(go())

    def test_acl_policy_key(self) -> None:
        async def go() -> None:
            core, unseal_key = await dev_core()
            await core.policies.put("p1", 'path "a/*" { capabilities = ["read"] }')
            acl = await core.policies.acl_for(["p1"])
            assert acl.allowed("a/x", "read").allowed
            other = await other_node(core, unseal_key)
            await other.policies.put("p1", 'path "b/*" { capabilities = ["read"] }')
            assert (await core.policies.acl_for(["p1"])).allowed("a/x", "read").allowed  # stale
            await invalidate_key(core, "sys/policy/p1")
            acl = await core.policies.acl_for(["p1"])
            assert not acl.allowed("a/x", "read").allowed
            assert acl.allowed("b/x", "read").allowed
        asyncio.run(go())

    def test_mount_table_key(self) -> None:
        async def go() -> None:
            core, unseal_key = await dev_core()
            other = await other_node(core, unseal_key)
            await other.mounts.mount("t2/", "transit")
            assert core.mounts.get("t2/") is None
            await invalidate_key(core, "core/mounts")
            assert core.mounts.get("t2/") is not None
            await call(core, UPDATE, "t2/keys/x")
        asyncio.run(go())

    def test_audit_key(self, tmp_path: Path) -> None:
        async def go() -> None:
            core, unseal_key = await dev_core()
            other = await other_node(core, unseal_key)
            log_file = tmp_path / "audit.log"
            await other.audit.enable("file/", "file", {"file_path": str(log_file)})
            assert not core.audit.enabled
            await invalidate_key(core, "core/audit")
            assert core.audit.enabled
            await call(core, READ, "sys/mounts")
            core.audit.teardown()
            other.audit.teardown()
            lines = [json.loads(line) for line in log_file.read_text().splitlines()]
            assert any(entry["type"] == "response" for entry in lines)
        asyncio.run(go())

    def test_keyring_key(self) -> None:
        async def go() -> None:
            core, unseal_key = await dev_core()
            other = await other_node(core, unseal_key)
            assert await other.barrier.rotate() == 2
            assert core.barrier.key_status()["term"] == 1
            await invalidate_key(core, "core/keyring")
            assert core.barrier.key_status()["term"] == 2
        asyncio.run(go())

    def test_other_keys_and_sealed_core_are_ignored(self) -> None:
        async def go() -> None:
            core, _ = await dev_core()
            for key in ("core/leader/n1", "core/index-hmac-key", "audit/x/salt", "sys/wrapping/a"):
                await invalidate_key(core, key)
            core.seal.seal()
            await invalidate_key(core, "core/mounts")  # would raise Sealed if it read storage
            await invalidate_all(core)
        asyncio.run(go())


class TestInvalidateAll:
    def test_drops_everything(self) -> None:
        async def go() -> None:
            core, unseal_key = await dev_core()
            await call(core, UPDATE, "transit/keys/k1")
            root = await core.tokens.lookup("root")
            assert root is not None
            child = await core.tokens.create(root, policies=["default"])
            await core.tokens.lookup(child.id)
            other = await other_node(core, unseal_key)
            await other.barrier.rotate()
            await other.mounts.mount("t2/", "transit")
            await core.barrier.delete(f"sys/token/id/{child.hash}")

            await invalidate_all(core)
            assert core.barrier.key_status()["term"] == 2
            assert await core.tokens.lookup(child.id) is None
            assert core.mounts.get("t2/") is not None
            engine, _ = transit(core)
            assert engine.policies.cached("k1") is None
            assert (await call(core, READ, "transit/keys/k1")).data["name"] == "k1"
        asyncio.run(go())

    def test_never_writes_on_a_read_only_barrier(self, tmp_path: Path) -> None:
        """A performance standby's barrier refuses writes: reloading must only read."""
        async def go() -> None:
            core, unseal_key = await dev_core()
            other = await other_node(core, unseal_key)
            await other.audit.enable("file/", "file", {"file_path": str(tmp_path / "a.log")})
            await other.mounts.mount("kv1/", "kv", options={"version": "1"})
            core.barrier.read_only = True
            await invalidate_all(core)
            for key in ("core/mounts", "core/audit", "core/keyring", "sys/token/salt"):
                await invalidate_key(core, key)
            assert core.mounts.get("kv1/") is not None and core.audit.enabled
            core.audit.teardown()
            other.audit.teardown()
        asyncio.run(go())


class TestIdentity:
    def test_identity_change_elsewhere_is_seen_after_invalidation(self) -> None:
        async def go() -> None:
            core, unseal_key = await dev_core()
            created = await call(core, UPDATE, "identity/entity",
                                 {"name": "inv", "policies": ["a"]})
            eid = created.data["id"]
            other = await other_node(core, unseal_key)
            assert await other.identity.identity_policies(eid) == ["a"]
            await call(core, UPDATE, f"identity/entity/id/{eid}", {"policies": ["b"]})
            assert await other.identity.identity_policies(eid) == ["a"]  # stale until told
            await invalidate_key(other, f"sys/identity/entity/{eid}")
            assert await other.identity.identity_policies(eid) == ["b"]
            await call(core, UPDATE, f"identity/entity/id/{eid}", {"policies": ["c"]})
            await invalidate_all(other)
            assert await other.identity.identity_policies(eid) == ["c"]
        asyncio.run(go())
