"""The transit engine: one mount's route table and its shared state.

This is the one visible table of the engine's routes (spec §4). Each path group lives in its
own module (`keys.py`, `encrypt.py`, ...), which holds the handlers and their field schemas;
handlers take the backend as their first argument.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from transit.crypto.policy import Policy
from transit.engines.framework import Engine, ExistenceCheck, Handler, Route, name, opt
from transit.engines.transit import (
    backup,
    byok,
    datakey,
    encrypt,
    export,
    hmac,
    keys,
    mountconfig,
    rewrap,
    sign,
    tools,
)
from transit.engines.transit.policies import ARCHIVE_PREFIX, KEEP, POLICY_PREFIX, PolicyStore
from transit.engines.transit.ports import TransitPort
from transit.fields import FieldData
from transit.logical import DELETE, LIST, READ, UPDATE, Request

# A transit handler (or existence check): the mount's port first, then request and fields.
TransitHandler = Callable[[TransitPort, Request, FieldData], Awaitable[Any]]

log = logging.getLogger("transit.engines.transit")


class TransitBackend(Engine):
    mount_type = "transit"

    def __init__(self, storage: Any, options: dict[str, Any] | None = None) -> None:
        self.storage = storage
        self.policies = PolicyStore(storage)
        self.disable_upsert = False
        self.cache_size = 0
        b: TransitPort = self

        def h(fn: TransitHandler) -> Handler:
            return partial(fn, b)

        def e(fn: Callable[[TransitPort, Request, FieldData], Awaitable[bool]]) -> ExistenceCheck:
            return partial(fn, b)

        super().__init__(
            [
                Route(r"keys/?", {LIST: h(keys.list_keys)}, keys.LIST_FIELDS),
                Route(
                    f"keys/{name('name')}",
                    {READ: h(keys.read_key), UPDATE: h(keys.create_key), DELETE: h(keys.delete_key)},
                    keys.KEY_FIELDS,
                ),
                Route(f"keys/{name('name')}/config", {UPDATE: h(keys.update_config)}, keys.CONFIG_FIELDS),
                Route(f"keys/{name('name')}/rotate", {UPDATE: h(keys.rotate_key)}, keys.ROTATE_FIELDS),
                Route(f"keys/{name('name')}/trim", {UPDATE: h(keys.trim_key)}, keys.TRIM_FIELDS),
                Route(f"keys/{name('name')}/import", {UPDATE: h(byok.import_key)}, byok.IMPORT_FIELDS),
                Route(
                    f"keys/{name('name')}/import_version",
                    {UPDATE: h(byok.import_version)},
                    byok.IMPORT_VERSION_FIELDS,
                ),
                Route(r"wrapping_key", {READ: h(byok.read_wrapping_key)}, {}),
                Route(
                    f"byok-export/{name('destination')}/{name('source')}{opt('version')}",
                    {READ: h(byok.byok_export)},
                    byok.BYOK_EXPORT_FIELDS,
                ),
                Route(
                    f"encrypt/{name('name')}",
                    {UPDATE: h(encrypt.encrypt)},
                    encrypt.ENCRYPT_FIELDS,
                    existence_check=e(encrypt.key_exists),
                ),
                Route(f"decrypt/{name('name')}", {UPDATE: h(encrypt.decrypt)}, encrypt.DECRYPT_FIELDS),
                Route(f"rewrap/{name('name')}", {UPDATE: h(rewrap.rewrap)}, rewrap.REWRAP_FIELDS),
                Route(
                    f"datakey/{name('plaintext')}/{name('name')}",
                    {UPDATE: h(datakey.datakey)},
                    datakey.DATAKEY_FIELDS,
                ),
                Route(
                    # Vault: OptionalGenericNameRegex("source") + OptionalParamRegex("urlbytes"),
                    # so "random/a/b/c" is source "a", bytes "b/c" (a 400, not a 404).
                    rf"random(?:/{name('source')})?{opt('urlbytes')}",
                    {UPDATE: h(tools.random)},
                    tools.RANDOM_FIELDS,
                ),
                Route(f"hash{opt('urlalgorithm')}", {UPDATE: h(tools.hash)}, tools.HASH_FIELDS),
                Route(f"hmac/{name('name')}{opt('urlalgorithm')}", {UPDATE: h(hmac.hmac)}, hmac.HMAC_FIELDS),
                Route(f"sign/{name('name')}{opt('urlalgorithm')}", {UPDATE: h(sign.sign)}, sign.SIGN_FIELDS),
                Route(
                    f"verify/{name('name')}{opt('urlalgorithm')}",
                    {UPDATE: h(sign.verify)},
                    sign.VERIFY_FIELDS,
                ),
                Route(
                    f"export/{name('type')}/{name('name')}{opt('version')}",
                    {READ: h(export.export)},
                    export.EXPORT_FIELDS,
                ),
                Route(f"backup/{name('name')}", {READ: h(backup.backup)}, backup.BACKUP_FIELDS),
                Route(f"restore{opt('name')}", {UPDATE: h(backup.restore)}, backup.RESTORE_FIELDS),
                Route(
                    r"config/keys",
                    {READ: h(mountconfig.read_keys_config), UPDATE: h(mountconfig.write_keys_config)},
                    mountconfig.KEYS_CONFIG_FIELDS,
                ),
                Route(
                    r"cache-config",
                    {READ: h(mountconfig.read_cache_config), UPDATE: h(mountconfig.write_cache_config)},
                    mountconfig.CACHE_CONFIG_FIELDS,
                ),
            ]
        )

    async def setup(self) -> None:
        """Load the mount-level configuration from storage (called once per mount)."""
        await mountconfig.load(self)

    async def invalidate(self, key: str) -> None:
        """HA: another node changed `key` of this mount's storage (performance standbys)."""
        for prefix in (POLICY_PREFIX, ARCHIVE_PREFIX):
            if key.startswith(prefix):
                self.policies.invalidate(key[len(prefix):])
                return
        if key.startswith("config/"):
            await mountconfig.load(self)

    async def invalidate_all(self) -> None:
        """HA: drop every cached key and re-read the mount configuration."""
        self.policies.invalidate()
        await mountconfig.load(self)

    async def periodic(self) -> None:
        """Auto-rotation (spec §2): rotate every key whose latest version is older than its
        `auto_rotate_period`. Runs from the core's periodic loop."""
        for key_name in await self.policies.list():
            if key_name.endswith("/"):
                continue  # "import/" holds the BYOK wrapping key, never auto-rotated
            try:
                await self._auto_rotate(key_name)
            except Exception as exc:  # one bad key must not stop the rotation of the others
                log.error("auto-rotation of key %s failed: %r", key_name, exc)

    async def _auto_rotate(self, key_name: str) -> None:
        policy = await self.policies.get(key_name)
        if policy is None or not policy.needs_auto_rotate():
            return

        def rotate(current: Policy | None) -> tuple[Any, None]:
            # decided on the stored policy: another worker or node may have rotated it
            if current is None or not current.needs_auto_rotate():
                return KEEP, None
            current.rotate()
            return current, None

        await self.policies.modify(key_name, rotate, durable=True)
