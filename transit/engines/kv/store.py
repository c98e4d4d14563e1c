"""KV v2 storage: the mount config, per-key metadata and version blobs.

Layout inside the mount's storage view:
    config                      {"max_versions", "cas_required", "delete_version_after"}
    metadata/<path>             KeyMetadata (listing `metadata/` lists the secrets)
    versions/<sha256(path)>/<n> {"data": ...} of one version
    kv-format                   "2" once the mount is (or was upgraded to) v2
Times are kept as Unix nanoseconds and rendered RFC3339Nano on the way out.

Every change of a secret is one `KVStore.modify(path, body)`: `body` gets the metadata as
stored (re-read from storage, never a cache) and stages its writes (versions, metadata,
deletes) on a `Staged`; they are committed together, guarded on the metadata version read, so
two writers in different worker processes or nodes can neither both take version N nor both
pass the same `cas` check: the second one's body runs again on the newer metadata.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from transit.engines.kv.common import dumps, format_time, loads, now_ns, path_hash
from transit.gocompat import format_duration
from transit.storage.base import Write
from transit.storage.update import update

DEFAULT_MAX_VERSIONS = 10
CONFIG_KEY = "config"
FORMAT_KEY = "kv-format"


@dataclass
class Config:
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: int = 0  # seconds, 0 = never

    def describe(self) -> dict[str, Any]:
        return {
            "max_versions": self.max_versions, "cas_required": self.cas_required,
            "delete_version_after": format_duration(self.delete_version_after),
        }


@dataclass
class VersionMeta:
    created: int
    deletion: int = 0  # ns; a version is deleted once `deletion` is in the past
    destroyed: bool = False

    def deleted(self, now: int | None = None) -> bool:
        return bool(self.deletion) and self.deletion <= (now or now_ns())

    def describe(self) -> dict[str, Any]:
        return {
            "created_time": format_time(self.created), "deletion_time": format_time(self.deletion),
            "destroyed": self.destroyed,
        }


@dataclass
class KeyMetadata:
    key: str
    created: int
    updated: int
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: int = 0
    custom_metadata: dict[str, str] | None = None
    versions: dict[int, VersionMeta] = field(default_factory=dict)

    @classmethod
    def new(cls, key: str) -> KeyMetadata:
        t = now_ns()
        return cls(key=key, created=t, updated=t)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> KeyMetadata:
        versions = {int(k): VersionMeta(**v) for k, v in raw.pop("versions", {}).items()}
        return cls(**raw, versions=versions)

    def to_json(self) -> bytes:
        out = asdict(self)
        out["versions"] = {str(k): asdict(v) for k, v in self.versions.items()}
        return dumps(out)

    def version_data(self, version: int) -> dict[str, Any]:
        """The `metadata` block of a data read/write response for one version."""
        vm = self.versions[version]
        return {**vm.describe(), "custom_metadata": self.custom_metadata or None, "version": version}

    def describe(self) -> dict[str, Any]:
        return {
            "cas_required": self.cas_required, "created_time": format_time(self.created),
            "current_version": self.current_version,
            "custom_metadata": self.custom_metadata or None,
            "delete_version_after": format_duration(self.delete_version_after),
            "max_versions": self.max_versions, "oldest_version": self.oldest_version,
            "updated_time": format_time(self.updated),
            "versions": {str(k): v.describe() for k, v in sorted(self.versions.items())},
        }

    def prune(self, config: Config) -> list[int]:
        """Drop versions beyond the effective max_versions; returns the dropped numbers."""
        limit = self.max_versions or config.max_versions or DEFAULT_MAX_VERSIONS
        if self.current_version <= limit:
            return []
        cutoff = self.current_version - limit  # versions <= cutoff go
        dropped = sorted(v for v in self.versions if v <= cutoff)
        for v in dropped:
            del self.versions[v]
        self.oldest_version = cutoff + 1
        return dropped

    def delete_after(self, config: Config) -> int:
        """Seconds until a new version is deleted: the smaller positive of key and mount."""
        key, mount = self.delete_version_after, config.delete_version_after
        if key > 0 and mount > 0:
            return min(key, mount)
        return key if key > 0 else max(mount, 0)


def _version_key(path: str, version: int) -> str:
    return f"versions/{path_hash(path)}/{version}"


class Staged:
    """The writes of one `KVStore.modify`, collected to be committed together."""

    def __init__(self) -> None:
        self.writes: list[Write] = []

    def put_version(self, path: str, version: int, data: Any) -> None:
        self.writes.append(Write(_version_key(path, version), dumps({"data": data})))

    def delete_version(self, path: str, version: int) -> None:
        self.writes.append(Write(_version_key(path, version), None))

    def put_metadata(self, meta: KeyMetadata) -> None:
        self.writes.append(Write("metadata/" + meta.key, meta.to_json()))

    def delete_metadata(self, path: str) -> None:
        self.writes.append(Write("metadata/" + path, None))


class KVStore:
    """Typed access to one v2 mount's storage view."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage

    async def config(self) -> Config:
        raw = loads(await self.storage.get(CONFIG_KEY))
        return Config(**raw) if raw else Config()

    async def modify_config(self, change: Callable[[Config], None]) -> None:
        """Change the mount config as stored, guarded (a read-modify-write)."""

        def apply(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
            raw = loads(values[CONFIG_KEY])
            config = Config(**raw) if raw else Config()
            change(config)
            return [Write(CONFIG_KEY, dumps(asdict(config)))], None

        await update(self.storage, [CONFIG_KEY], apply)

    async def metadata(self, path: str) -> KeyMetadata | None:
        raw = loads(await self.storage.get("metadata/" + path))
        return KeyMetadata.from_json(raw) if raw else None

    async def modify(
        self, path: str, body: Callable[[Staged, KeyMetadata | None], Awaitable[Any]]
    ) -> Any:
        """Run `body(staged, metadata as stored or None)` and commit what it staged,
        guarded on the stored metadata (see the module docstring). `body` may run more than
        once and must depend only on what it is given; it may raise to abort."""
        key = "metadata/" + path

        async def apply(values: dict[str, bytes | None]) -> tuple[list[Write], Any]:
            raw = loads(values[key])
            staged = Staged()
            result = await body(staged, KeyMetadata.from_json(raw) if raw else None)
            return staged.writes, result

        return await update(self.storage, [key], apply)

    async def put_metadata(self, meta: KeyMetadata) -> None:
        await self.storage.put("metadata/" + meta.key, meta.to_json())

    async def list_metadata(self, prefix: str) -> list[str]:
        return await self.storage.list("metadata/" + prefix)

    async def version(self, path: str, version: int) -> tuple[bool, Any]:
        """(found, data) of one stored version."""
        raw = loads(await self.storage.get(_version_key(path, version)))
        if raw is None:
            return False, None
        return True, raw.get("data")

    async def put_version(self, path: str, version: int, data: Any) -> None:
        await self.storage.put(_version_key(path, version), dumps({"data": data}))
