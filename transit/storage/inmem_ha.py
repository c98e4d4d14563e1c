"""In-memory `HABackend`: the reference implementation of the HA contract (tests, one process).

    store = InmemHABackend(owner="node-a")        # a fresh store, seen by node A
    other = store.connect("node-b")               # the same store, seen by node B

Every handle from `connect` (and the first one) shares the data, the lock, the epoch counter
and the write index, as several nodes share one Redis; each handle has its own `owner`,
`fence`, `last_index` and `lock_ttl`, as each node has its own backend object.

Semantics, exactly those of `base.HABackend` (and of `RedisBackend`'s scripts):

- the lock is `(owner, epoch)` with a deadline `lock_ttl` seconds ahead on a monotonic clock
  (injectable: `clock=`); an expired lock is simply absent;
- `acquire_lock(owner, min_epoch)` takes a free lock only, with epoch = max(stored epoch,
  min_epoch) + 1, and adopts `owner` as this handle's identity (a handle has one owner);
- `renew_lock` / `release_lock` act only while the lock holds exactly `(owner, epoch)`;
  `release_lock` refuses (`StorageError`) an owner other than the handle's own, and
  `break_lock` deletes another owner's lock only once no handle of that owner is open
  (`holder_gone`: the process is gone), as `RedisBackend` does;
- while `fence` is set, every write (put, delete, commit) checks that the lock holds
  `(this handle's owner, fence)` in the same step as the write and raises `errors.Fenced`
  otherwise, with nothing written; then the `commit` guards are compared (`errors.Conflict`);
- every applied write (each entry of a commit, a delete of a missing key too) increments the
  shared write index; `last_index` is the highest index this handle's writes returned.

Nothing awaits between the checks and the writes, so each commit is atomic with respect to
every other task of the event loop. Not shared between processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from transit.errors import Conflict, Fenced, StorageError
from transit.storage.base import Write, version_of
from transit.storage.inmem import InmemBackend


class _Shared:
    """What every handle of one store shares: the lock, the epoch counter, the index."""

    __slots__ = ("clock", "epoch", "handles", "index", "lock")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock: tuple[str, int, float] | None = None  # owner, epoch, deadline
        self.epoch = 0
        self.index = 0
        self.handles: dict[str, int] = {}  # owner -> open handles (for holder_gone)

    def holder(self) -> tuple[str, int] | None:
        lock = self.lock
        if lock is None:
            return None
        if self.clock() >= lock[2]:
            self.lock = None  # expired: as if Redis had dropped the key
            return None
        return lock[0], lock[1]


class InmemHABackend(InmemBackend):
    """`HABackend` in memory. See the module docstring."""

    __slots__ = ("_closed", "_owner", "_shared", "fence", "last_index", "lock_ttl")

    def __init__(
        self, *, owner: str | None = None, lock_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic, _of: InmemHABackend | None = None,
    ) -> None:
        super().__init__()
        if lock_ttl <= 0:
            raise StorageError("inmem ha: lock_ttl must be positive")
        if _of is not None:  # another node's view of the same store
            self._data = _of._data
            self._keys = _of._keys
            self._shared: _Shared = _of._shared
        else:
            self._shared = _Shared(clock)
        self.fence: int | None = None
        self.last_index = 0
        self.lock_ttl = lock_ttl
        self._owner: str | None = None
        self._closed = False
        if owner is not None:
            self._adopt(owner)

    def connect(self, owner: str | None = None, *, lock_ttl: float | None = None) -> InmemHABackend:
        """Another handle on this store (another node, or another process of one node)."""
        return InmemHABackend(
            owner=owner, lock_ttl=self.lock_ttl if lock_ttl is None else lock_ttl, _of=self
        )

    # -- identity --------------------------------------------------------------------------

    @property
    def owner(self) -> str | None:
        return self._owner

    def _adopt(self, owner: str) -> None:
        if not owner:
            raise StorageError("inmem ha: the lock owner must not be empty")
        if self._owner is not None:
            if owner != self._owner:
                raise StorageError(f"inmem ha: this handle is {self._owner!r}, not {owner!r}")
            return
        self._owner = owner
        handles = self._shared.handles
        handles[owner] = handles.get(owner, 0) + 1

    async def close(self) -> None:
        """Forget this handle (`holder_gone` of its owner turns true once all are closed).
        The lock stays until it expires or is released, as with a crashed process."""
        if self._closed:
            return
        self._closed = True
        owner, handles = self._owner, self._shared.handles
        if owner is not None:
            handles[owner] -= 1
            if not handles[owner]:
                del handles[owner]

    # -- writes: fenced, guarded, indexed --------------------------------------------------

    async def put(self, key: str, value: bytes) -> None:
        await self.commit([Write(key, bytes(value))])

    async def delete(self, key: str) -> None:
        await self.commit([Write(key, None)])

    async def commit(
        self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
        durable: bool = False,
    ) -> None:
        """Fence, then guards, then every write in order (see the module docstring).
        `durable` is a no-op: there are no replicas."""
        shared = self._shared
        if self.fence is not None and (
            self._owner is None or shared.holder() != (self._owner, self.fence)
        ):
            raise Fenced(
                f"write of {', '.join(w.key for w in writes)} refused: "
                "this node no longer holds the lock"
            )
        for key, version in (expect or {}).items():
            if version_of(self._data.get(key)) != version:
                raise Conflict(f"{key!r} changed since it was read")
        for w in writes:
            # The base methods never suspend, so no other task runs in between.
            if w.value is None:
                await InmemBackend.delete(self, w.key)
            else:
                await InmemBackend.put(self, w.key, w.value)
            shared.index += 1
        if writes:
            self.last_index = max(self.last_index, shared.index)

    # -- HA primitives ---------------------------------------------------------------------

    async def acquire_lock(self, owner: str, min_epoch: int = 0) -> int | None:
        """Take the lock if nobody holds it: the new epoch (above `min_epoch` and above
        every earlier epoch of this store), else None."""
        self._adopt(owner)
        shared = self._shared
        if shared.holder() is not None:
            return None
        shared.epoch = max(shared.epoch, int(min_epoch)) + 1
        shared.lock = (owner, shared.epoch, shared.clock() + self.lock_ttl)
        return shared.epoch

    async def renew_lock(self, owner: str, epoch: int) -> bool:
        shared = self._shared
        if shared.holder() != (owner, epoch):
            return False
        shared.lock = (owner, epoch, shared.clock() + self.lock_ttl)
        return True

    async def release_lock(self, owner: str, epoch: int) -> None:
        """Delete the lock, only if it holds exactly `(owner, epoch)`. `owner` must be this
        handle's own: another process's lock is never released (`break_lock` takes over from
        a holder that is gone)."""
        if self._owner is not None and owner != self._owner:
            raise StorageError(f"inmem ha: owner {self._owner!r} cannot release the lock of "
                               f"{owner!r}")
        shared = self._shared
        if shared.holder() == (owner, epoch):
            shared.lock = None

    async def break_lock(self, owner: str, epoch: int) -> bool:
        """Delete `(owner, epoch)` held by another owner, only once no handle of that owner
        is open (`holder_gone`). True when nothing of that holder remains."""
        if owner == self._owner or not await self.holder_gone(owner):
            return False
        shared = self._shared
        if shared.holder() == (owner, epoch):
            shared.lock = None
        return True

    async def lock_holder(self) -> tuple[str, int] | None:
        return self._shared.holder()

    async def holder_gone(self, owner: str) -> bool:
        """True when no open handle of this store has `owner` (its process is gone)."""
        return owner not in self._shared.handles

    async def write_index(self, *, replica: bool = False) -> int:
        """The shared write index (there is no replica: `replica` reads the same)."""
        return self._shared.index

    def __repr__(self) -> str:
        return f"InmemHABackend(owner={self._owner!r}, fence={self.fence!r})"
