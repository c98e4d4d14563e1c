"""The HA lock on Redis (DESIGN §4): take, renew, release and read `<p>/core/lock`.

The lock value is `"<owner>:<epoch>"` (`lock_value`, `parse_lock_value`); the owner is
`<node id>@<instance>` (transit/cluster/identity.py), one running server. Each call is one
atomic step: a `SET NX` with a fresh epoch (`INCR <p>/core/epoch`, never below what the caller
has seen) in the `ACQUIRE` script, compare-and-PEXPIRE (`RENEW`), compare-and-DEL
(`RELEASE`); see transit/storage/redis/scripts.py. `_fence_value` is what every fenced write
compares the lock with. A lock whose holder crashed is broken only once the primary has no
connection of that holder left (`holder_gone`: connections are named `transit-<owner>`).
"""

from __future__ import annotations

from transit.errors import StorageError
from transit.gocompat import is_digits
from transit.storage.redis.connection import RedisConnection


def lock_value(owner: str, epoch: int) -> str:
    """The value stored at `<p>/core/lock` while `owner` holds the lock at `epoch`. The owner
    is `<node id>@<instance>` (transit/cluster/identity.py): one running server, so two
    processes started with the same node id never match each other's value."""
    return f"{owner}:{epoch}"


def parse_lock_value(value: str) -> tuple[str, int] | None:
    """(owner, epoch) of a lock value, split at the LAST ":"; None when malformed."""
    owner, sep, epoch = value.rpartition(":")
    if not sep or not owner or not is_digits(epoch):
        return None
    return owner, int(epoch)


class RedisHALock(RedisConnection):
    """The HA lock primitives of `RedisBackend` (see the module docstring)."""

    def _fence_value(self) -> str:
        if self.fence is None:
            return ""
        if self._node_id is None:
            raise StorageError("redis: fence is set but the node id is unknown")
        return lock_value(self._node_id, self.fence)

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.lock_ttl * 1000))

    async def acquire_lock(self, owner: str, min_epoch: int = 0) -> int | None:
        """Take the lock if nobody holds it: the new epoch, else None. The epoch is above
        both the stored counter and `min_epoch` (the highest the caller has seen), so it
        moves forward even after a failover to a replica that missed some INCRs. Also adopts
        `owner` as this backend's identity if none was set (only possible before first use)."""
        if self._node_id is None:
            self.set_owner(owner)
        elif owner != self._node_id:
            raise StorageError(f"redis: backend is owner {self._node_id!r}, not {owner!r}")
        with self._errors("lock acquire"):
            epoch = int(
                await self._acquire(
                    keys=[self.lock_key, self.epoch_key],
                    args=[owner, self._ttl_ms, max(0, int(min_epoch))],
                )
            )
        return epoch or None

    async def renew_lock(self, owner: str, epoch: int) -> bool:
        """Extend the TTL if the lock still holds `<owner>:<epoch>`."""
        with self._errors("lock renew"):
            ok = await self._renew(
                keys=[self.lock_key], args=[lock_value(owner, epoch), self._ttl_ms]
            )
        return int(ok) == 1

    async def release_lock(self, owner: str, epoch: int) -> None:
        """Delete the lock, only if it holds exactly `<owner>:<epoch>` (compare-and-delete).
        `owner` must be this backend's own: another process's lock is never released, only
        broken once that process is gone (`break_lock`)."""
        if self._node_id is not None and owner != self._node_id:
            raise StorageError(f"redis: owner {self._node_id!r} cannot release the lock of "
                               f"{owner!r} (break_lock takes over from a holder that is gone)")
        with self._errors("lock release"):
            await self._release(keys=[self.lock_key], args=[lock_value(owner, epoch)])

    async def break_lock(self, owner: str, epoch: int) -> bool:
        """Delete `<owner>:<epoch>` held by another process, only when the primary has no
        connection of that owner left (`holder_gone`: it crashed or was killed). True when
        nothing of that holder remains (the value was deleted, or had already changed)."""
        if owner == self._node_id or not await self.holder_gone(owner):
            return False
        with self._errors("lock release"):
            await self._release(keys=[self.lock_key], args=[lock_value(owner, epoch)])
        return True

    async def lock_holder(self) -> tuple[str, int] | None:
        """(owner, epoch) of the lock, or None when nobody holds it."""
        with self._errors("lock read"):
            value = await self._primary.get(self.lock_key)
        # redis-py types replies bytes | str; without decode_responses they are bytes
        return None if value is None else parse_lock_value(value.decode())  # type: ignore[union-attr]

    async def lock_holder_ttl(self) -> tuple[tuple[str, int] | None, float]:
        """(owner, epoch) of the lock and the seconds it has left, read together (None and
        0 when nobody holds it). A sibling worker serves as active only until then."""
        with self._errors("lock read"):
            async with self._primary.pipeline(transaction=True) as pipe:
                pipe.get(self.lock_key)
                pipe.pttl(self.lock_key)
                value, pttl = await pipe.execute()
        if value is None:
            return None, 0.0
        left = self.lock_ttl if int(pttl) < 0 else int(pttl) / 1000
        return parse_lock_value(value.decode()), left

    async def stored_epoch(self) -> int:
        """The epoch counter `<p>/core/epoch` on the primary (0 when absent)."""
        with self._errors("epoch read"):
            value = await self._primary.get(self.epoch_key)
        return int(value) if value is not None else 0

    async def holder_gone(self, owner: str) -> bool:
        """True when the primary has no client connection named `transit-<owner>`. The owner
        names one running server, so a process that shares its node id does not count."""
        name = f"transit-{owner}"
        with self._errors("client list"):
            clients = await self._primary.client_list()
        return not any(c.get("name") == name for c in clients)
