"""What the storage conformance suites share: asserting an expected error or an absent key,
closing a backend after a check, and turning a tuple of checks into one pytest test each."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from transit.storage.base import Backend


async def assert_raises(kind: type[BaseException], call: Awaitable[Any]) -> BaseException:
    """Await `call`, which must raise `kind` (exactly that class or a subclass)."""
    try:
        await call
    except kind as exc:
        return exc
    raise AssertionError(f"expected {kind.__name__}, nothing was raised")


async def assert_absent(b: Backend, *keys: str) -> None:
    for key in keys:
        assert await b.get(key) is None, f"{key} was written"


async def close_backend(backend: Backend) -> None:
    for name in ("aclose", "close"):
        fn = getattr(backend, name, None)
        if fn is not None:
            result = fn()
            if inspect.isawaitable(result):
                await result
            return


def install_tests(cls: type, checks: tuple[Any, ...], make: Callable[[Any], Any]) -> None:
    for check in checks:
        name = "test_" + check.__name__.removeprefix("check_")
        test = make(check)
        test.__name__ = test.__qualname__ = name
        setattr(cls, name, test)

