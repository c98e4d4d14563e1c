"""Upgrading a KV v1 mount in place to v2 (`sys/mounts/<path>/tune` with options.version=2).

Every v1 blob becomes version 1 of the same path. The v1 values are first saved in one
snapshot key so a crash half-way resumes on the next start instead of losing data.
"""

from __future__ import annotations

from typing import Any

from transit.engines.kv.common import dumps, loads, now_ns
from transit.engines.kv.store import FORMAT_KEY, KeyMetadata, KVStore, VersionMeta

SNAPSHOT_KEY = "kv-upgrade"
_V2 = b"2"


async def _collect(storage: Any) -> list[str]:
    out: list[str] = []
    stack = [""]
    while stack:
        folder = stack.pop()
        for child in await storage.list(folder):
            if child.endswith("/"):
                stack.append(folder + child)
            else:
                out.append(folder + child)
    return sorted(out)


async def ensure_v2(storage: Any) -> int:
    """Make the mount's storage v2; returns how many v1 entries were migrated."""
    if await storage.get(FORMAT_KEY) == _V2:
        return 0
    snapshot = loads(await storage.get(SNAPSHOT_KEY))
    if not (isinstance(snapshot, dict) and "kv_upgrade_snapshot" in snapshot):
        keys = await _collect(storage)
        entries: dict[str, Any] = {}
        for key in keys:
            entries[key] = loads(await storage.get(key))
        if entries:
            await storage.put(SNAPSHOT_KEY, dumps({"kv_upgrade_snapshot": entries}))
            for key in keys:
                await storage.delete(key)
    else:
        entries = snapshot["kv_upgrade_snapshot"]
    store = KVStore(storage)
    t = now_ns()
    for key, value in entries.items():
        meta = KeyMetadata(key=key, created=t, updated=t, current_version=1, oldest_version=1,
                           versions={1: VersionMeta(created=t)})
        await store.put_version(key, 1, value)
        await store.put_metadata(meta)
    await storage.put(FORMAT_KEY, _V2)
    if entries:
        await storage.delete(SNAPSHOT_KEY)
    return len(entries)
