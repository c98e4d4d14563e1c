"""Shared by the token store's unit tests: a settable clock and a fresh store over in-memory
storage."""

from __future__ import annotations

from transit.storage import StorageView
from transit.storage.inmem import InmemBackend
from transit.tokens import TokenStore


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


async def make(clock: Clock | None = None, physical: InmemBackend | None = None) -> TokenStore:
    store = TokenStore(StorageView(physical if physical is not None else InmemBackend(), "sys/token/"), clock=clock or Clock())
    await store.setup()
    return store


def dump(physical: InmemBackend) -> str:
    return repr(physical._data)
