"""Several worker processes per node (DESIGN §6: "a node uses all its cores").

`transit server` with `workers` > 1 (redis storage only) runs a small supervisor in the
original process and forks N workers before any event loop exists:

    supervisor (no event loop, no Redis) ── binds the listener sockets, picks the node id
      │                                     and the lock owner `<node id>@<instance>`
      ├─ worker 0: server.run() with the HAController (election, renewal, advertisement,
      │            cluster listener, echo, periodic tasks), exactly as a one-process node
      ├─ worker 1: server.run() with a RoleFollower (transit/cluster/follower.py): polls the
      │            lock every 250 ms and takes the role worker 0 holds (fenced writes)
      └─ ...

The owner (transit/cluster/identity.py) is made once per supervisor start and given to every
worker, a restarted one included: the workers of this node share the HA role and nobody else
does, not even another `transit server` started with the same node id (its owner differs, so
its workers neither follow our lock nor take it while we run).

Listeners: for each worker and listener the supervisor binds its own socket with SO_REUSEPORT
(the kernel spreads new connections evenly over the workers; a shared accept socket lets one
busy worker take most of them), falling back to one shared socket where SO_REUSEPORT does not
exist. Sockets stay open in the supervisor, so a restarted worker picks up its socket's queue.

Each worker has a duplex pipe to the supervisor, which routes small messages (pickled tuples)
between workers; secrets (unseal key shares, the root key for a restarted worker) exist only in
process memory and these pipes, never in files or logs:

    worker → supervisor   ("event", id, kind, payload)   fanned out to every other worker;
                          ("ack", id)                    once applied; the origin gets
    supervisor → origin   ("done", id)                   when every live sibling acked
    worker → supervisor   ("sync-request", id)           a restarted worker asks a sibling for
    sibling → requester   ("sync-reply", id, root|None)  the root key (Shamir: it came up sealed)
    worker → supervisor   ("call", id, kind, payload)    run something on worker 0 (a rekey or
    worker 0 → requester  ("call-reply", id, answer)     root generation step: its attempt lives
                                                         there); answer None if worker 0 is gone

Events: `unseal` (a share or a reset; `sys/unseal` answers only once every worker applied it),
`init`, `seal`, `step-down` (a follower asks worker 0), `echo` (a standby's heartbeat, so
`sys/ha-status` is the same on every worker), and `index`: after a request that wrote storage
(write index n), the worker answers only once every sibling's invalidation feed has applied n
(bounded by `core.index_wait`), so a client's next request sees its write whichever worker it
reaches (a new mount, a rotated key, a revoked token). With a static seal every worker unseals
itself. `rekeyed`: worker 0 applied a rekey (sys/rekey): the others re-read the seal
configuration and follow the new root key (`Barrier.reload_keyring`).

The supervisor forwards SIGTERM/SIGINT (as SIGTERM) and SIGHUP/SIGUSR1 to the workers, restarts
a worker that exits while it is not stopping (giving up with exit 1 after `MAX_RESTARTS` within
`RESTART_WINDOW` seconds), and exits once every worker has stopped. Workers die with the
supervisor (PR_SET_PDEATHSIG), so `kill -9 <node pid>` still kills the whole node; a stopped
supervisor (SIGSTOP of the node's pid) is noticed by its workers within 100 ms and they stop
themselves (it holds no lock itself, so this is what pausing the node means), and SIGCONT to it
is forwarded. Signalling the process group does the same at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from transit.config import ServerConfig, split_host_port
from transit.ratelimit import Buckets

log = logging.getLogger("transit.workers")

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
RELAY_TIMEOUT = 15.0  # how long a worker waits for its siblings to apply an event
EXIT_CONFIG = 78  # a worker's configuration error: restarting would not help
STOP_GRACE = 15.0  # after forwarding SIGTERM, SIGKILL what still runs after this (+ drain)
_PR_SET_PDEATHSIG = 1


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


# -- the supervisor (parent process) -----------------------------------------------------------


def bind_listeners(config: ServerConfig, reuse_port: bool) -> list[socket.socket]:
    """One listening socket per configured listener."""
    out: list[socket.socket] = []
    try:
        for listener in config.listeners:
            host, port = split_host_port(listener.address)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError:
        for sock in out:
            sock.close()
        raise
    return out


@dataclass
class _Worker:
    index: int
    process: Any
    conn: Connection
    started: float


class Supervisor:
    """Fork `count` workers running `target(info)`; see the module docstring."""

    def __init__(self, config: ServerConfig, count: int, node_id: str,
                 target: Callable[[WorkerInfo], None], owner: str = "") -> None:
        from transit.cluster.identity import new_owner

        self.config = config
        self.count = count
        self.node_id = node_id
        self.owner = owner or new_owner(node_id)  # once per start, shared by every worker
        self.target = target
        self.ctx = multiprocessing.get_context("fork")
        self.buckets = Buckets.create()  # before any fork: every worker shares them
        self.reuse_port = hasattr(socket, "SO_REUSEPORT")
        self.sockets: list[list[socket.socket]] = []  # [worker][listener]
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_code = 0
        self.crashes: list[float] = []
        self.pending: dict[Any, tuple[int, set[int]]] = {}  # event id -> (origin, waiting)
        self.syncs: dict[Any, int] = {}  # sync id -> requester
        self.calls: dict[Any, int] = {}  # call id -> requester (calls go to worker 0)
        self.pid = os.getpid()

    # -- lifecycle ------------------------------------------------------------------------------
    def run(self) -> int:
        if self.reuse_port:
            try:
                self.sockets = [bind_listeners(self.config, True) for _ in range(self.count)]
            except OSError as exc:
                if exc.errno not in (getattr(os, "ENOPROTOOPT", 92), 22):
                    raise
                self.reuse_port = False
        if not self.reuse_port:
            shared = bind_listeners(self.config, False)
            self.sockets = [shared for _ in range(self.count)]
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGCONT):
            signal.signal(sig, self._forward)
        sys.stdout.write(f"==> transit node {self.node_id}: {self.count} worker processes "
                         f"(supervisor pid {self.pid}, lock owner {self.owner})\n")
        sys.stdout.flush()
        from transit import metrics

        # the node's metrics directory (0700): every worker writes its own files there, a
        # scrape adds them up (transit/metrics.py); removed when the node stops
        with metrics.private_dir():
            for i in range(self.count):
                self._spawn(i, restarted=False)
            try:
                self._loop()
            finally:
                for sock in {id(s): s for row in self.sockets for s in row}.values():
                    sock.close()
        return self.exit_code

    def _spawn(self, index: int, *, restarted: bool) -> None:
        parent, child = self.ctx.Pipe(duplex=True)
        info = WorkerInfo(index, self.count, self.node_id, child, self.sockets[index], restarted,
                          self.owner, self.buckets)
        process = self.ctx.Process(target=self._child, args=(info, parent),
                                   name=f"transit-worker-{index}", daemon=False)
        process.start()
        child.close()
        self.workers[index] = _Worker(index, process, parent, time.monotonic())
        log.info("worker %d started (pid %d)%s", index, process.pid,
                 " after a crash" if restarted else "")

    def _child(self, info: WorkerInfo, own_parent_end: Connection) -> None:
        """Runs in the forked worker: drop what belongs to the supervisor, then serve."""
        _die_with_parent(self.pid)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                    signal.SIGCONT):
            signal.signal(sig, signal.SIG_DFL)
        own_parent_end.close()
        for w in self.workers.values():
            with contextlib.suppress(OSError):
                w.conn.close()
        mine = {id(s) for s in info.sockets}
        for row in self.sockets:
            for sock in row:
                if id(sock) not in mine:
                    sock.close()
        _tag_logs(info.index)
        self.target(info)

    def _on_stop(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + STOP_GRACE + \
                self.config.default_max_request_duration
        for w in self.workers.values():
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(w.process.pid, signal.SIGTERM)

    def _forward(self, signum: int, frame: Any) -> None:
        for w in self.workers.values():
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(w.process.pid, signum)

    def _loop(self) -> None:
        while self.workers:
            conns = {w.conn: w for w in self.workers.values()}
            sentinels = {w.process.sentinel: w for w in self.workers.values()}
            ready = wait([*conns, *sentinels], timeout=0.5)
            for obj in ready:
                if obj in conns:
                    self._receive(conns[obj])
            for obj in ready:
                if obj in sentinels:
                    self._reap(sentinels[obj])
            if self.stopping and time.monotonic() > self.stop_deadline:
                for w in self.workers.values():
                    log.warning("worker %d did not stop in time; killing it", w.index)
                    with contextlib.suppress(ProcessLookupError, TypeError):
                        os.kill(w.process.pid, signal.SIGKILL)
                self.stop_deadline = float("inf")

    def _reap(self, w: _Worker) -> None:
        w.process.join(1.0)
        if w.process.exitcode is None:
            return
        self._forget(w)
        if self.stopping:
            log.info("worker %d stopped (exit %s)", w.index, w.process.exitcode)
            return
        now = time.monotonic()
        self.crashes = [t for t in self.crashes if now - t < RESTART_WINDOW] + [now]
        log.error("worker %d (pid %d) exited unexpectedly (exit %s)", w.index, w.process.pid,
                  w.process.exitcode)
        if w.process.exitcode == EXIT_CONFIG or len(self.crashes) > MAX_RESTARTS:
            log.error("%d worker crashes within %.0fs: giving up", len(self.crashes),
                      RESTART_WINDOW)
            self.exit_code = 1
            self._on_stop(signal.SIGTERM, None)
            return
        time.sleep(min(2.0, 0.1 * 2 ** (len(self.crashes) - 1)))
        self._spawn(w.index, restarted=True)

    def _forget(self, w: _Worker) -> None:
        self.workers.pop(w.index, None)
        with contextlib.suppress(OSError):
            w.conn.close()
        for eid, (origin, waiting) in list(self.pending.items()):
            waiting.discard(w.index)
            if origin == w.index:
                del self.pending[eid]
            elif not waiting:
                self._done(eid)
        for sid, requester in list(self.syncs.items()):
            if requester == w.index:
                del self.syncs[sid]
        for cid, requester in list(self.calls.items()):
            if requester == w.index:
                del self.calls[cid]
            elif w.index == 0:  # it will not answer: tell the caller now
                del self.calls[cid]
                self._send(requester, ("call-reply", cid, None))

    # -- message routing --------------------------------------------------------------------------
    def _send(self, index: int, msg: tuple[Any, ...]) -> bool:
        w = self.workers.get(index)
        if w is None:
            return False
        try:
            w.conn.send(msg)
        except (OSError, ValueError):
            return False
        return True

    def _receive(self, w: _Worker) -> None:
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                self._route(w.index, msg)
        except (EOFError, OSError):
            pass  # the worker is going away; its sentinel says when

    def _route(self, sender: int, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "event":
            _, eid, event, payload = msg
            waiting = {i for i in self.workers if i != sender
                       and self._send(i, ("event", eid, event, payload))}
            self.pending[eid] = (sender, waiting)
            if not waiting:
                self._done(eid)
        elif kind == "ack":
            entry = self.pending.get(msg[1])
            if entry is not None:
                entry[1].discard(sender)
                if not entry[1]:
                    self._done(msg[1])
        elif kind == "sync-request":
            sid = msg[1]
            for i in sorted(self.workers):
                if i != sender and self._send(i, ("sync-request", sid)):
                    self.syncs[sid] = sender
                    return
            self._send(sender, ("sync-reply", sid, None))
        elif kind == "sync-reply":
            requester = self.syncs.pop(msg[1], None)
            if requester is not None:
                self._send(requester, msg)
        elif kind == "call":
            if sender != 0 and self._send(0, msg):
                self.calls[msg[1]] = sender
            else:
                self._send(sender, ("call-reply", msg[1], None))
        elif kind == "call-reply":
            requester = self.calls.pop(msg[1], None)
            if requester is not None:
                self._send(requester, msg)

    def _done(self, eid: Any) -> None:
        origin, _ = self.pending.pop(eid, (None, set()))
        if origin is not None:
            self._send(origin, ("done", eid))


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this process when the supervisor dies (so does a `kill -9` of it)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)


def _tag_logs(index: int) -> None:
    """Prefix this worker's log lines with `w<index>`."""
    for handler in logging.getLogger().handlers:
        fmt = handler.formatter._fmt if handler.formatter is not None else "%(message)s"
        handler.setFormatter(logging.Formatter(f"[w{index}] {fmt}"))


# -- the worker side ----------------------------------------------------------------------------


class WorkerLink:
    """A worker's end of the supervisor pipe, driven by the worker's event loop."""

    def __init__(self, info: WorkerInfo, core: Any) -> None:
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
        inner = getattr(core.seal, "inner", core.seal)
        with contextlib.suppress(Exception):
            await inner.unseal(None, reset=True)
        await core.barrier.unseal(bytes(root))
        del root
        core.initialized = True
        await core.post_unseal()
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
            barrier = self.core.barrier
            root = None if barrier.sealed else bytes(barrier._root)
            self._send(("sync-reply", msg[1], root))

    async def _answer_call(self, cid: Any, kind: str, payload: dict[str, Any]) -> None:
        """Worker 0: run a sibling's call and send the answer back (None: unknown kind)."""
        answer = None
        try:
            if kind == "operator":
                from transit.engines.system.operator import answer_call

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


async def apply_event(core: Any, kind: str, payload: dict[str, Any],
                      link: WorkerLink | None = None) -> None:
    """Apply what a sibling worker did (never relays it again)."""
    from transit.cluster.follower import RoleFollower
    from transit.errors import TransitError

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


# -- entry point --------------------------------------------------------------------------------


def node_id_for(config: ServerConfig) -> str:
    """The configured node id (ConfigError if invalid, e.g. with an "@"), else a random one."""
    from transit.cluster.identity import configured_node_id

    return configured_node_id(config.storage.options)


def serve_workers(config: ServerConfig, count: int) -> int:
    """Run `count` workers of one node under a supervisor; the process exit code."""
    import uvloop

    from transit.errors import ConfigError
    from transit.server import run

    def target(info: WorkerInfo) -> None:
        try:
            uvloop.run(run(config, None, worker=info))
        except KeyboardInterrupt:
            pass
        except ConfigError as exc:
            print(f"error loading configuration: {exc}", file=sys.stderr)
            sys.exit(EXIT_CONFIG)

    try:
        node_id = node_id_for(config)
    except ConfigError as exc:
        print(f"error loading configuration: {exc}", file=sys.stderr)
        return 1
    return Supervisor(config, count, node_id, target).run()
