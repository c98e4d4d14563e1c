"""The storage contracts every backend implements, and a prefix-scoped view of one.

Contracts (DESIGN §2, §7), each checked by a conformance suite in `storage/conformance/`:

- `Backend`: get/put/delete/list, plus the two calls that make read-modify-write safe across
  worker processes and nodes: `get_versioned` (read the *stored* entry and its version,
  never a replica or a cache) and `commit` (apply several writes atomically, only if every
  guarded entry still has the version read; else `errors.Conflict` and nothing written).
- `HABackend`: a `Backend` with the HA lock (`acquire_lock`/`renew_lock`/`release_lock`/
  `lock_holder`), the fence every write checks, and the write index.

A version is an opaque string: "" for an absent entry, else a digest of the stored bytes
(`version_of`). Barrier values carry a random nonce, so every write of an entry gives it a new
version; no separate generation counter is needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

ABSENT = ""


def version_of(value: bytes | None) -> str:
    """The version of a stored value: "" when absent, else its SHA-1 (hex, as Redis's
    `redis.sha1hex` computes it inside a script)."""
    return ABSENT if value is None else hashlib.sha1(value).hexdigest()  # noqa: S324


@dataclass(frozen=True, slots=True)
class Versioned:
    """A stored value read for update, with the version a later `commit` guards on."""

    value: bytes | None
    version: str


@dataclass(frozen=True, slots=True)
class Write:
    """One write of a `commit`: a put, or a delete when `value` is None."""

    key: str
    value: bytes | None


@runtime_checkable
class Backend(Protocol):
    """Async key/value storage with Vault's list semantics.

    Keys are `/`-separated paths without a leading slash. `list(prefix)` returns the
    immediate children under `prefix` (which is "" or ends with "/"): leaf names as-is,
    sub-folders with a trailing "/", sorted, without duplicates. A missing key reads as None;
    deleting a missing key is not an error.

    `commit(writes, expect, durable)` applies `writes` in order, all or nothing, only if every
    key in `expect` still has the given version (`ABSENT` = must not exist); otherwise it
    raises `errors.Conflict`. With `durable`, the backend also makes sure its replicas hold
    the writes before returning (`errors.ReplicationUnconfirmed` if they did not confirm:
    the writes are applied on the primary, the caller must not treat them as acknowledged).
    A write whose reply is lost raises `errors.OutcomeUnknown` and is never retried.

    Optional: `get_versioned_many(keys)` (one round trip for several keys). For backends
    shared by several processes: `claim(key, ttl) -> token | None` and
    `release_claim(key, token)`; `commit(..., claim=token)` then succeeds while guarded commits
    of others on that first key fail (`update` claims after losing several races in a row).
    """

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str) -> list[str]: ...

    async def get_versioned(self, key: str) -> Versioned: ...

    async def commit(
        self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
        durable: bool = False,
    ) -> None: ...


@runtime_checkable
class HABackend(Backend, Protocol):
    """A `Backend` shared by several nodes, with the HA lock and fencing (DESIGN §4).

    The lock value names its holder: an *owner* string unique to one running server (node id
    plus a per-start instance id, so two processes started with the same node id are two
    owners) and an epoch. Epochs only grow, across a storage failover too (`acquire_lock`
    takes the highest epoch the caller has seen). While `fence` is set, every write checks the
    lock still holds `<owner>:<fence>` in the same atomic step and raises `errors.Fenced`
    (nothing written) otherwise. `release_lock` deletes the lock only if it holds exactly the
    given owner and epoch: one process never deletes a lock another holds. `acquire_lock` is
    not re-entrant (a held lock is held, whoever asks). The fence is checked before any guard,
    so a stale writer gets `Fenced`, never `Conflict`. Every write increments the write index.
    """

    fence: int | None
    last_index: int

    async def acquire_lock(self, owner: str, min_epoch: int = 0) -> int | None: ...

    async def renew_lock(self, owner: str, epoch: int) -> bool: ...

    async def release_lock(self, owner: str, epoch: int) -> None: ...

    async def lock_holder(self) -> tuple[str, int] | None: ...

    async def write_index(self, *, replica: bool = False) -> int: ...


class StorageView:
    """A backend seen through a fixed key prefix (a mount's own corner of storage)."""

    __slots__ = ("_backend", "prefix")

    def __init__(self, backend: Backend, prefix: str) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self._backend = backend
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        return await self._backend.get(self.prefix + key)

    async def put(self, key: str, value: bytes) -> None:
        await self._backend.put(self.prefix + key, value)

    async def delete(self, key: str) -> None:
        await self._backend.delete(self.prefix + key)

    async def list(self, prefix: str) -> list[str]:
        return await self._backend.list(self.prefix + prefix)

    async def get_versioned(self, key: str) -> Versioned:
        return await self._backend.get_versioned(self.prefix + key)

    async def commit(
        self, writes: Sequence[Write], expect: Mapping[str, str] | None = None, *,
        durable: bool = False, **claim: str,
    ) -> None:
        p = self.prefix
        await self._backend.commit(
            [Write(p + w.key, w.value) for w in writes],
            {p + k: v for k, v in (expect or {}).items()}, durable=durable, **claim,
        )

    def __getattr__(self, name: str) -> object:
        """`claim`/`release_claim`/`get_versioned_many` of backends that have them (optional
        parts of the contract; `update` looks for them)."""
        if name in ("claim", "release_claim"):
            inner = getattr(self._backend, name)

            async def scoped(key: str, *args: object) -> object:
                return await inner(self.prefix + key, *args)

            return scoped
        if name == "get_versioned_many":
            many = getattr(self._backend, name)

            async def scoped_many(keys: Sequence[str]) -> object:
                return await many([self.prefix + k for k in keys])

            return scoped_many
        raise AttributeError(name)

    async def confirm_replicated(self) -> None:
        """See `RedisBackend.confirm_replicated` (a no-op for backends without replicas)."""
        confirm = getattr(self._backend, "confirm_replicated", None)
        if confirm is not None:
            await confirm()

    async def clear(self) -> None:
        """Delete every key under this view (used when a mount is removed)."""
        stack = [""]
        while stack:
            folder = stack.pop()
            for child in await self.list(folder):
                if child.endswith("/"):
                    stack.append(folder + child)
                else:
                    await self.delete(folder + child)
