"""The process's pools for CPU-heavy work, so that it never runs on the event loop.

* **Threads** (`in_thread`): one per core, for work that releases the GIL (`cryptography`'s
  asymmetric operations; `hashlib` on large buffers) or that is pure Python but long (the
  interpreter hands the GIL back to the event loop's thread every `sys.getswitchinterval()`,
  5 ms, so the loop keeps answering).
* **Processes** (`in_process`, `in_process_sync`): spawned worker processes, for pure-Python
  work long enough that sharing the GIL would still slow every request (the raw RSA
  signature's big-integer arithmetic, about 90 ms for RSA-4096; parsing a large ACL policy,
  about 1 ms per `path` block). Arguments and results cross by pickle: send small inputs.

Both are created on first use in each OS process (the supervisor forks its workers before
any is used) and stopped by `shutdown()` when the process stops serving. Nothing here knows
what runs on them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_threads: ThreadPoolExecutor | None = None
_processes: ProcessPoolExecutor | None = None
_pid = 0  # the process that created the pools above (a forked child must not use them)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _own() -> None:
    """Forget pools inherited through fork (their threads and pipes belong to the parent)."""
    global _threads, _processes, _pid
    if _pid != os.getpid():
        _threads, _processes, _pid = None, None, os.getpid()


def thread_pool() -> ThreadPoolExecutor:
    """The bounded thread pool (one thread per core, at least two)."""
    global _threads
    pool = _threads
    if pool is not None and _pid == os.getpid():
        return pool
    with _lock:
        _own()
        if _threads is None:
            _threads = ThreadPoolExecutor(max_workers=max(2, _cpus()),
                                          thread_name_prefix="transit-cpu")
        return _threads


def process_pool() -> ProcessPoolExecutor:
    """The spawned process pool (one process per core; `spawn`, never `fork`: a forked copy
    of a serving process would inherit its sockets, locks and event loop)."""
    global _processes
    with _lock:
        _own()
        if _processes is None:
            _processes = ProcessPoolExecutor(max_workers=max(1, _cpus()),
                                             mp_context=multiprocessing.get_context("spawn"))
        return _processes


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on the thread pool."""
    return await asyncio.get_running_loop().run_in_executor(thread_pool(), fn, *args)


async def in_process(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a pool process (`fn` must be importable, arguments picklable). Where
    processes cannot be started (BrokenProcessPool, OSError), it runs on the thread pool."""
    try:
        future = process_pool().submit(fn, *args)
    except (BrokenProcessPool, OSError, RuntimeError):
        return await in_thread(fn, *args)
    try:
        return await asyncio.wrap_future(future)
    except BrokenProcessPool:
        _discard_processes()
        return await in_thread(fn, *args)


def in_process_sync(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a pool process, waited for by the calling thread; in the calling thread
    itself when it is the main thread (the event loop must not block on the pool) or when
    processes cannot be started."""
    if threading.current_thread() is threading.main_thread():
        return fn(*args)
    try:
        return process_pool().submit(fn, *args).result()
    except BrokenProcessPool:
        _discard_processes()
    except (OSError, RuntimeError):
        pass
    return fn(*args)


def _discard_processes() -> None:
    """A pool process died (killed, out of memory): the next call starts a fresh pool."""
    global _processes
    with _lock:
        pool, _processes = _processes, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    """Stop both pools of this process without waiting for running work (it is abandoned
    with the requests that asked for it)."""
    global _threads, _processes
    with _lock:
        if _pid != os.getpid():
            _threads = _processes = None
            return
        threads, processes, _threads, _processes = _threads, _processes, None, None
    if processes is not None:
        processes.shutdown(wait=False, cancel_futures=True)
    if threads is not None:
        threads.shutdown(wait=False, cancel_futures=True)
