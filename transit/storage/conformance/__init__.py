"""The storage conformance suites: every `Backend`, and every `HABackend`, must pass all of them.

Contracts in `storage/base.py` (DESIGN §2, §7; docs/dev/contracts.md §6.1). One module per
suite, one per group of checks:

- `backend`: the `Backend` suite (`CHECKS`, `BackendConformance`, `check_backend`,
  `run_check`), made of the checks in
  - `keyvalue`: get/put/delete/list with Vault's list semantics, special keys, large values,
    concurrent writers;
  - `commit`: `get_versioned` and guarded `commit` (all or nothing, `errors.Conflict`);
  - `read_modify_write`: read-modify-write through `storage.update.update` racing from many
    tasks.
- `ha`: the `HABackend` suite (`HA_CHECKS`, `HABackendConformance`, `check_ha_backend`,
  `run_ha_check`).
- `support`: what both suites share (expected errors, closing a backend, one test per check).

Two suites:

- `CHECKS` (a `Backend`): get/put/delete/list with Vault's list semantics, `get_versioned`,
  guarded `commit` (all or nothing, `errors.Conflict`), and read-modify-write through
  `storage.update.update` racing from many tasks. Each check gets a fresh, **empty** backend.
- `HA_CHECKS` (an `HABackend`): the lock (acquire/renew/release/holder, TTL, epochs that
  only grow, `min_epoch`), the fence on every write (`errors.Fenced`, nothing written) and
  the write index. Each check gets `nodes`, a `Nodes` that opens handles on one fresh,
  empty shared store: `await nodes("node-a")` is node A's own backend object. Owners are
  opaque strings without ":" or whitespace.

Two ways to run them:

- pytest: subclass `BackendConformance` in a `Test*` class and provide a `backend_factory`
  fixture returning a zero-argument callable that builds a fresh, empty backend (it may
  return the backend or an awaitable of it; it is called inside the test's event loop, which
  matters for loop-bound clients such as redis.asyncio). If the backend has an async
  `aclose()` or `close()` it is awaited at the end of each test::

      class TestInmem(BackendConformance):
          @pytest.fixture
          def backend_factory(self):
              return InmemBackend

  Likewise `HABackendConformance` with an `ha_factory` fixture: a zero-argument callable
  returning `connect(owner, lock_ttl)`, which opens a handle (a backend object, or an
  awaitable of one) on a store that is fresh and empty for each `ha_factory()` call and
  shared by every `connect` of that call.
- anywhere else: `await check_backend(factory)` / `await check_ha_backend(ha_factory)` run
  every check.

Does not import pytest, so importing it costs nothing outside the tests.
"""
