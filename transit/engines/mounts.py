"""The mount table: which engine serves which path prefix, persisted in storage.

Each mount owns the storage corner `logical/<uuid>/`; removing a mount wipes it. The table
itself is stored as JSON at `core/mounts`. Routing is a longest-prefix match over mount paths.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from transit.engines.framework import Engine
from transit.errors import UserError
from transit.storage import Backend, StorageView

MOUNTS_KEY = "core/mounts"
# Paths an engine can never be mounted at or under (they belong to the core).
RESERVED = ("sys/", "auth/", "cubbyhole/", "identity/")

# Tunable config keys shown only once set (audit HMAC lists, listing visibility, headers).
OPTIONAL_CONFIG = (
    "audit_non_hmac_request_keys", "audit_non_hmac_response_keys", "listing_visibility",
    "passthrough_request_headers", "allowed_response_headers",
)

# factory(storage, options) -> engine; options are the mount's `options` (e.g. KV version)
EngineFactory = Callable[[StorageView, dict[str, Any]], Engine]


@dataclass
class MountEntry:
    path: str  # with trailing "/"
    type: str
    uuid: str
    accessor: str
    description: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] | None = None
    local: bool = False
    seal_wrap: bool = False
    engine: Engine | None = field(default=None, repr=False, compare=False)
    storage: StorageView | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "type": self.type, "uuid": self.uuid, "accessor": self.accessor,
            "description": self.description, "config": self.config, "options": self.options,
            "local": self.local, "seal_wrap": self.seal_wrap,
        }

    def describe(self) -> dict[str, Any]:
        """The entry as `GET sys/mounts` shows it."""
        cfg: dict[str, Any] = {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False}
        cfg.update({k: v for k, v in self.config.items() if k in cfg or k in OPTIONAL_CONFIG})
        return {
            "accessor": self.accessor, "config": cfg, "description": self.description,
            "external_entropy_access": False, "local": self.local, "options": self.options,
            "plugin_version": "", "running_sha256": "", "running_plugin_version": "", "deprecation_status": "supported",
            "seal_wrap": self.seal_wrap, "type": self.type, "uuid": self.uuid,
        }


def normalize(path: str) -> str:
    path = path.strip("/")
    return path + "/" if path else ""


class MountTable:
    """Mounts of logical engines; `route()` is on every request, so it stays cheap."""

    def __init__(self, backend: Backend, factories: dict[str, EngineFactory]) -> None:
        self._backend = backend
        self._factories = factories
        self._entries: dict[str, MountEntry] = {}
        self._by_length: list[MountEntry] = []
        self.loaded: bytes | None = None  # the stored table this one was built from
        # sys/remount results by migration id (moves finish at once; kept for status reads)
        self.migrations: dict[str, dict[str, Any]] = {}

    # -- lookup -----------------------------------------------------------------------------
    def route(self, path: str) -> tuple[MountEntry, str] | None:
        """The mount serving `path` (no leading slash) and the path inside it."""
        for entry in self._by_length:
            p = entry.path
            if path.startswith(p):
                return entry, path[len(p):]
            if path == p[:-1]:
                return entry, ""
        return None

    def get(self, path: str) -> MountEntry | None:
        return self._entries.get(normalize(path))

    def entries(self) -> list[MountEntry]:
        return sorted(self._entries.values(), key=lambda e: e.path)

    # -- changes ----------------------------------------------------------------------------
    async def load(self, defaults: list[tuple[str, str, str]]) -> None:
        """Read the table from storage; on first start, create `defaults` (path, type, desc)."""
        raw = await self._backend.get(MOUNTS_KEY)
        self.loaded = raw
        if raw is None:
            for path, typ, desc in defaults:
                await self.mount(path, typ, description=desc)
            return
        self._entries = {}
        for item in orjson.loads(raw):
            entry = MountEntry(**item)
            await self._activate(entry)
            self._entries[entry.path] = entry
        self._reindex()

    async def mount(
        self, path: str, typ: str, *, description: str = "", config: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None, local: bool = False, seal_wrap: bool = False,
    ) -> MountEntry:
        path = normalize(path)
        if not path:
            raise UserError("missing path")
        if typ not in self._factories:
            raise UserError(f'plugin not found in the catalog: {typ}')
        for reserved in RESERVED:
            if path.startswith(reserved):
                raise UserError(f'cannot mount under "{reserved}"')
        for existing in self._entries:
            if path.startswith(existing) or existing.startswith(path):
                raise UserError(f"path is already in use at {existing}")
        entry = MountEntry(
            path=path, type=typ, uuid=str(uuid.uuid4()),
            accessor=f"{typ}_{secrets.token_hex(4)}", description=description,
            config=dict(config or {}), options=options, local=local, seal_wrap=seal_wrap,
        )
        await self._activate(entry)
        self._entries[path] = entry
        try:
            await self._persist()
        except BaseException:
            del self._entries[path]
            raise
        self._reindex()
        return entry

    async def unmount(self, path: str) -> None:
        path = normalize(path)
        entry = self._entries.get(path)
        if entry is None:
            return  # Vault answers 204 for a path with no mount
        del self._entries[path]
        await self._persist()
        self._reindex()
        if entry.storage is not None:
            await entry.storage.clear()

    async def tune(
        self, path: str, *, description: str | None = None,
        config: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
        reload: bool = False,
    ) -> MountEntry:
        """Change a mount's description, config (merged) and options; persist. With `reload`
        the engine is rebuilt from the new options (a KV v1 -> v2 upgrade)."""
        entry = self._entries.get(normalize(path))
        if entry is None:
            raise UserError(f'tune of path "{normalize(path)}" failed: no mount entry found')
        before = (entry.description, dict(entry.config), entry.options)
        if description is not None:
            entry.description = description
        if config:
            entry.config.update(config)
        if options is not None:
            entry.options = options
        try:
            await self._persist()
        except BaseException:
            entry.description, entry.config, entry.options = before
            raise
        if reload:
            await self._activate(entry)
        return entry

    async def remount(self, src: str, dst: str) -> MountEntry:
        """Move a mount to a new path; its storage (keyed by uuid) and engine come along."""
        src, dst = normalize(src), normalize(dst)
        entry = self._entries.get(src)
        if entry is None:
            raise UserError(f'no matching mount at "{src}"')
        if not dst:
            raise UserError("missing path")
        for reserved in RESERVED:
            if dst.startswith(reserved):
                raise UserError(f"cannot remount to destination {dst}")
        for existing in self._entries:
            if existing != src and (dst.startswith(existing) or existing.startswith(dst)):
                raise UserError(f'path already in use at "{existing}"')
        if dst.startswith(src) or src.startswith(dst):
            raise UserError(f'path already in use at "{src}"')
        del self._entries[src]
        entry.path = dst
        self._entries[dst] = entry
        try:
            await self._persist()
        except BaseException:
            del self._entries[dst]
            entry.path = src
            self._entries[src] = entry
            raise
        self._reindex()
        return entry

    # -- internals --------------------------------------------------------------------------
    async def _activate(self, entry: MountEntry) -> None:
        entry.storage = StorageView(self._backend, f"logical/{entry.uuid}/")
        engine = self._factories[entry.type](entry.storage, entry.options or {})
        setup = getattr(engine, "setup", None)
        if setup is not None:
            await setup()
        entry.engine = engine

    async def _persist(self) -> None:
        raw = orjson.dumps([e.to_json() for e in self._entries.values()])
        await self._backend.put(MOUNTS_KEY, raw)
        self.loaded = raw

    async def changed(self) -> bool:
        """Whether storage holds another table than the one loaded (one read, no rebuild)."""
        return await self._backend.get(MOUNTS_KEY) != self.loaded

    def _reindex(self) -> None:
        self._by_length = sorted(self._entries.values(), key=lambda e: len(e.path), reverse=True)
