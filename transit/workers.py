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
between workers: events fanned out to every sibling and acked, a restarted worker's sync request
for the root key, calls run on worker 0. The worker's end of the pipe, the message table and the
unseal hook are in transit/cluster/siblings.py (`WorkerLink`, `RelayedSeal`, `apply_event`).

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

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import uvloop

from transit import metrics
from transit.cluster.identity import configured_node_id, new_owner
from transit.cluster.siblings import WorkerInfo
from transit.config import ServerConfig, split_host_port
from transit.errors import ConfigError
from transit.ratelimit import Buckets
from transit.server import run as run_server

__all__ = ["Supervisor", "WorkerInfo", "bind_listeners", "node_id_for", "serve_workers"]

log = logging.getLogger("transit.workers")

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
EXIT_CONFIG = 78  # a worker's configuration error: restarting would not help
STOP_GRACE = 15.0  # after forwarding SIGTERM, SIGKILL what still runs after this (+ drain)
_PR_SET_PDEATHSIG = 1


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


# -- entry point --------------------------------------------------------------------------------


def node_id_for(config: ServerConfig) -> str:
    """The configured node id (ConfigError if invalid, e.g. with an "@"), else a random one."""
    return configured_node_id(config.storage.options)


def serve_workers(config: ServerConfig, count: int) -> int:
    """Run `count` workers of one node under a supervisor; the process exit code."""

    def target(info: WorkerInfo) -> None:
        try:
            uvloop.run(run_server(config, None, worker=info))
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
