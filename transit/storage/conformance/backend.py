"""The `Backend` conformance suite: its checks in one tuple (`CHECKS`), and the two ways to run
them (see the package docstring): `BackendConformance` for pytest, `check_backend` anywhere.
The checks themselves are in `keyvalue.py`, `commit.py` and `read_modify_write.py`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from transit.storage.base import Backend
from transit.storage.conformance.commit import (
    check_commit_conflict_writes_nothing,
    check_commit_guard_absent,
    check_commit_guard_matches,
    check_commit_many_writes,
    check_commit_unguarded,
    check_get_versioned,
)
from transit.storage.conformance.keyvalue import (
    check_concurrent_put_delete,
    check_concurrent_puts,
    check_delete,
    check_empty_folder_disappears,
    check_large_value,
    check_list_leaf_and_folder,
    check_list_nested,
    check_list_sorted_unique,
    check_missing_key,
    check_overwrite,
    check_protocol,
    check_round_trip,
    check_special_keys,
)
from transit.storage.conformance.read_modify_write import (
    check_update_abort_and_noop,
    check_update_concurrent_increments,
    check_update_creates_once,
    check_update_several_keys,
)
from transit.storage.conformance.support import close_backend, install_tests

BackendFactory = Callable[[], Backend | Awaitable[Backend]]
Check = Callable[[Backend], Coroutine[Any, Any, None]]


CHECKS: tuple[Check, ...] = (
    check_protocol,
    check_missing_key,
    check_round_trip,
    check_overwrite,
    check_delete,
    check_list_nested,
    check_list_leaf_and_folder,
    check_list_sorted_unique,
    check_empty_folder_disappears,
    check_special_keys,
    check_large_value,
    check_concurrent_puts,
    check_concurrent_put_delete,
    check_get_versioned,
    check_commit_unguarded,
    check_commit_guard_matches,
    check_commit_conflict_writes_nothing,
    check_commit_guard_absent,
    check_commit_many_writes,
    check_update_concurrent_increments,
    check_update_creates_once,
    check_update_several_keys,
    check_update_abort_and_noop,
)


async def run_check(factory: BackendFactory, check: Check) -> None:
    """Run one check on a fresh backend from `factory`, closing it afterwards."""
    made = factory()
    backend = await made if inspect.isawaitable(made) else made
    try:
        await check(backend)
    finally:
        await close_backend(backend)


async def check_backend(factory: BackendFactory) -> None:
    """Run the whole `Backend` suite; raises AssertionError naming the first failing check."""
    for check in CHECKS:
        try:
            await run_check(factory, check)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


class BackendConformance:
    """Mix-in test class; subclasses provide the `backend_factory` fixture. One test per
    check of `CHECKS`: `test_<check name without "check_">`."""


def _backend_test(check: Check) -> Callable[[Any, BackendFactory], None]:
    def test(self: Any, backend_factory: BackendFactory) -> None:
        asyncio.run(run_check(backend_factory, check))

    test.__doc__ = check.__doc__
    return test


install_tests(BackendConformance, CHECKS, _backend_test)
