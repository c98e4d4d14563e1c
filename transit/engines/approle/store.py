"""AppRole storage: roles with their role_id index, secret IDs with their accessors, and the
tidy. Every change of a stored entry is a guarded read-modify-write (`transit/storage/update.py`)
that reads the entries from storage itself — never from a cache — so that two workers or
nodes changing one entry (a use-limited secret ID spent by two logins at once) cannot both
win. The only value kept in memory is the mount's salt, which never changes once made.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from transit.engines.approle.model import (
    ACCESSOR_LOCAL_PREFIX,
    ACCESSOR_PREFIX,
    ROLE_ID_PREFIX,
    ROLE_PREFIX,
    SALT_KEY,
    SECRET_ID_LOCAL_PREFIX,
    SECRET_ID_PREFIX,
    Role,
    SecretID,
    accessor_from_json,
    accessor_json,
    create_hmac,
    role_key,
    salted,
)
from transit.errors import Conflict, InternalError
from transit.storage.base import Write
from transit.storage.update import get_or_create, update

log = logging.getLogger("transit.approle")

_RETRY = object()  # a change saw another writer move the entry under it: read again
_ROUNDS = 8


class RoleIDInUse(InternalError):
    def __init__(self) -> None:
        super().__init__("role_id already in use")


class AppRoleStore:
    """The mount's entries (the engine's StorageView)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self._salt: bytes | None = None

    async def salt(self) -> bytes:
        if self._salt is None:
            self._salt = await get_or_create(self.storage, SALT_KEY, lambda: os.urandom(32))
        return self._salt

    async def role_id_key(self, role_id: str) -> str:
        return ROLE_ID_PREFIX + salted(await self.salt(), role_id)

    async def accessor_key(self, role: Role, accessor: str) -> str:
        return role.accessor_prefix + salted(await self.salt(), accessor)

    # -- roles ----------------------------------------------------------------------------
    async def get_role(self, name: str) -> Role | None:
        raw = await self.storage.get(role_key(name))
        return Role.from_json(raw) if raw is not None else None

    async def list_roles(self) -> list[str]:
        return sorted(await self.storage.list(ROLE_PREFIX))

    async def role_by_id(self, role_id: str) -> Role | None:
        """The role a login's role_id names (through the index), None when there is none."""
        raw = await self.storage.get(await self.role_id_key(role_id))
        if raw is None:
            return None
        name = str(orjson.loads(raw).get("name", ""))
        role = await self.get_role(name) if name else None
        return role if role is not None and role.role_id == role_id else None

    async def save_role(
        self, name: str, change: Callable[[Role | None], tuple[Role, list[str]]],
    ) -> tuple[Role, list[str]]:
        """Create or change a role and keep its role_id index with it, in one guarded
        commit. `change` gets the stored role (None: none yet) and returns the new one and
        warnings; it must be pure (it may run again after a race) and may raise to abort.

        Refuses a role without any constraint and a role_id another role holds (500, Vault's
        setRoleEntry)."""
        key = role_key(name)
        for _ in range(_ROUNDS):
            current = await self.get_role(name)
            old_id = current.role_id if current is not None else ""
            trial, _ = change(current.copy() if current is not None else None)
            new_id = trial.role_id
            new_idx = await self.role_id_key(new_id)
            old_idx = await self.role_id_key(old_id) if old_id and old_id != new_id else ""
            keys = [key, new_idx, *([old_idx] if old_idx else [])]

            def apply(values: dict[str, bytes | None], *, new_idx: str = new_idx,
                      old_idx: str = old_idx, old_id: str = old_id, new_id: str = new_id
                      ) -> tuple[list[Write], Any]:
                raw = values[key]
                stored = Role.from_json(raw) if raw is not None else None
                if (stored.role_id if stored is not None else "") != old_id:
                    return [], _RETRY
                role, warnings = change(stored)
                if role.role_id != new_id:
                    return [], _RETRY
                if not role.has_constraint():
                    raise InternalError("at least one constraint should be enabled on the role")
                owner = values[new_idx]
                if owner is not None and orjson.loads(owner).get("name") != role.name:
                    raise RoleIDInUse()
                writes = [Write(key, role.to_json()),
                          Write(new_idx, orjson.dumps({"name": role.name}))]
                if old_idx:
                    writes.append(Write(old_idx, None))
                return writes, (role, warnings)

            result = await update(self.storage, keys, apply)
            if result is not _RETRY:
                saved: tuple[Role, list[str]] = result
                return saved
        raise Conflict(f"too many concurrent writes to role {name}; nothing was changed, retry")

    async def delete_role(self, name: str) -> None:
        """Vault's pathRoleDelete: the role's secret IDs first, then the role and its index."""
        role = await self.get_role(name)
        if role is None:
            return
        await self.flush_secret_ids(role)
        key, idx = role_key(name), await self.role_id_key(role.role_id)

        def apply(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
            raw = values[key]
            if raw is None:
                return [], None
            stored = Role.from_json(raw)
            writes = [Write(key, None)]
            if stored.role_id == role.role_id:
                writes.append(Write(idx, None))
            return writes, None

        await update(self.storage, [key, idx], apply)

    # -- secret IDs ---------------------------------------------------------------------
    async def register(self, role: Role, secret_id: str, entry: SecretID) -> SecretID:
        """Store a new secret ID (as its HMAC) and its accessor, both or neither; the role
        must still be the one read (same hmac_key). Vault's registerSecretIDEntry."""
        secret_hmac = create_hmac(role.hmac_key, secret_id)
        skey = role.secret_key(secret_hmac)
        rkey = role_key(role.name)
        for _ in range(_ROUNDS):
            entry.accessor = str(uuid.uuid4())
            akey = await self.accessor_key(role, entry.accessor)

            def apply(values: dict[str, bytes | None], *, akey: str = akey
                      ) -> tuple[list[Write], Any]:
                raw_role = values[rkey]
                if raw_role is None or Role.from_json(raw_role).hmac_key != role.hmac_key:
                    raise InternalError(f'role "{role.name}" does not exist')
                if values[skey] is not None:
                    raise InternalError("failed to store secret_id: SecretID is already "
                                        "registered")
                if values[akey] is not None:  # a UUID collision: draw another accessor
                    return [], _RETRY
                return [Write(akey, accessor_json(secret_hmac, role.name_hmac)),
                        Write(skey, entry.to_json())], entry

            result = await update(self.storage, [rkey, skey, akey], apply)
            if result is not _RETRY:
                registered: SecretID = result
                return registered
        raise Conflict("could not draw a free secret ID accessor; nothing was changed, retry")

    async def get_secret(self, role: Role, secret_hmac: str) -> SecretID | None:
        raw = await self.storage.get(role.secret_key(secret_hmac))
        return SecretID.from_json(raw) if raw is not None else None

    async def get_accessor(self, role: Role, accessor: str) -> tuple[str, str] | None:
        """(secret_id_hmac, role_name_hmac) of an accessor, None when unknown."""
        raw = await self.storage.get(await self.accessor_key(role, accessor))
        return accessor_from_json(raw) if raw is not None else None

    async def destroy(self, role: Role, secret_hmac: str) -> bool:
        """Delete one secret ID and its accessor; False when it did not exist."""
        skey = role.secret_key(secret_hmac)
        entry = await self.get_secret(role, secret_hmac)
        if entry is None:
            return False
        akey = await self.accessor_key(role, entry.accessor)

        def apply(values: dict[str, bytes | None]) -> tuple[list[Write], bool]:
            if values[skey] is None:
                return [], False
            return [Write(skey, None), Write(akey, None)], True

        done: bool = await update(self.storage, [skey, akey], apply)
        return done

    async def spend(self, role: Role, secret_hmac: str, accessor: str, now_ns: int
                    ) -> SecretID | None:
        """One use of a use-limited secret ID, decided on the stored entry: the entry with
        the uses left; the last use deletes it (and its accessor). None when it is gone (spent, destroyed or expired in
        the meantime). Two logins racing for the last use: one gets it."""
        skey = role.secret_key(secret_hmac)
        akey = await self.accessor_key(role, accessor)

        def apply(values: dict[str, bytes | None]) -> tuple[list[Write], SecretID | None]:
            raw = values[skey]
            if raw is None:
                return [], None
            entry = SecretID.from_json(raw)
            if entry.expired(now_ns):
                return [], None
            if entry.num_uses <= 1:
                entry.num_uses = 0
                return [Write(skey, None), Write(akey, None)], entry
            entry.num_uses -= 1
            entry.last_updated_time = now_ns
            return [Write(skey, entry.to_json())], entry

        spent: SecretID | None = await update(self.storage, [skey, akey], apply)
        return spent

    async def list_accessors(self, role: Role) -> list[str]:
        prefix = f"{role.secret_prefix}{role.name_hmac}/"
        out = []
        for secret_hmac in await self.storage.list(prefix):
            raw = await self.storage.get(prefix + secret_hmac)
            if raw is not None:
                out.append(SecretID.from_json(raw).accessor)
        return sorted(out)

    async def flush_secret_ids(self, role: Role) -> None:
        prefix = f"{role.secret_prefix}{role.name_hmac}/"
        for secret_hmac in await self.storage.list(prefix):
            await self.destroy(role, secret_hmac)

    # -- tidy -----------------------------------------------------------------------------
    async def tidy(self) -> int:
        """Vault's tidySecretID: delete expired secret IDs, those of roles that no longer
        exist, those without an accessor, and accessors whose secret ID is gone. Every
        deletion is guarded on the entries it looked at. Returns how many entries went."""
        now_ns = time.time_ns()
        live: dict[str, Role] = {}
        for name in await self.list_roles():
            role = await self.get_role(name)
            if role is not None:
                live[role.secret_prefix + role.name_hmac] = role
        removed = 0
        for secret_prefix, accessor_prefix in ((SECRET_ID_PREFIX, ACCESSOR_PREFIX),
                                               (SECRET_ID_LOCAL_PREFIX, ACCESSOR_LOCAL_PREFIX)):
            for folder in await self.storage.list(secret_prefix):
                role = live.get(secret_prefix + folder.rstrip("/"))
                for secret_hmac in await self.storage.list(secret_prefix + folder):
                    skey = secret_prefix + folder + secret_hmac
                    removed += await self._tidy_secret(skey, role, accessor_prefix, now_ns)
            for accessor in await self.storage.list(accessor_prefix):
                removed += await self._tidy_accessor(accessor_prefix + accessor, secret_prefix)
        return removed

    async def _tidy_secret(self, skey: str, role: Role | None, accessor_prefix: str,
                           now_ns: int) -> int:
        raw = await self.storage.get(skey)
        if raw is None:
            return 0
        entry = SecretID.from_json(raw)
        akey = accessor_prefix + salted(await self.salt(), entry.accessor)

        def apply(values: dict[str, bytes | None]) -> tuple[list[Write], int]:
            raw_now = values[skey]
            if raw_now is None:
                return [], 0
            current = SecretID.from_json(raw_now)
            if role is not None and not current.expired(now_ns) and values[akey] is not None:
                return [], 0
            return [Write(skey, None), Write(akey, None)], 1

        removed: int = await update(self.storage, [skey, akey], apply)
        return removed

    async def _tidy_accessor(self, akey: str, secret_prefix: str) -> int:
        raw = await self.storage.get(akey)
        if raw is None:
            return 0
        secret_hmac, role_hmac = accessor_from_json(raw)
        skey = f"{secret_prefix}{role_hmac}/{secret_hmac}"

        def apply(values: dict[str, bytes | None]) -> tuple[list[Write], int]:
            if values[akey] is None or values[skey] is not None:
                return [], 0
            return [Write(akey, None)], 1

        removed: int = await update(self.storage, [akey, skey], apply)
        return removed
