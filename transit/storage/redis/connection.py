"""The connections of one Redis backend: settings, clients, identity and error translation.

`RedisConnection` is the base of `RedisBackend` (transit/storage/redis/backend.py): it checks
the settings and opens the clients every other part uses (the HA lock in `lock.py`, replica
acknowledgements in `durability.py`, the `Backend` calls in `backend.py`): the primary (a
plain address, or the master Sentinel names), a writer on the same server that never retries
(a lost reply is `errors.OutcomeUnknown`), and the optional read replica (`read_address`),
from which reads fall back to the primary when it is unreachable. It also registers the Lua
scripts (transit/storage/redis/scripts.py) and turns every Redis error into a storage error.

Every connection is named `transit-<owner>` (CLIENT SETNAME through the pool's
`client_name`), which `holder_gone` looks for in CLIENT LIST. The owner comes from the
`node_id` argument or `set_owner()`, which must be called before the first command.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
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
from transit.errors import OutcomeUnknown, StorageError, Unavailable
from transit.storage.redis.options import TLSOptions, client_options, split_address
from transit.storage.redis.scripts import ACQUIRE, COMMIT, RELEASE, RENEW

log = logging.getLogger("transit.storage.redis")
WAIT_MARGIN = 2.0  # seconds the writer waits for a WAIT reply beyond its own timeout


class RedisConnection:
    """The settings and clients of one Redis backend (see the module docstring)."""

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
        # Durable commits end in a WAIT that may block for `replication_timeout`: their client
        # (`_waiter`, never retrying either) waits for the reply that long plus WAIT_MARGIN, or
        # a slow replica would turn a committed write into "outcome unknown" (a socket
        # timeout) instead of an answer. Other writes keep the short `timeout`.
        wait_timeout = max(timeout, replication_timeout + WAIT_MARGIN)
        waits = {**once, "socket_timeout": wait_timeout}

        if sentinel_addresses:
            if not sentinel_master:
                raise StorageError("redis: sentinel_master is required with sentinel_addresses")
            hosts = [split_address(a) for a in sentinel_addresses]
            self._sentinel = Sentinel([(h["host"], h["port"]) for h in hosts], **common)
            self._primary: Redis = self._sentinel.master_for(sentinel_master)
            self._writer: Redis = self._sentinel.master_for(
                sentinel_master, retry=Retry(NoBackoff(), 0)
            )
            self._waiter: Redis = self._sentinel.master_for(
                sentinel_master, retry=Retry(NoBackoff(), 0), socket_timeout=wait_timeout
            )
            self._where = f"sentinel master {sentinel_master!r}"
            self._sentinel_master = sentinel_master
        else:
            self._primary = Redis(**{**common, **split_address(address)})
            self._writer = Redis(**{**once, **split_address(address)})
            self._waiter = Redis(**{**waits, **split_address(address)})
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
        for client in (self._primary, self._writer, self._waiter, self._replica):
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

    # -- reads -----------------------------------------------------------------------------

    def _reader(self) -> Redis:
        if self.read_from_replica and self._replica is not None:
            return self._replica
        return self._primary

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

    async def primary_address(self) -> str:
        """"host:port" of the primary: the configured address, or the master Sentinel names
        now (the invalidation feed's address without a `read_address`)."""
        if self._sentinel is None:
            return self._where
        with self._errors("sentinel master lookup"):
            host, port = await self._sentinel.discover_master(self._sentinel_master)
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    async def close(self) -> None:
        for client in (self._primary, self._writer, self._waiter, self._replica):
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose(close_connection_pool=True)
        if self._sentinel is not None:
            for s in self._sentinel.sentinels:
                with contextlib.suppress(RedisError, OSError):
                    await s.aclose()
