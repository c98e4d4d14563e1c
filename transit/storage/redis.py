"""Redis storage: the HA-capable backend (contract: docs/dev/contracts.md §6.1).

Layout under a prefix `p` (default "transit"):

- `p/<key>`            a value (Redis string, raw bytes)
- `p:list:<folder>`    ZSET (all scores 0, so ordered by bytes) of the immediate children of
                       `<folder>` ("" or ending in "/"): leaf names, and sub-folders with a "/"
- `p/core/lock`        the HA lock, value `"<owner>:<epoch>"` (split at the LAST ":"; the
                       owner is `<node_id>@<instance>`, see transit/cluster/identity.py)
- `p/core/epoch`       INCR on every lock acquisition (never below what the caller has seen)
- `p/core/index`       the write index: INCR on every written entry
- `p/core/sync`        scratch key for WAIT (never a stored entry)
- channel `p/invalidate`  one message `"<index> <key>"` per written entry

Every write (put, delete, guarded multi-key commit) is one Lua script, `COMMIT` (transit/storage/redis_scripts.py): (when
`fence` is set) check that the lock still holds `"<owner>:<fence>"`, check every guard (the
SHA-1 of the stored value, or absent), apply the writes, keep the folder ZSETs in step, INCR
the index and PUBLISH per entry. A refused write raises `errors.Fenced` or `errors.Conflict`
and changes nothing. With `fence = None` the fence check is skipped (single node, or before HA
starts) but guards, index and messages still apply. Writes go through a client that never
retries: a lost reply is `errors.OutcomeUnknown`; durable commits WAIT on the same connection.

Every connection is named `transit-<owner>` (CLIENT SETNAME through the pool's
`client_name`), which `holder_gone` looks for in CLIENT LIST. The owner comes from the
`node_id` argument or `set_owner()`, which must be called before the first command.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from time import perf_counter
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from transit import metrics
from transit.errors import (
    Conflict,
    Fenced,
    OutcomeUnknown,
    ReplicationUnconfirmed,
    StorageError,
    Unavailable,
)
from transit.storage.base import Versioned, Write, version_of
from transit.storage.redis_client import TLSOptions, client_options, split_address
from transit.storage.redis_scripts import ACQUIRE, COMMIT, RELEASE, RENEW

log = logging.getLogger("transit.storage.redis")

_RESERVED = ("core/lock", "core/epoch", "core/index", "core/sync")


def lock_value(owner: str, epoch: int) -> str:
    """The value stored at `<p>/core/lock` while `owner` holds the lock at `epoch`. The owner
    is `<node id>@<instance>` (transit/cluster/identity.py): one running server, so two
    processes started with the same node id never match each other's value."""
    return f"{owner}:{epoch}"


def parse_lock_value(value: str) -> tuple[str, int] | None:
    """(owner, epoch) of a lock value, split at the LAST ":"; None when malformed."""
    owner, sep, epoch = value.rpartition(":")
    if not sep or not owner or not epoch.isdigit():
        return None
    return owner, int(epoch)


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


# seconds since a replica's last acknowledgement of the replication stream beyond which a
# durable write no longer waits for it (see `RedisBackend._connected_replicas`)
REPLICA_MAX_LAG = 1


class RedisBackend:
    """`Backend` on Redis plus the HA lock primitives (see the module docstring)."""

    def __init__(
        self,
        *,
        address: str = "127.0.0.1:6379",
        read_address: str = "",
        prefix: str = "transit",
        username: str = "",
        password: str = "",
        db: int = 0,
        tls: TLSOptions | None = None,
        lock_ttl: float = 10.0,
        sentinel_addresses: Sequence[str] = (),
        sentinel_master: str = "",
        node_id: str | None = None,
        read_from_replica: bool = False,
        timeout: float = 5.0,
        min_replica_acks: int = 0,
        replication_timeout: float = 2.0,
        persistence_check: str = "refuse",
    ) -> None:
        prefix = prefix.rstrip("/")
        if not prefix:
            raise StorageError("redis: prefix must not be empty")
        if lock_ttl <= 0:
            raise StorageError("redis: lock_ttl must be positive")
        self.prefix = prefix
        self.lock_ttl = lock_ttl
        self.fence: int | None = None
        self.read_from_replica = read_from_replica
        if min_replica_acks < 0:
            raise StorageError("redis: min_replica_acks must not be negative")
        self.min_replica_acks = min_replica_acks
        if persistence_check not in ("refuse", "warn"):
            raise StorageError("redis: persistence_check must be \"refuse\" or \"warn\"")
        self.persistence_check = persistence_check
        self._replicas_connected = 0
        self._replicas_read_at = float("-inf")
        self.replication_timeout = replication_timeout
        self.last_index = 0  # write index returned by this backend's latest put/delete
        self.lock_key = f"{prefix}/core/lock"
        self.epoch_key = f"{prefix}/core/epoch"
        self.index_key = f"{prefix}/core/index"
        self.channel = f"{prefix}/invalidate"
        self._list_prefix = f"{prefix}:list:"
        self._node_id: str | None = None
        self._used = False
        self._sentinel: Sentinel | None = None

        # Kept so other connections of this node (the invalidation feed) connect alike.
        self.connection = {"db": db, "timeout": timeout, "username": username,
                           "password": password, "tls": tls}
        common = client_options(
            db=db, timeout=timeout, username=username, password=password, tls=tls,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        )
        # Writes go through a client that never retries: a write whose reply was lost may
        # have been applied, and replaying it could apply it twice or roll back a newer write.
        once = {**common, "retry": Retry(NoBackoff(), 0)}

        if sentinel_addresses:
            if not sentinel_master:
                raise StorageError("redis: sentinel_master is required with sentinel_addresses")
            hosts = [split_address(a) for a in sentinel_addresses]
            self._sentinel = Sentinel([(h["host"], h["port"]) for h in hosts], **common)
            self._primary: Redis = self._sentinel.master_for(sentinel_master)
            self._writer: Redis = self._sentinel.master_for(
                sentinel_master, retry=Retry(NoBackoff(), 0)
            )
            self._where = f"sentinel master {sentinel_master!r}"
            self._sentinel_master = sentinel_master
        else:
            self._primary = Redis(**{**common, **split_address(address)})
            self._writer = Redis(**{**once, **split_address(address)})
            self._where = address
        self._replica: Redis | None = None
        if read_address:
            self._replica = Redis(**{**common, **split_address(read_address)})

        self._commit = self._writer.register_script(COMMIT)
        self._acquire = self._primary.register_script(ACQUIRE)
        self._renew = self._primary.register_script(RENEW)
        self._release = self._primary.register_script(RELEASE)
        if node_id is not None:
            self.set_node_id(node_id)

    # -- identity --------------------------------------------------------------------------

    # The identity is the HA lock *owner* (`<node id>@<instance>`, one per running server;
    # transit/cluster/identity.py): the lock value carries it, every fenced write compares it,
    # and it names this backend's connections. A bare node id (no "@") is its own owner.

    @property
    def owner(self) -> str | None:
        """The lock owner this backend acts for (None until set)."""
        return self._node_id

    @property
    def node_id(self) -> str | None:
        """The node id of `owner` (everything before its last "@")."""
        if self._node_id is None:
            return None
        node, sep, _ = self._node_id.rpartition("@")
        return node if sep and node else self._node_id

    def set_owner(self, owner: str) -> None:
        """Name every connection `transit-<owner>`. Call before the first command: existing
        pooled connections cannot be renamed, and `holder_gone` relies on the names."""
        if not owner or any(c.isspace() or not c.isprintable() for c in owner):
            raise StorageError(f"redis: invalid node id {owner!r} (empty or has spaces)")
        if owner == self._node_id:
            return
        if self._used:
            raise RuntimeError("RedisBackend.set_owner must be called before first use")
        self._node_id = owner
        for client in (self._primary, self._writer, self._replica):
            if client is not None:
                client.connection_pool.connection_kwargs["client_name"] = f"transit-{owner}"

    set_node_id = set_owner  # the older name: the identity it sets is the lock owner

    # -- errors ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, op: str, *, write: bool = False) -> Iterator[None]:
        """Redis errors as storage errors. A connection failure is `Unavailable` (503, safe to
        retry), except for a `write` that may have reached Redis: its outcome is unknown
        (503 too, but never retried: the writer client has no retry either). Timed for
        telemetry (`vault.redis.command`, `vault.redis.command.errors`, by `op`)."""
        self._used = True
        command = "commit" if write else op  # a write's `op` names its keys
        started = perf_counter()
        try:
            with self._translated(op, write):
                yield
        except BaseException:
            metrics.incr(("vault.redis.command.errors", command))
            raise
        finally:
            metrics.observe(("vault.redis.command", command), (perf_counter() - started) * 1000)

    @contextlib.contextmanager
    def _translated(self, op: str, write: bool) -> Iterator[None]:
        try:
            yield
        except AuthenticationError as exc:
            raise StorageError(f"redis {self._where} refused the credentials: {exc}") from exc
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if write and not (isinstance(exc, RedisConnectionError) and "connecting" in str(exc)):
                raise OutcomeUnknown(
                    f"storage did not answer the {op} ({exc}); it may or may not have been "
                    "applied: check before retrying"
                ) from exc
            suffix = "; not sent" if write else ""
            raise Unavailable(
                f"redis {self._where} unreachable during {op}{suffix}: {exc}") from exc
        except RedisError as exc:
            raise StorageError(f"redis {op} failed: {exc}") from exc

    def _reader(self) -> Redis:
        if self.read_from_replica and self._replica is not None:
            return self._replica
        return self._primary

    def _fence_value(self) -> str:
        if self.fence is None:
            return ""
        if self._node_id is None:
            raise StorageError("redis: fence is set but the node id is unknown")
        return lock_value(self._node_id, self.fence)

    # -- Backend ---------------------------------------------------------------------------

    async def _read(self, op: str, call: Any) -> Any:
        """Run `call(client)` on the replica when reads go there, falling back to the
        primary when the replica is unreachable (a standby keeps working without it)."""
        reader = self._reader()
        if reader is self._replica:
            try:
                return await call(reader)
            except (RedisError, OSError) as exc:
                log.warning("redis replica unreachable during %s (%s); reading the primary",
                            op, exc)
        with self._errors(op):
            return await call(self._primary)

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
        """One fenced, guarded script for all `writes` (see `Backend` and `redis_scripts.COMMIT`). With
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
                async with self._writer.pipeline(transaction=False) as pipe:
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
            async with self._writer.pipeline(transaction=False) as pipe:
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
        from transit.storage.redis_persistence import check

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

    # -- HA primitives ---------------------------------------------------------------------

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

    async def write_index(self, *, replica: bool = False) -> int:
        """The write index on the primary (or on the read replica, when `replica` and one is
        configured: how far replication has got)."""
        client = self._replica if replica and self._replica is not None else self._primary
        with self._errors("index read"):
            value = await client.get(self.index_key)
        return int(value) if value is not None else 0

    async def primary_address(self) -> str:
        """"host:port" of the primary: the configured address, or the master Sentinel names
        now (the invalidation feed's address without a `read_address`)."""
        if self._sentinel is None:
            return self._where
        with self._errors("sentinel master lookup"):
            host, port = await self._sentinel.discover_master(self._sentinel_master)
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    async def close(self) -> None:
        for client in (self._primary, self._writer, self._replica):
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose(close_connection_pool=True)
        if self._sentinel is not None:
            for s in self._sentinel.sentinels:
                with contextlib.suppress(RedisError, OSError):
                    await s.aclose()
