"""The mount table: which engine serves which path prefix, persisted in storage.

Each mount owns the storage corner `logical/<uuid>/`; removing a mount wipes it. The table
itself is stored as JSON at `core/mounts`. The auth-method table is the same machinery with
another `TableKind` (`AUTH`): stored at `core/auth`, each mount's storage at `auth/<uuid>/`. Routing is a longest-prefix match over mount paths.

Every change (mount, unmount, tune, remount) is a read-modify-write of the stored table
(DESIGN §7): under this process's lock it re-reads `core/mounts` from storage, brings the
in-memory table up to it when another worker or node changed it (keeping the engines of
unchanged mounts), validates and applies the change, and commits guarded on the version read.
If another writer got there first the change is re-run on the newer table; on any failure the
in-memory table is put back to what storage holds.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from transit.engines.framework import Engine
from transit.errors import Conflict, UserError
from transit.storage import Backend, StorageView
from transit.storage.base import Write
from transit.storage.update import ATTEMPTS

MOUNTS_KEY = "core/mounts"
AUTH_KEY = "core/auth"  # the auth method table (Vault's `coreAuthConfigPath`)
# Paths an engine can never be mounted at or under (they belong to the core).
RESERVED = ("sys/", "auth/", "cubbyhole/", "identity/")


@dataclass(frozen=True, slots=True)
class TableKind:
    """What differs between the secret-engine table and the auth-method table (Vault keeps
    both in one `MountTable` type too): where the table is stored, the storage corner of each
    mount (`logical/<uuid>/` or `auth/<uuid>/`), the accessor prefix, the paths no mount may
    take, and the router prefix of every mount path (`auth/` for auth methods)."""

    key: str
    storage_prefix: str
    accessor_prefix: str
    reserved: tuple[str, ...]
    route_prefix: str = ""


SECRETS = TableKind(MOUNTS_KEY, "logical/", "", RESERVED)
# Auth paths are relative to `auth/`: `userpass/` routes `auth/userpass/...`. `token/` is the
# built-in token store (not in the table, always listed).
AUTH = TableKind(AUTH_KEY, "auth/", "auth_", ("token/",), "auth/")

# Tunable config keys shown only once set (audit HMAC lists, listing visibility, headers).
OPTIONAL_CONFIG = (
    "audit_non_hmac_request_keys", "audit_non_hmac_response_keys", "listing_visibility",
    "passthrough_request_headers", "allowed_response_headers",
)

# Config keys only auth mounts have (shown by sys/auth once set).
AUTH_CONFIG = ("token_type", "user_lockout_config")

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
        """The entry as `GET sys/mounts` (or `sys/auth`: with `token_type`) shows it."""
        cfg: dict[str, Any] = {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False}
        cfg.update({k: v for k, v in self.config.items()
                    if k in cfg or k in OPTIONAL_CONFIG or k in AUTH_CONFIG})
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

    def __init__(self, backend: Backend, factories: dict[str, EngineFactory],
                 kind: TableKind = SECRETS) -> None:
        self._backend = backend
        self._factories = factories
        self.kind = kind
        self._entries: dict[str, MountEntry] = {}
        self._by_length: list[MountEntry] = []
        self.loaded: bytes | None = None  # the stored table this one was built from
        # sys/remount results by migration id (moves finish at once; kept for status reads)
        self.migrations: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

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
    async def load(
        self, defaults: list[tuple[str, str, str]], *, keep_engines: bool = False
    ) -> None:
        """Read the table from storage; on first start, create `defaults` (path, type, desc).

        Every engine is built afresh (empty caches), unless `keep_engines` (another worker or
        node changed the table: mounts that did not change keep their engine). The new table
        replaces the old one only once it is complete, and never while a change is being
        made, so a change never commits a half-loaded table."""
        async with self._lock:
            raw = await self._backend.get(self.kind.key)
            if raw is not None or not defaults:
                await self._sync(raw, reuse=keep_engines)
                return
        for path, typ, desc in defaults:
            await self.mount(path, typ, description=desc)

    async def _sync(self, raw: bytes | None, *, reuse: bool = True) -> None:
        """Make the in-memory table the stored one `raw`, keeping (with `reuse`) the engine
        and its caches of every mount whose uuid, type and options did not change."""
        old = {e.uuid: e for e in self._entries.values()} if reuse else {}
        entries: dict[str, MountEntry] = {}
        for item in orjson.loads(raw) if raw is not None else []:
            fresh = MountEntry(**item)
            prev = old.get(fresh.uuid)
            if prev is not None and (prev.type, prev.options) == (fresh.type, fresh.options):
                fresh.storage, fresh.engine = prev.storage, prev.engine
            else:
                await self._activate(fresh)
            entries[fresh.path] = fresh
        self._entries = entries
        self.loaded = raw
        self._reindex()

    async def _change(self, apply: Callable[[], Awaitable[MountEntry | None]]) -> MountEntry | None:
        """Run `apply` (which changes `self._entries`) on the table as stored, and commit it
        guarded on the stored version (see the module docstring)."""
        async with self._lock:
            for _ in range(ATTEMPTS):
                stored = await self._backend.get_versioned(self.kind.key)
                if stored.value != self.loaded:
                    await self._sync(stored.value)
                try:
                    result = await apply()
                    raw = orjson.dumps([e.to_json() for e in self._entries.values()])
                    await self._backend.commit([Write(self.kind.key, raw)],
                                               {self.kind.key: stored.version})
                except Conflict:
                    await self._sync(self.loaded)
                    continue
                except BaseException:
                    await self._sync(self.loaded)
                    raise
                self.loaded = raw
                self._reindex()
                return result
        raise Conflict("too many concurrent changes of the mount table; nothing changed, retry")

    async def mount(
        self, path: str, typ: str, *, description: str = "", config: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None, local: bool = False, seal_wrap: bool = False,
    ) -> MountEntry:
        path = normalize(path)
        if not path:
            raise UserError("missing path")
        if typ not in self._factories:
            raise UserError(f'plugin not found in the catalog: {typ}')
        for reserved in self.kind.reserved:
            if path.startswith(reserved):
                raise UserError(f'cannot mount under "{reserved}"')

        async def apply() -> MountEntry:
            for existing in self._entries:
                if path.startswith(existing) or existing.startswith(path):
                    raise UserError(f"path is already in use at {existing}")
            entry = MountEntry(
                path=path, type=typ, uuid=str(uuid.uuid4()),
                accessor=f"{self.kind.accessor_prefix}{typ}_{secrets.token_hex(4)}", description=description,
                config=dict(config or {}), options=options, local=local, seal_wrap=seal_wrap,
            )
            await self._activate(entry)
            self._entries[path] = entry
            return entry

        entry = await self._change(apply)
        assert entry is not None
        return entry

    async def unmount(self, path: str) -> MountEntry | None:
        """Remove a mount and wipe its storage; returns the entry removed (None: nothing
        was mounted there)."""
        path = normalize(path)

        async def apply() -> MountEntry | None:
            return self._entries.pop(path, None)  # none: Vault answers 204 all the same

        entry = await self._change(apply)
        if entry is not None and entry.storage is not None:
            await entry.storage.clear()
        return entry

    async def tune(
        self, path: str, *, description: str | None = None,
        config: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
        reload: bool = False,
    ) -> MountEntry:
        """Change a mount's description, config (merged) and options; persist. With `reload`
        the engine is rebuilt from the new options (a KV v1 -> v2 upgrade)."""

        async def apply() -> MountEntry:
            entry = self._entries.get(normalize(path))
            if entry is None:
                raise UserError(f'tune of path "{normalize(path)}" failed: no mount entry found')
            if description is not None:
                entry.description = description
            if config:
                entry.config.update(config)
            if options is not None:
                entry.options = options
            return entry

        entry = await self._change(apply)
        assert entry is not None
        if reload:
            await self._activate(entry)
        return entry

    async def remount(self, src: str, dst: str) -> MountEntry:
        """Move a mount to a new path; its storage (keyed by uuid) and engine come along."""
        src, dst = normalize(src), normalize(dst)

        async def apply() -> MountEntry:
            entry = self._entries.get(src)
            if entry is None:
                raise UserError(f'no matching mount at "{src}"')
            if not dst:
                raise UserError("missing path")
            for reserved in self.kind.reserved:
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
            return entry

        entry = await self._change(apply)
        assert entry is not None
        return entry

    # -- internals --------------------------------------------------------------------------
    async def _activate(self, entry: MountEntry) -> None:
        entry.storage = StorageView(self._backend, f"{self.kind.storage_prefix}{entry.uuid}/")
        engine = self._factories[entry.type](entry.storage, entry.options or {})
        await engine.setup()
        entry.engine = engine

    async def changed(self) -> bool:
        """Whether storage holds another table than the one loaded (one read, no rebuild)."""
        return await self._backend.get(self.kind.key) != self.loaded

    def _reindex(self) -> None:
        self._by_length = sorted(self._entries.values(), key=lambda e: len(e.path), reverse=True)
