"""`RedisBackend`: the `Backend` contract on Redis, HA-capable (what `storage "redis"` builds).

Every write (put, delete, guarded multi-key commit) is one Lua script, `COMMIT`
(transit/storage/redis/scripts.py): (when `fence` is set) check that the lock still holds
`"<owner>:<fence>"`, check every guard (the SHA-1 of the stored value, or absent), apply the
writes, keep the folder ZSETs in step, INCR the index and PUBLISH per entry. A refused write
raises `errors.Fenced` or `errors.Conflict` and changes nothing. With `fence = None` the fence
check is skipped (single node, or before HA starts) but guards, index and messages still
apply. Writes go through a client that never retries: a lost reply is
`errors.OutcomeUnknown`; durable commits WAIT on the same connection.

The key layout is in the package docstring (transit/storage/redis/__init__.py); the
connections, the HA lock and replica acknowledgements are the base classes
(`connection.py`, `lock.py`, `durability.py`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from transit.errors import Conflict, Fenced, ReplicationUnconfirmed, StorageError
from transit.storage.base import Versioned, Write, version_of
from transit.storage.redis.durability import RedisDurability
from transit.storage.redis.lock import RedisHALock

_RESERVED = ("core/lock", "core/epoch", "core/index", "core/sync")


def _folders(key: str) -> tuple[list[str], list[str]]:
    """For "a/b/c": folders ["", "a/", "a/b/"] and their children ["a/", "b/", "c"]."""
    parts = key.split("/")
    folders, children, folder = [], [], ""
    for i, part in enumerate(parts):
        folders.append(folder)
        last = i == len(parts) - 1
        children.append(part if last else part + "/")
        folder += part + "/"
    return folders, children


class RedisBackend(RedisHALock, RedisDurability):
    """`Backend` on Redis plus the HA lock primitives (see the module docstring)."""

    # -- Backend ---------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        full = f"{self.prefix}/{key}"
        value = await self._read("get", lambda client: client.get(full))
        return None if value is None else bytes(value)

    async def put(self, key: str, value: bytes) -> None:
        await self.commit([Write(key, bytes(value))])

    async def delete(self, key: str) -> None:
        await self.commit([Write(key, None)])

    async def get_versioned(self, key: str) -> Versioned:
        """The stored value and its version, read from the primary (never the replica)."""
        full = f"{self.prefix}/{key}"
        with self._errors("get"):
            value = await self._primary.get(full)
        # redis-py types replies bytes | str; without decode_responses they are bytes
        value = None if value is None else bytes(value)  # type: ignore[arg-type]
        return Versioned(value, version_of(value))

    async def get_versioned_many(self, keys: Sequence[str]) -> list[Versioned]:
        """`get_versioned` of several keys in one round trip (MGET on the primary)."""
        with self._errors("get"):
            values = await self._primary.mget([f"{self.prefix}/{k}" for k in keys])
        out = []
        for value in values:
            # redis-py types replies bytes | str; without decode_responses they are bytes
            value = None if value is None else bytes(value)  # type: ignore[arg-type]
            out.append(Versioned(value, version_of(value)))
        return out

    def _claim_key(self, key: str) -> str:
        return f"{self.prefix}/core/claim/{key}"

    async def claim(self, key: str, ttl: float = 2.0) -> str | None:
        """Claim the next guarded commit on `key` (a writer that lost the race several times
        in a row): until released or `ttl` passes, guarded commits of other writers whose
        first key is `key` fail with `Conflict`. A token, or None when someone else holds
        the claim. Advisory: correctness rests on the guards, this only ends starvation."""
        token = secrets.token_hex(8)
        with self._errors("claim"):
            ok = await self._primary.set(self._claim_key(key), token, nx=True,
                                         px=max(1, int(ttl * 1000)))
        return token if ok else None

    async def release_claim(self, key: str, token: str) -> None:
        with self._errors("claim release"):
            await self._release(keys=[self._claim_key(key)], args=[token])

    async def commit(
        self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
        durable: bool = False, claim: str = "",
    ) -> None:
        """One fenced, guarded script for all `writes` (see `Backend` and `scripts.COMMIT`). With
        `durable`, WAIT on the same connection for max(min_replica_acks, connected
        replicas); fewer acknowledgements raise `ReplicationUnconfirmed`."""
        expect = dict(expect or {})
        for w in writes:
            self._check_key(w.key)
        first = next(iter(expect), "")
        keys: list[Any] = [self.lock_key, self.index_key, self._claim_key(first)]
        keys += [f"{self.prefix}/{k}" for k in expect]
        args: list[Any] = [self._fence_value(), self.channel, len(expect), len(writes), claim]
        args += list(expect.values())
        for w in writes:
            folders, children = _folders(w.key)
            keys.append(f"{self.prefix}/{w.key}")
            keys += [self._list_prefix + f for f in folders]
            value = b"" if w.value is None else bytes(w.value)
            args += ["d" if w.value is None else "p", w.key, value, len(children), *children]
        what = ", ".join(w.key for w in writes)
        needed = 0
        if durable:
            needed = max(self.min_replica_acks, await self._connected_replicas())
        with self._errors(f"write of {what}", write=True):
            if needed == 0:
                n, acked = int(await self._commit(keys=keys, args=args)), 0
            else:
                async with self._waiter.pipeline(transaction=False) as pipe:
                    await self._commit(keys=keys, args=args, client=pipe)
                    timeout_ms = max(1, int(self.replication_timeout * 1000))
                    pipe.execute_command("WAIT", needed, timeout_ms)
                    result = await pipe.execute()
                n, acked = int(result[0]), int(result[1])
        self._done(n, what)
        if acked < needed and await self._still_short(acked):
            raise ReplicationUnconfirmed(
                f"the change was applied on the storage primary but only {acked} of {needed} "
                "replicas confirmed it in time; its outcome is unknown, check before retrying"
            )

    async def list(self, prefix: str) -> list[str]:
        """Children of the folder `prefix` ("" or ending in "/"; a missing "/" is implied)."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folder = self._list_prefix + prefix
        members = await self._read("list", lambda client: client.zrange(folder, 0, -1))
        return [m.decode() for m in members]

    def _check_key(self, key: str) -> None:
        if key in _RESERVED or key.startswith("core/claim/"):
            raise StorageError(f"redis: {key!r} is reserved for the HA lock and write index")

    def _done(self, n: int, what: str) -> None:
        if n == -1:
            raise Fenced(f"write of {what} refused: this node no longer holds the lock")
        if n == -2:
            raise Conflict(f"write of {what} refused: changed since it was read")
        if n == -3:
            raise Conflict(f"write of {what} refused: another writer has claimed it",
                           claimed=True)
        self.last_index = max(self.last_index, n)  # replies may arrive out of order
