"""The performance standby's invalidation feed (DESIGN §5, spec ha-and-sys-api §3.2).

Every write through `RedisBackend` INCRs `<p>/core/index` and PUBLISHes `"<index> <key>"` on
`<p>/invalidate` in the same Lua script. A standby subscribes on its LOCAL REPLICA: the replica
applies the replication stream in order, so a message never reaches us before its data is
readable there.

`InvalidationSubscriber` calls `on_key(key)` for every message (key without the prefix, e.g.
`logical/<uuid>/policy/<name>`) and tracks `applied_index`, the highest index whose
invalidation has been applied; `wait_for_index(n)` waits for it (X-Vault-Index consistency).

Missed messages would leave caches stale forever (OpenBao #3505), so on every (re)subscribe —
the first one included — it:

1. subscribes and waits for the confirmation (from here on nothing is missed);
2. waits until the replica's link to its primary is up (an empty, resyncing replica is no
   baseline);
3. reads `<p>/core/index` on the replica (everything up to it is in the replica's data);
4. calls `on_reset()` (drop every cache);
5. only then sets `applied_index` to that index and reports `connected`.

Gaps that do not drop our connection are detected too (e.g. the replica did a full resync
from its primary, which replays no PUBLISH): indexes are consecutive, so a message whose index
is more than `applied_index + 1` means some were lost; and when nothing arrives for a whole
`poll_interval` while the replica's index (read at every poll) is ahead of `applied_index`,
they were lost too. Either way it resubscribes, which resets. A failing `on_key` also forces a
resubscribe (and so a full reset) rather than claiming an index it did not apply.

It reconnects forever with capped exponential backoff and never raises out of its task.

**Bounded staleness** (issue 15, DESIGN §5). `fresh` says whether a performance standby may
serve from its caches right now: the feed is connected, the replica's link to its primary is
up, and everything acknowledged more than `max_staleness` seconds ago has been applied. At
every poll the subscriber reads the replica's replication status, then notes the time `t`
and reads the index on the primary (`primary_index`): every write acknowledged before `t`
has an index <= that value (the write script INCRs it before the reply). Once
`applied_index` reaches it, the caches reflect every write acknowledged before `t`, so they
are fresh until `t + max_staleness`. A replica that is paused, cut off, pointed at a dead
primary or just slow stops those confirmations and the standby stops serving locally within
the bound (it forwards; its health no longer says performance standby). An index that goes
backwards, on the replica or on the primary (a failover lost writes), resubscribes, which
drops every cache.

The address is fixed, or — with Sentinel and no `read_address` — found by `resolve()` at
every (re)subscribe: the current primary.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from transit.gocompat import is_digits
from transit.storage.redis.options import TLSOptions, client_options, split_address

log = logging.getLogger("transit.cluster.invalidation")

KeyCallback = Callable[[str], Awaitable[None] | None]
ResetCallback = Callable[[], Awaitable[None] | None]
IndexReader = Callable[[], Awaitable[int]]
AddressResolver = Callable[[], Awaitable[str]]

DEFAULT_MAX_STALENESS = 5.0  # seconds; the `performance_standby_max_staleness` default
_MAX_PENDING = 256  # primary probes waiting for the replica to catch up


class _Resync(Exception):
    """Internal: drop the subscription and start over (which resets every cache)."""


def parse_message(data: bytes | str) -> tuple[int, str] | None:
    """`"<index> <key>"` -> (index, key); None when malformed."""
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    index, sep, key = text.partition(" ")
    if not sep or not key or not is_digits(index):
        return None
    return int(index), key


async def _call(fn: Callable[..., Awaitable[None] | None], *args: Any) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


class InvalidationSubscriber:
    """Subscribes to `<prefix>/invalidate` on `address` (the local replica); see the module
    docstring. `start()` launches the background task, `await stop()` ends it."""

    def __init__(
        self,
        address: str,
        prefix: str,
        on_key: KeyCallback,
        on_reset: ResetCallback,
        *,
        username: str = "",
        password: str = "",
        db: int = 0,
        tls: TLSOptions | None = None,
        timeout: float = 5.0,
        client_name: str = "",
        poll_interval: float | None = None,
        backoff_min: float = 0.05,
        backoff_max: float = 5.0,
        primary_index: IndexReader | None = None,
        max_staleness: float = DEFAULT_MAX_STALENESS,
        resolve: AddressResolver | None = None,
    ) -> None:
        prefix = prefix.rstrip("/")
        self.address = address
        self.resolve = resolve
        self.primary_index = primary_index
        self.max_staleness = max_staleness
        if poll_interval is None:
            poll_interval = min(1.0, max(0.05, max_staleness / 5))
        self.prefix = prefix
        self.channel = f"{prefix}/invalidate"
        self.index_key = f"{prefix}/core/index"
        self.on_key = on_key
        self.on_reset = on_reset
        self.poll_interval = poll_interval
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.applied_index = 0
        self.resets = 0  # completed (re)subscriptions, each with an on_reset()
        self.last_error = ""
        self.stale_reason = "the invalidation feed is not connected yet"
        self._fresh_until = float("-inf")
        self._pending: collections.deque[tuple[int, float]] = collections.deque()
        self._connected = False
        self._reconnected = False  # set by redis-py's connect callback on a silent reconnect
        self._cond = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

        # No transparent retries: redis-py would reconnect and resubscribe behind our back,
        # and whatever was published in between would be lost without a reset.
        kwargs = client_options(db=db, timeout=timeout, username=username, password=password,
                                tls=tls, retry=Retry(NoBackoff(), 0))
        if client_name:
            kwargs["client_name"] = client_name
        self._base_kwargs = kwargs
        self._kwargs = {**kwargs, **split_address(address)} if address else dict(kwargs)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Subscribed, reset, and caught up to the replica's index at subscribe time."""
        return self._connected

    @property
    def fresh(self) -> bool:
        """Whether the caches this feed keeps may be served from now (see the module
        docstring). Without a `primary_index` reader: whether the feed is connected."""
        if not self._connected:
            return False
        if self.primary_index is None:
            return True
        return time.monotonic() < self._fresh_until

    @property
    def staleness(self) -> float | None:
        """Seconds since the latest moment up to which every acknowledged write is known to
        be applied here (None: never confirmed since the last (re)subscribe)."""
        if self._fresh_until == float("-inf"):
            return None
        return time.monotonic() - (self._fresh_until - self.max_staleness)

    @property
    def problem(self) -> str:
        """Why the caches are not fresh ("" when they are)."""
        if self.fresh:
            return ""
        if not self._connected:
            return f"invalidation feed not connected: {self.last_error or 'connecting'}"
        if self.stale_reason:
            return self.stale_reason
        age = self.staleness
        shown = "never confirmed" if age is None else f"{age:.1f}s behind"
        return (f"local replica lags the primary ({shown}; bound "
                f"{self.max_staleness:g}s)")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Launch the subscriber task (needs a running event loop). Idempotent."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"invalidation:{self.channel}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._connected = False
        if task is not None:
            task.cancel()
            # Closing a pubsub connection mid-read can hang in redis-py: don't let that keep
            # a node from becoming active (the task finishes on its own later).
            await asyncio.wait({task}, timeout=2.0)

    # -- waiting ----------------------------------------------------------------------------
    async def wait_for_index(self, n: int, timeout: float | None) -> bool:
        """True once `applied_index >= n`; False when `timeout` seconds pass first."""
        if self.applied_index >= n:
            return True
        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    await self._cond.wait_for(lambda: self.applied_index >= n)
        except TimeoutError:
            return self.applied_index >= n
        return True

    async def wait_connected(self, timeout: float | None) -> bool:
        """True once connected (for start-up and tests); False on timeout."""
        if self._connected:
            return True
        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    await self._cond.wait_for(lambda: self._connected)
        except TimeoutError:
            return self._connected
        return True

    async def _advance(self, index: int) -> None:
        if index > self.applied_index:
            self.applied_index = index
        self._settle()
        async with self._cond:
            self._cond.notify_all()

    # -- freshness --------------------------------------------------------------------------
    def _settle(self) -> None:
        """Extend `_fresh_until` by every primary probe the applied index has reached."""
        pending = self._pending
        while pending and pending[0][0] <= self.applied_index:
            _, t = pending.popleft()
            self._fresh_until = max(self._fresh_until, t + self.max_staleness)

    def _note_probe(self, index: int, t: float) -> None:
        pending = self._pending
        if pending and pending[-1][0] == index:
            pending[-1] = (index, t)  # same requirement, later confirmation
        else:
            pending.append((index, t))
            if len(pending) > _MAX_PENDING:
                pending.popleft()  # (only ever confirms less: safe)
        self._settle()

    async def _probe(self, client: Redis) -> None:
        """One freshness probe: the replica's link, then the primary's index (see the module
        docstring). Failures leave `_fresh_until` where it is, so staleness grows."""
        if self.primary_index is None:
            return
        info = await client.info("replication")
        if info.get("role") == "slave" and info.get("master_link_status") != "up":
            self.stale_reason = "the local replica's link to its primary is down"
            self._fresh_until = float("-inf")  # whatever its lag: not served from
            self._pending.clear()
            return
        t = time.monotonic()
        try:
            index = await asyncio.wait_for(self.primary_index(),
                                           max(0.2, self.max_staleness / 2))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stale_reason = f"cannot read the primary's index: {exc!r}"
            return
        if index < self.applied_index:
            raise _Resync(f"the primary's index went back from {self.applied_index} to "
                          f"{index} (a failover lost writes): resetting every cache")
        self.stale_reason = ""
        self._note_probe(index, t)

    # -- the loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = self.backoff_min
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never crash: log, back off, resubscribe
                self.last_error = f"{type(exc).__name__}: {exc}"
                level = logging.INFO if isinstance(exc, _Resync) else logging.WARNING
                log.log(level, "invalidation feed on %s lost: %s", self.address, self.last_error)
            finally:
                self._connected = False
            if time.monotonic() - started > 10 * self.backoff_max:
                delay = self.backoff_min  # it was up for a good while: retry quickly
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self.backoff_max)

    async def _session(self) -> None:
        self._pending.clear()
        self._fresh_until = float("-inf")
        if self.resolve is not None:
            self.address = await self.resolve()
            self._kwargs = {**self._base_kwargs, **split_address(self.address)}
        client = Redis(**self._kwargs)
        pubsub = client.pubsub()
        try:
            await self._subscribe(pubsub)
            await self._await_link(client)
            baseline = await self._replica_index(client)
            await _call(self.on_reset)
            self.resets += 1
            if baseline < self.applied_index:
                log.warning(
                    "replica index went back from %d to %d (primary data lost?)",
                    self.applied_index,
                    baseline,
                )
            self.applied_index = baseline  # the truth about the replica, even if lower
            self._connected = True
            await self._advance(baseline)
            log.info("invalidation feed on %s subscribed at index %d", self.address, baseline)
            await self._probe(client)
            await self._listen(client, pubsub)
        finally:
            self._connected = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), 1.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(close_connection_pool=True), 1.0)

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(self.channel)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is not None and msg["type"] == "subscribe":
                self._watch_reconnects(pubsub)
                return
        raise _Resync("no subscribe confirmation")

    def _watch_reconnects(self, pubsub: PubSub) -> None:
        """Should redis-py ever reconnect the pubsub connection itself (it resubscribes on
        connect), notice it: messages published meanwhile are gone, so we must reset."""
        self._reconnected = False
        conn = pubsub.connection
        register = getattr(conn, "register_connect_callback", None)
        if register is not None:
            register(self._on_pubsub_connect)  # redis-py keeps a WeakMethod: bound methods only

    async def _on_pubsub_connect(self, _conn: Any) -> None:
        self._reconnected = True

    async def _await_link(self, client: Redis) -> None:
        """A replica must be linked to its primary before it can be our baseline."""
        while True:
            info = await client.info("replication")
            if info.get("role") != "slave" or info.get("master_link_status") == "up":
                return
            await asyncio.sleep(min(self.poll_interval, 0.1))

    async def _replica_index(self, client: Redis) -> int:
        value = await client.get(self.index_key)
        return int(value) if value is not None else 0

    async def _listen(self, client: Redis, pubsub: PubSub) -> None:
        probe: int | None = None
        quiet = True  # no message since the last poll
        next_poll = time.monotonic() + self.poll_interval
        while True:
            wait = max(0.0, next_poll - time.monotonic())
            msg = await pubsub.get_message(timeout=wait)
            if self._reconnected:
                raise _Resync("the pubsub connection was re-established underneath us")
            if msg is not None and msg["type"] == "message":
                quiet = False
                await self._apply(msg["data"])
            if time.monotonic() >= next_poll:
                if quiet and probe is not None and probe > self.applied_index:
                    raise _Resync(
                        f"replica at index {probe} but nothing arrived for "
                        f"{self.poll_interval}s (applied {self.applied_index}): messages lost"
                    )
                probe = await self._replica_index(client)
                if probe < self.applied_index:
                    raise _Resync(f"the replica's index went back from {self.applied_index} "
                                  f"to {probe} (it resynced from a primary that lacks "
                                  "writes): resetting every cache")
                await self._probe(client)
                quiet = True
                next_poll = time.monotonic() + self.poll_interval

    async def _apply(self, data: bytes | str) -> None:
        parsed = parse_message(data)
        if parsed is None:
            log.warning("ignoring malformed invalidation message %r", data)
            return
        index, key = parsed
        if index > self.applied_index + 1:
            # Indexes are consecutive (one INCR per PUBLISH, in one script): a jump means the
            # messages in between never reached us (e.g. the replica resynced from a snapshot).
            raise _Resync(f"index jumped from {self.applied_index} to {index}: messages lost")
        try:
            await _call(self.on_key, key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _Resync(f"invalidating {key!r} failed: {exc!r}") from exc
        await self._advance(index)
