"""keys/*, config/keys, cache-config and the PolicyStore, driven through the route table."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.unit.engines.transit.tx import DELETE, LIST, Env
from transit.errors import InternalError, UserError


async def env() -> Env:
    return await Env().setup()


# --- create / read --------------------------------------------------------------------------

def test_create_default_key_returns_keyinfo_and_stores_policy_and_archive() -> None:
    async def go() -> None:
        e = await env()
        resp = await e.write("keys/k")
        assert resp is not None and resp.warnings is None
        info = resp.data
        assert info["name"] == "k"
        assert info["type"] == "aes256-gcm96"
        assert info["latest_version"] == 1
        assert info["min_decryption_version"] == 1
        assert info["min_encryption_version"] == 0
        assert info["supports_encryption"] is True
        assert set(info["keys"]) == {"1"}
        assert await e.stored() == ["archive/k", "policy/k"]
        read = await e.read("keys/k")
        assert read is not None and read.data == info
    asyncio.run(go())


def test_create_existing_key_warns_and_changes_nothing() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        resp = await e.write("keys/k", {"type": "chacha20-poly1305", "exportable": True})
        assert resp.warnings == ["key k already existed"]
        assert resp.data["type"] == "aes256-gcm96"
        assert resp.data["exportable"] is False
    asyncio.run(go())


@pytest.mark.parametrize(
    ("data", "exc", "message"),
    [
        ({"auto_rotate_period": "10m"}, UserError,
         "auto rotate period must be 0 to disable or at least an hour"),
        ({"auto_rotate_period": -5}, UserError,
         "Field validation failed: error converting input -5 for field \"auto_rotate_period\": "
         "cannot provide negative value '-5'"),
        ({"convergent_encryption": True}, UserError,
         "convergent encryption requires derivation to be enabled"),
        ({"type": "aes512"}, UserError, "unknown key type aes512"),
        ({"key_size": 64}, UserError, "key_size is not valid for algorithm aes256-gcm96"),
        ({"type": "hmac", "key_size": 16}, UserError, "invalid key_size 16"),
        ({"type": "hmac", "key_size": 513}, UserError, "invalid key_size 513"),
        ({"type": "hmac"}, InternalError,
         "invalid key size for HMAC key, must be between 32 and 512 bytes"),
        ({"type": "ecdsa-p256", "derived": True}, InternalError,
         "key derivation and convergent encryption not supported for keys of type ecdsa-p256"),
        ({"type": "ed25519", "derived": True, "convergent_encryption": True}, InternalError,
         "convergent encryption not supported for keys of type ed25519"),
        ({"derived": "maybe"}, UserError, "Field validation failed"),
        ({"key_size": "big"}, UserError, "Field validation failed"),
    ],
)
def test_create_errors_store_nothing(data: dict, exc: type, message: str) -> None:
    async def go() -> None:
        e = await env()
        with pytest.raises(exc) as info:
            await e.write("keys/bad", data)
        assert str(info.value).startswith(message)
        assert await e.stored() == []
        assert await e.read("keys/bad") is None

    asyncio.run(go())


def test_create_with_cli_style_strings_and_duration() -> None:
    async def go() -> None:
        e = await env()
        resp = await e.write(
            "keys/k", {"type": "hmac", "key_size": "64", "exportable": "true", "auto_rotate_period": "2h"}
        )
        assert resp.data["type"] == "hmac"
        assert resp.data["key_size"] == 64
        assert resp.data["exportable"] is True
        assert resp.data["auto_rotate_period"] == 7200
        assert "keys" not in resp.data
    asyncio.run(go())


def test_read_missing_is_none_and_bad_context_is_400() -> None:
    async def go() -> None:
        e = await env()
        assert await e.read("keys/nope") is None
        await e.write("keys/k", {"type": "ed25519", "derived": True})
        with pytest.raises(UserError, match="^failed to base64-decode context$"):
            await e.read("keys/k", {"context": "!!"})
        plain = await e.read("keys/k")
        assert plain.data["keys"]["1"]["public_key"] == ""
        derived = await e.read("keys/k", {"context": "Y3R4"})
        assert derived.data["keys"]["1"]["public_key"] != ""
    asyncio.run(go())


# --- list -----------------------------------------------------------------------------------

def test_list_sorted_and_folder_for_slashed_names() -> None:
    async def go() -> None:
        e = await env()
        empty = await e.call(LIST, "keys/")
        assert not empty.data.get("keys")
        for n in ("b", "a", "c-1"):
            await e.write(f"keys/{n}")
        # The BYOK wrapping key lives at policy/import/wrapping-key: listed as a folder.
        await e.storage.put("policy/import/wrapping-key", b"{}")
        resp = await e.call(LIST, "keys/")
        assert resp.data == {"keys": ["a", "b", "c-1", "import/"]}
    asyncio.run(go())


# --- delete ---------------------------------------------------------------------------------

def test_delete_rules() -> None:
    async def go() -> None:
        e = await env()
        with pytest.raises(UserError) as info:
            await e.call(DELETE, "keys/nope")
        assert info.value.message == "error deleting policy nope: could not delete key; not found"

        await e.write("keys/k")
        with pytest.raises(UserError) as info:
            await e.call(DELETE, "keys/k")
        assert info.value.message == "error deleting policy k: deletion is not allowed for this key"
        assert await e.read("keys/k") is not None

        await e.write("keys/k/config", {"deletion_allowed": True})
        assert await e.call(DELETE, "keys/k") is None
        assert await e.stored() == []
        assert await e.read("keys/k") is None
        assert e.b.policies.cached("k") is None
    asyncio.run(go())


# --- config ---------------------------------------------------------------------------------

def test_config_versions_and_warning() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        await e.write("keys/k/rotate")
        await e.write("keys/k/rotate")
        resp = await e.write("keys/k/config", {"min_decryption_version": 0})
        assert resp.warnings == [
            "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
        ]
        assert resp.data["min_decryption_version"] == 1

        resp = await e.write("keys/k/config", {"min_decryption_version": 2, "min_encryption_version": 3})
        assert resp.data["min_decryption_version"] == 2
        assert resp.data["min_encryption_version"] == 3
        assert sorted(resp.data["keys"]) == ["2", "3"]  # v1 dropped from the live map

        # Persisted: a fresh backend over the same storage sees it.
        other = await Env(e.physical).setup()
        again = await other.read("keys/k")
        assert again.data["min_decryption_version"] == 2
        assert sorted(again.data["keys"]) == ["2", "3"]
    asyncio.run(go())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"min_decryption_version": 5},
         "cannot set min decryption version of 5, latest key version is 2"),
        ({"min_encryption_version": 5},
         "cannot set min encryption version of 5, latest key version is 2"),
        ({"min_decryption_version": 2, "min_encryption_version": 1},
         "cannot set min encryption/decryption values; min encryption version of 1 must be "
         "greater than or equal to min decryption version of 2"),
        ({"auto_rotate_period": 60}, "auto rotate period must be 0 to disable or at least an hour"),
        ({"min_decryption_version": "two"}, "Field validation failed"),
    ],
)
def test_config_errors_leave_key_unchanged(data: dict, message: str) -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        await e.write("keys/k/rotate")
        before = (await e.read("keys/k")).data
        stored_before = await e.physical.get("logical/x/policy/k")
        with pytest.raises(UserError) as info:
            await e.write("keys/k/config", data)
        assert str(info.value).startswith(message)
        assert (await e.read("keys/k")).data == before
        assert await e.physical.get("logical/x/policy/k") == stored_before

    asyncio.run(go())


def test_config_missing_key_and_one_way_flags() -> None:
    async def go() -> None:
        e = await env()
        with pytest.raises(UserError, match="^no existing key named k could be found$"):
            await e.write("keys/k/config", {"deletion_allowed": True})
        assert await e.stored() == []
        await e.write("keys/k")
        resp = await e.write("keys/k/config", {"exportable": True, "allow_plaintext_backup": True})
        assert resp.data["exportable"] is True and resp.data["allow_plaintext_backup"] is True
        resp = await e.write("keys/k/config", {"exportable": False, "allow_plaintext_backup": False})
        assert resp.data["exportable"] is True and resp.data["allow_plaintext_backup"] is True
    asyncio.run(go())


# --- rotate / trim --------------------------------------------------------------------------

def test_rotate() -> None:
    async def go() -> None:
        e = await env()
        with pytest.raises(UserError, match="^key not found$"):
            await e.write("keys/k/rotate")
        await e.write("keys/k")
        resp = await e.write("keys/k/rotate")
        assert resp.data["latest_version"] == 2
        assert sorted(resp.data["keys"]) == ["1", "2"]
    asyncio.run(go())


def test_rotate_hmac_keeps_key_size() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/h", {"type": "hmac", "key_size": 48})
        resp = await e.write("keys/h/rotate")
        assert resp.data["latest_version"] == 2 and resp.data["key_size"] == 48
    asyncio.run(go())


def test_trim_checks_and_success() -> None:
    async def go() -> None:
        e = await env()
        with pytest.raises(UserError, match="^invalid key name$"):
            await e.write("keys/k/trim", {"min_available_version": 1})
        await e.write("keys/k")
        for _ in range(3):
            await e.write("keys/k/rotate")
        with pytest.raises(UserError, match="^missing min_available_version$"):
            await e.write("keys/k/trim")
        with pytest.raises(UserError, match="when minimum encryption version is not set"):
            await e.write("keys/k/trim", {"min_available_version": 2})
        await e.write("keys/k/config", {"min_decryption_version": 3, "min_encryption_version": 3})
        with pytest.raises(UserError, match="cannot be greater than minmum encryption version"):
            await e.write("keys/k/trim", {"min_available_version": 4})
        resp = await e.write("keys/k/trim", {"min_available_version": 3})
        assert resp.data["min_available_version"] == 3
        with pytest.raises(UserError, match="cannot be decremented"):
            await e.write("keys/k/trim", {"min_available_version": 2})
        # Trimmed versions are gone for good: lowering min_decryption_version is refused.
        with pytest.raises(UserError, match="should not be less th"):
            await e.write("keys/k/config", {"min_decryption_version": 1})
    asyncio.run(go())


# --- nothing half-written -------------------------------------------------------------------

def test_failed_save_leaves_cache_and_storage_untouched() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        policy_before = await e.physical.get("logical/x/policy/k")
        e.counting.fail_puts = True
        for path, data in (("keys/k/rotate", None), ("keys/k/config", {"deletion_allowed": True})):
            with pytest.raises(OSError):
                await e.write(path, data)
        e.counting.fail_puts = False
        info = (await e.read("keys/k")).data
        assert info["latest_version"] == 1
        assert info["deletion_allowed"] is False
        assert await e.physical.get("logical/x/policy/k") == policy_before
    asyncio.run(go())


def test_failed_create_leaves_no_key() -> None:
    async def go() -> None:
        e = await env()
        e.counting.fail_puts = True
        e.counting.fail_put_prefix = "logical/x/policy/"  # the archive write succeeds, policy fails
        with pytest.raises(OSError):
            await e.write("keys/k")
        e.counting.fail_puts = False
        assert await e.read("keys/k") is None
        assert e.b.policies.cached("k") is None
    asyncio.run(go())


# --- PolicyStore ----------------------------------------------------------------------------

def test_cache_hit_does_not_touch_storage() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        e.counting.calls.clear()
        for _ in range(3):
            assert await e.b.policies.get("k") is not None
            await e.read("keys/k")
        assert e.counting.calls == []
    asyncio.run(go())


def test_policy_loads_from_storage_once_then_cached() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        other = await Env(e.physical).setup()
        other.counting.calls.clear()
        p1 = await other.b.policies.get("k")
        p2 = await other.b.policies.get("k")
        assert p1 is p2 and p1.latest_version == 1
        assert [c for c in other.counting.calls if c[0] == "get"] == [
            ("get", "logical/x/policy/k"), ("get", "logical/x/archive/k")
        ]
        other.b.policies.invalidate("k")
        assert other.b.policies.cached("k") is None
        assert (await other.b.policies.get("k")).latest_version == 1
    asyncio.run(go())


def test_concurrent_rotations_are_serialised() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        await asyncio.gather(*(e.write("keys/k/rotate") for _ in range(8)))
        info = (await e.read("keys/k")).data
        assert info["latest_version"] == 9
        fresh = await Env(e.physical).setup()
        assert (await fresh.read("keys/k")).data["latest_version"] == 9
    asyncio.run(go())


def test_load_racing_a_save_does_not_cache_stale_policy() -> None:
    async def go() -> None:
        e = await env()
        await e.write("keys/k")
        store = e.b.policies
        store.invalidate()

        gate = asyncio.Event()
        real_get = e.counting.get

        async def slow_get(key: str) -> bytes | None:
            value = await real_get(key)
            if key.endswith("policy/k"):
                await gate.wait()  # hold the old bytes while a rotation lands
            return value

        e.counting.get = slow_get  # type: ignore[method-assign]
        reader = asyncio.create_task(store.get("k"))
        await asyncio.sleep(0)
        e.counting.get = real_get  # type: ignore[method-assign]
        await e.write("keys/k/rotate")
        gate.set()
        stale = await reader
        assert stale.latest_version == 1  # what it read...
        assert (await store.get("k")).latest_version == 2  # ...did not replace the newer cache
    asyncio.run(go())


# --- mount config ---------------------------------------------------------------------------

def test_keys_config_roundtrip_and_persistence() -> None:
    async def go() -> None:
        e = await env()
        assert (await e.read("config/keys")).data == {"disable_upsert": False}
        resp = await e.write("config/keys", {"disable_upsert": "true"})
        assert resp.data == {"disable_upsert": True}
        assert orjson.loads(await e.physical.get("logical/x/config/keys")) == {"disable_upsert": True}
        fresh = await Env(e.physical).setup()
        assert fresh.b.disable_upsert is True
        assert (await fresh.read("config/keys")).data == {"disable_upsert": True}
        with pytest.raises(UserError, match="Field validation failed"):
            await fresh.write("config/keys", {"disable_upsert": "sometimes"})
        assert (await fresh.read("config/keys")).data == {"disable_upsert": True}
    asyncio.run(go())


def test_cache_config() -> None:
    async def go() -> None:
        e = await env()
        assert (await e.read("cache-config")).data == {"size": 0}
        for bad in (5, -1):
            with pytest.raises(UserError, match="^size must be 0 or a value greater or equal to 10$"):
                await e.write("cache-config", {"size": bad})
        assert await e.physical.get("logical/x/config/cache") is None
        assert (await e.write("cache-config", {"size": 25})).data == {"size": 25}
        assert (await e.write("cache-config", {"size": 0})).data == {"size": 0}
        assert (await e.write("cache-config", {"size": "40"})).data == {"size": 40}
        fresh = await Env(e.physical).setup()
        assert (await fresh.read("cache-config")).data == {"size": 40}
    asyncio.run(go())


def test_auto_rotation_goes_on_past_a_key_it_cannot_handle() -> None:
    """A stored key whose auto_rotate_period overflows the date arithmetic (written before
    the bound existed, or by hand) is logged and skipped: the keys after it still rotate."""
    async def go() -> None:
        import json

        e = await Env().setup()
        for name in ("a-broken", "b-due"):
            await e.write(f"keys/{name}", {})
        for name, period in (("a-broken", 10**15), ("b-due", 3600)):
            raw = json.loads(await e.storage.get(f"policy/{name}"))
            raw["auto_rotate_period"] = period * 1_000_000_000  # stored as Go nanoseconds
            raw["keys"]["1"]["time"] = "2001-01-01T00:00:00Z"
            raw["keys"]["1"]["creation_time"] = 978307200
            await e.storage.put(f"policy/{name}", json.dumps(raw).encode())
        e.b.policies.invalidate()
        broken = await e.b.policies.get("a-broken")
        assert broken is not None and broken.auto_rotate_period == 10**15
        await e.b.periodic()
        assert (await e.read("keys/b-due")).data["latest_version"] == 2
        assert (await e.read("keys/a-broken")).data["latest_version"] == 1
    asyncio.run(go())
