"""A worker's link to its sibling worker processes (one node, several processes; the supervisor
that forks them and routes their messages is transit/workers.py, DESIGN §6).

Each worker holds a `WorkerLink`: its end of the duplex pipe to the supervisor, driven by the
worker's event loop. Messages are pickled tuples; secrets (unseal key shares, the root key for a
restarted worker) exist only in process memory and these pipes, never in files or logs:

    worker → supervisor   ("event", id, kind, payload)   fanned out to every other worker;
                          ("ack", id)                    once applied; the origin gets
    supervisor → origin   ("done", id)                   when every live sibling acked
    worker → supervisor   ("sync-request", id)           a restarted worker asks a sibling for
    sibling → requester   ("sync-reply", id, root|None)  the root key (Shamir: it came up sealed)
    worker → supervisor   ("call", id, kind, payload)    run something on worker 0 (a rekey or
    worker 0 → requester  ("call-reply", id, answer)     root generation step: its attempt lives
                                                         there); answer None if worker 0 is gone

`apply_event` applies a sibling's event to this worker's node (see transit/workers.py for the
list); `RelayedSeal` wraps the node's seal so that an unseal share reaches every sibling.

The unseal hook is explicit: a sibling's sync request is answered with
`Barrier.root_key_copy()` (None while sealed) and a restarted worker unseals with
`unseal_with_sibling_root`, never by reading the barrier's private state.

Calls from siblings (worker 0 only) are answered by the system engine's `answer_call`
(transit/engines/system/operator.py: rekey and root generation steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from transit.cluster.follower import RoleFollower
from transit.cluster.ports import SiblingNode
from transit.engines.system.operator import answer_call
from transit.errors import TransitError
from transit.ratelimit import Buckets

log = logging.getLogger("transit.workers")  # the logger these lines always had

RELAY_TIMEOUT = 15.0  # how long a worker waits for its siblings to apply an event


@dataclass
class WorkerInfo:
    """What one worker process knows about its place in the node."""

    index: int
    count: int
    node_id: str
    conn: Connection | None = None
    sockets: list[socket.socket] = field(default_factory=list)  # one per listener
    restarted: bool = False
    owner: str = ""  # the node's HA lock owner, `<node id>@<instance>` (shared by its workers)
    buckets: Buckets | None = None  # the node's rate-limit buckets, in shared memory

    @property
    def elector(self) -> bool:
        """Worker 0 runs the election; the others follow it."""
        return self.index == 0


async def unseal_with_sibling_root(core: SiblingNode, root: bytes) -> None:
    """The unseal hook of a (re)started worker of an unsealed Shamir node: drop any unseal
    progress of its own, open the barrier with the root key a sibling sent, finish as an unseal
    does (`post_unseal`)."""
    inner = getattr(core.seal, "inner", core.seal)
    with contextlib.suppress(Exception):
        await inner.unseal(None, reset=True)
    await core.barrier.unseal(root)
    core.initialized = True
    await core.post_unseal()


class WorkerLink:
    """A worker's end of the supervisor pipe, driven by the worker's event loop."""

    def __init__(self, info: WorkerInfo, core: SiblingNode) -> None:
        assert info.conn is not None
        self.info = info
        self.conn = info.conn
        self.core = core
        self._ids = itertools.count(1)
        self._waiting: dict[Any, asyncio.Future[Any]] = {}
        self._queue: asyncio.Queue[tuple[Any, str, dict[str, Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None]
        self._tasks: set[asyncio.Future[None]] = set()

    def attach(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.conn.fileno(), self._readable)
        self._task = asyncio.create_task(self._apply_events(), name="worker-events")
        self._watch = asyncio.create_task(self._follow_pause(), name="worker-pause")

    def detach(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.conn.fileno())
        if self._task is not None:
            self._task.cancel()
            self._watch.cancel()

    async def _follow_pause(self, interval: float = 0.1) -> None:
        """A paused supervisor (SIGSTOP of the node's pid) pauses its workers too: a node
        whose main process is stopped must not keep renewing the HA lock. The supervisor
        forwards SIGCONT when it resumes."""
        path = f"/proc/{os.getppid()}/stat"
        while True:
            await asyncio.sleep(interval)
            try:
                with open(path, "rb") as f:
                    state = f.read().rsplit(b")", 1)[-1].split()[0]
            except (OSError, IndexError):
                return  # not Linux, or the supervisor is gone (the pipe says so too)
            if state == b"T":
                log.warning("the supervisor is stopped; pausing this worker too")
                os.kill(os.getpid(), signal.SIGSTOP)

    def _new_id(self) -> tuple[int, int]:
        return (self.info.index, next(self._ids))

    def _send(self, msg: tuple[Any, ...]) -> None:
        try:
            self.conn.send(msg)
        except (OSError, ValueError) as exc:
            log.warning("cannot reach the supervisor: %s", exc)

    async def _request(self, msg: tuple[Any, ...], what: str) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[msg[1]] = fut
        self._send(msg)
        try:
            return await asyncio.wait_for(fut, RELAY_TIMEOUT)
        except TimeoutError:
            log.warning("sibling workers did not answer %s within %.0fs", what, RELAY_TIMEOUT)
            return None
        finally:
            self._waiting.pop(msg[1], None)

    async def relay(self, kind: str, payload: dict[str, Any]) -> None:
        """Tell every sibling worker; returns once they all applied it (or a timeout)."""
        await self._request(("event", self._new_id(), kind, payload), kind)

    async def call(self, kind: str, payload: dict[str, Any]) -> Any:
        """Run `kind` on worker 0 (`answer_call`); its answer, or None if it did not answer
        (gone, restarting, or not within RELAY_TIMEOUT)."""
        return await self._request(("call", self._new_id(), kind, payload), kind)

    async def sync_unseal(self) -> bool:
        """A (re)started worker of an unsealed Shamir node unseals with a sibling's root key."""
        core = self.core
        root = await self._request(("sync-request", self._new_id()), "a sync request")
        if not root or not core.sealed:
            return False
        await unseal_with_sibling_root(core, bytes(root))
        del root
        log.info("unsealed with the root key of a sibling worker")
        return True

    # -- incoming ------------------------------------------------------------------------------
    def _readable(self) -> None:
        try:
            while self.conn.poll():
                self._dispatch(self.conn.recv())
        except (EOFError, OSError):
            log.error("the supervisor is gone; shutting down")
            self.detach()
            signal.raise_signal(signal.SIGTERM)

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind in ("done", "sync-reply", "call-reply"):
            fut = self._waiting.get(msg[1])
            if fut is not None and not fut.done():
                fut.set_result(True if kind == "done" else msg[2])
        elif kind == "call":
            task = asyncio.ensure_future(self._answer_call(msg[1], msg[2], msg[3]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "event" and msg[2] == "index":  # waits only on our feed: no queueing
            task = asyncio.ensure_future(self._applied_index(msg[1], msg[3]["index"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "event":
            self._queue.put_nowait((msg[1], msg[2], msg[3]))
        elif kind == "sync-request":
            self._send(("sync-reply", msg[1], self.core.barrier.root_key_copy()))

    async def _answer_call(self, cid: Any, kind: str, payload: dict[str, Any]) -> None:
        """Worker 0: run a sibling's call and send the answer back (None: unknown kind)."""
        answer = None
        try:
            if kind == "operator":
                answer = await answer_call(self.core, payload)
            else:
                log.warning("unknown call %r from a sibling worker", kind)
        finally:
            self._send(("call-reply", cid, answer))

    async def _applied_index(self, eid: Any, index: int) -> None:
        """A sibling wrote up to `index`: ack once our invalidation feed has applied it."""
        try:
            feed = self.core.invalidator
            if feed is not None and not self.core.sealed:
                if not await feed.wait_for_index(index, self.core.index_wait):
                    log.warning("invalidation feed did not reach index %d in time", index)
        finally:
            self._send(("ack", eid))

    async def _apply_events(self) -> None:
        while True:
            eid, kind, payload = await self._queue.get()
            try:
                await apply_event(self.core, kind, payload, self)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("applying the %s event of a sibling worker failed", kind)
            finally:
                self._send(("ack", eid))


async def apply_event(core: SiblingNode, kind: str, payload: dict[str, Any],
                      link: WorkerLink | None = None) -> None:
    """Apply what a sibling worker did (never relays it again)."""
    seal = getattr(core.seal, "inner", core.seal)
    if kind == "unseal":
        if payload.get("reset"):
            with contextlib.suppress(TransitError):
                await seal.unseal(None, reset=True)
            return
        try:
            if await seal.unseal(payload["key"]):
                core.initialized = True
                await core.post_unseal()
                return
        except TransitError as exc:
            log.info("a relayed unseal share was not accepted: %s", exc.message)
        if payload.get("unsealed") and core.sealed and link is not None:
            await link.sync_unseal()  # we missed earlier shares (restarted meanwhile)
    elif kind == "init":
        core.initialized = await core.barrier.initialized()
        if core.initialized and core.seal.auto and core.sealed and await seal.auto_unseal():
            await core.post_unseal()
    elif kind == "seal":
        if not core.sealed:
            await core.pre_seal_local()
        seal.seal()
    elif kind == "step-down":
        if core.ha is not None and not isinstance(core.ha, RoleFollower):
            await core.ha.step_down(wait=False)
    elif kind == "echo":
        core.record_echo(payload["info"], payload["now"], relayed=True)
    elif kind == "storage-back":
        core.storage_back()
    elif kind == "rekeyed":
        seal.forget_config()
        if not core.sealed:
            await core.barrier.reload_keyring()
    else:
        log.warning("unknown event %r from a sibling worker", kind)


class RelayedSeal:
    """`core.seal` of a worker: a SealManager whose `unseal` also reaches the siblings."""

    def __init__(self, inner: Any, link: WorkerLink) -> None:
        self.inner = inner
        self.link = link

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def unseal(self, key: bytes | None, reset: bool = False) -> bool:
        try:
            return bool(await self.inner.unseal(key, reset))
        finally:
            payload = {"key": key, "reset": reset, "unsealed": not self.inner.barrier.sealed}
            await self.link.relay("unseal", payload)
