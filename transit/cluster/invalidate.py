"""Map a changed storage key to the in-memory cache that owns it (performance standbys).

The `InvalidationSubscriber` hands us every key another node wrote, as stored in Redis without
the prefix (barrier paths: `logical/<mount uuid>/…`, `sys/token/…`, `sys/policy/<name>`,
`core/mounts`, `core/audit`, `core/keyring`, …). `invalidate_key(core, key)` drops or reloads
exactly the cache that key feeds; `invalidate_all(core)` drops everything (on every
(re)subscribe). Keys nothing caches are ignored.

| key                                   | action                                             |
|---------------------------------------|----------------------------------------------------|
| `logical/<uuid>/<rest>`               | `engine.invalidate(rest)` of that mount            |
| `sys/token/id/<hash>`                 | `core.tokens.invalidate(hash)`                     |
| `sys/token/roles/<name>`              | `core.tokens.roles.invalidate(name)`               |
| `sys/token/salt`                      | re-read the salt (drops every cached token)        |
| `sys/token/accessor/…`, `parent/…`, `lease/…` | nothing: always read from storage, never cached |
| `sys/policy/<name>`                   | `core.policies.invalidate(name)`                   |
| `sys/identity/<rest>`                 | `core.identity.invalidate(rest)` (reload a record) |
| `auth/<uuid>/<rest>`                  | `engine.invalidate(rest)` of that auth mount       |
| `core/mounts`, `core/auth`            | `core.reload_mounts()` (else `core.mounts.load`)   |
| `core/audit`                          | `core.audit.setup()` (re-read table, reopen devices) |
| `core/keyring`                        | `core.barrier.reload_keyring()`                    |
| `core/quotas`                         | `core.quotas.load()` (rate-limit rules and config)  |

Nothing is cached while sealed, so both functions do nothing then. Engines get
`invalidate(key)` / `invalidate_all()` as lifecycle hooks of the `Engine` base class
(transit/engines/framework.py; TransitBackend overrides both, KV caches nothing and keeps the
no-op defaults).
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transit.cluster.ports import CacheNode

log = logging.getLogger("transit.cluster.invalidate")

LOGICAL = "logical/"
TOKEN = "sys/token/"
ACL_POLICY = "sys/policy/"
IDENTITY = "sys/identity/"
MOUNTS = "core/mounts"
AUTH_MOUNTS = "core/auth"  # the auth method table
AUTH_LOGICAL = "auth/"  # an auth mount's storage: auth/<uuid>/
AUDIT = "core/audit"
KEYRING = "core/keyring"
QUOTAS = "core/quotas"


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


def _mount_by_uuid(core: CacheNode, mount_uuid: str, table: str = "mounts") -> Any:
    for entry in getattr(core, table).entries():
        if entry.uuid == mount_uuid:
            return entry
    return None


async def _reload_mounts(core: CacheNode) -> None:
    reload = getattr(core, "reload_mounts", None)
    if reload is not None:
        await _maybe_await(reload())
    else:  # re-reads the table and rebuilds every engine (fresh, empty caches)
        await core.mounts.load([], keep_engines=True)


def _writable(core: CacheNode) -> bool:
    return not getattr(core.barrier, "read_only", False)


async def _reload_salt(core: CacheNode) -> None:
    # setup() only writes when the salt is missing; a standby must not write, so look first.
    if await core.tokens.storage.get("salt") is not None:
        await core.tokens.setup(create=_writable(core))
    else:
        core.tokens.invalidate()


async def invalidate_key(core: CacheNode, key: str) -> None:
    """Drop (or reload) the cache fed by storage key `key`; see the module table."""
    if core.sealed:
        return
    if key.startswith(LOGICAL):
        mount_uuid, _, rest = key[len(LOGICAL) :].partition("/")
        entry = _mount_by_uuid(core, mount_uuid)
        engine = entry.engine if entry is not None else None
        if engine is not None and rest:
            await engine.invalidate(rest)
    elif key.startswith(AUTH_LOGICAL) and hasattr(core, "auth_mounts"):
        mount_uuid, _, rest = key[len(AUTH_LOGICAL) :].partition("/")
        entry = _mount_by_uuid(core, mount_uuid, "auth_mounts")
        engine = entry.engine if entry is not None else None
        if engine is not None and rest:
            await engine.invalidate(rest)
    elif key.startswith(TOKEN):
        rest = key[len(TOKEN) :]
        if rest.startswith("id/"):
            core.tokens.invalidate(rest[len("id/") :])
        elif rest.startswith("roles/"):
            core.tokens.roles.invalidate(rest[len("roles/") :])
        elif rest == "salt":
            await _reload_salt(core)
    elif key.startswith(ACL_POLICY):
        core.policies.invalidate(key[len(ACL_POLICY) :])
    elif key.startswith(IDENTITY):
        identity = getattr(core, "identity", None)
        if identity is not None:
            await identity.invalidate(key[len(IDENTITY) :])
    elif key in (MOUNTS, AUTH_MOUNTS):
        await _reload_mounts(core)
    elif key == AUDIT:
        await core.audit.setup(create=_writable(core))
    elif key == KEYRING:
        await core.barrier.reload_keyring()
    elif key == QUOTAS:
        await core.quotas.load()


async def invalidate_all(core: CacheNode) -> None:
    """Drop every cache (after a (re)subscribe: messages may have been missed). The keyring
    goes first, so what follows can decrypt values written under a newer term."""
    if core.sealed:
        return
    await core.barrier.reload_keyring()
    await _reload_salt(core)  # drops every cached token and role
    core.policies.invalidate()
    identity = getattr(core, "identity", None)
    if identity is not None:
        await identity.invalidate(None)
    await _reload_mounts(core)
    auth = core.auth_mounts.entries() if hasattr(core, "auth_mounts") else []
    for entry in [*core.mounts.entries(), *auth]:  # engines a reload kept still hold caches
        if entry.engine is not None:
            await entry.engine.invalidate_all()
    await core.audit.setup(create=_writable(core))
    await core.quotas.load()
