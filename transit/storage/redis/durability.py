"""Durable writes on Redis: how many replicas must confirm a write, and how far they got.

A durable commit (`RedisBackend.commit(..., durable=True)`) WAITs for max(`min_replica_acks`,
the replicas connected and keeping up); fewer acknowledgements raise
`errors.ReplicationUnconfirmed`. `confirm_replicated` does the same for everything written so
far, before a process uses a value it did not write itself. `check_persistence` asks whether
the primary would lose acknowledged writes (transit/storage/redis/persistence.py), and
`write_index` reads the write index on the primary or the read replica.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from transit.errors import ReplicationUnconfirmed, Unavailable
from transit.storage.redis.connection import RedisConnection

log = logging.getLogger("transit.storage.redis")


# seconds since a replica's last acknowledgement of the replication stream beyond which a
# durable write no longer waits for it (see `RedisBackend._connected_replicas`)
REPLICA_MAX_LAG = 1


class RedisDurability(RedisConnection):
    """Replica acknowledgements, the persistence check and the write index of `RedisBackend`."""

    async def confirm_replicated(self) -> None:
        """Before this process *uses* a value it did not write itself (e.g. a key version a
        sibling worker just rotated): make sure the replicas have everything written so far
        (a tiny write plus WAIT: the replication stream is ordered). `ReplicationUnconfirmed`
        otherwise. Nothing to do when reads come from a replica (it has what we read)."""
        if self.read_from_replica and self._replica is not None:
            return
        needed = max(self.min_replica_acks, await self._connected_replicas())
        if needed == 0:
            return
        try:  # core/sync: reserved, never a stored entry (WAIT needs a write of its own)
            async with self._waiter.pipeline(transaction=False) as pipe:
                pipe.set(f"{self.prefix}/core/sync", "1")
                pipe.execute_command("WAIT", needed,
                                     max(1, int(self.replication_timeout * 1000)))
                acked = int((await pipe.execute())[-1])
        except (RedisError, OSError) as exc:
            raise Unavailable(f"redis at {self._where}: WAIT failed: {exc}") from None
        if acked < needed and await self._still_short(acked):
            raise ReplicationUnconfirmed(
                f"only {acked} of {needed} storage replicas confirmed the latest writes in "
                "time; a key changed meanwhile cannot be used until they do"
            )

    async def check_persistence(self) -> list[str]:
        """Problems that would make the primary lose acknowledged writes (no AOF,
        `appendfsync no`, an evicting `maxmemory-policy`); notes are logged here."""
        from transit.storage.redis.persistence import check

        self._used = True
        result = await check(self._primary)
        for note in result.notes:
            log.info("redis %s: %s", self._where, note)
        return list(result.problems)

    async def _still_short(self, acked: int) -> bool:
        """WAIT saw fewer replicas than counted: count them again (the count may be up to a
        second old, and a replica that went away since is not one to wait for)."""
        self._replicas_read_at = float("-inf")
        return acked < max(self.min_replica_acks, await self._connected_replicas())

    async def _connected_replicas(self) -> int:
        """How many replicas are connected and keeping up, read at most once a second (a
        durable write waits for every one of them as of then, and at least
        `min_replica_acks`). Keeping up: online, and its last acknowledgement of the stream
        (replicas send one every second) at most `REPLICA_MAX_LAG` seconds old — a paused
        or wedged replica stays "connected" until `repl-timeout` (60 s) and must not hold
        every durable write up meanwhile."""
        now = time.monotonic()
        if now - self._replicas_read_at < 1.0:
            return self._replicas_connected
        with self._errors("info replication"):
            info = await self._primary.info("replication")
        count = 0
        for n in range(int(info.get("connected_slaves", 0))):
            replica = info.get(f"slave{n}")
            if not isinstance(replica, dict):
                count += 1  # (unparsed: count it, as before)
                continue
            lag = replica.get("lag", 0)
            if replica.get("state", "online") == "online" and (
                    not isinstance(lag, int) or lag <= REPLICA_MAX_LAG):
                count += 1
        self._replicas_connected = count
        self._replicas_read_at = now
        return self._replicas_connected

    async def write_index(self, *, replica: bool = False) -> int:
        """The write index on the primary (or on the read replica, when `replica` and one is
        configured: how far replication has got)."""
        client = self._replica if replica and self._replica is not None else self._primary
        with self._errors("index read"):
            value = await client.get(self.index_key)
        return int(value) if value is not None else 0
