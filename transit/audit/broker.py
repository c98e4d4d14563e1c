"""The audit broker: the device table, per-device salts, and fail-closed logging (§4.11).

Storage (a view over the barrier at its root):
  * `core/audit`: the device table, `{"type":"audit","entries":[{path,type,description,
    options,local,uuid,accessor}, ...]}` (Vault's MountTable shape);
  * `audit/<uuid>/salt`: the device's salt, a random UUID (Vault's `salt` key in the
    device's barrier view).

Fail closed: when at least one device is enabled and none of them stores an entry,
`log_request` / `log_response` raise `AuditFailed` (the API answers 500 "internal error").
With no devices nothing is logged and nothing fails. Writes are synchronous (Vault's file
sink blocks too). Each call logs to the device table it saw when it began (the table is
replaced, never mutated); entries of large requests and responses are built (hashed) on the
thread pool, and every write happens on the event loop's thread.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from transit import pools
from transit.audit.devices import AuditDevice, FormatConfig, create_device
from transit.audit.format import request_entry, response_entry, rfc3339_nano
from transit.audit.hashing import EMPTY, Hasher, small
from transit.engines.framework import Request, Response
from transit.errors import AuditFailed, StorageError, UserError
from transit.storage.update import get_or_create

log = logging.getLogger("transit.audit")

AUDIT_TABLE_KEY = "core/audit"
AUDIT_BARRIER_PREFIX = "audit/"
SALT_KEY = "salt"

_PENDING_MAX = 1024

NON_HMAC_REQUEST_KEYS = "audit_non_hmac_request_keys"
NON_HMAC_RESPONSE_KEYS = "audit_non_hmac_response_keys"


def normalize(path: str) -> str:
    path = path.strip("/")
    return path + "/" if path else ""


@dataclass
class AuditEntry:
    """One row of the device table (what is persisted)."""

    path: str
    type: str
    uuid: str
    accessor: str
    description: str = ""
    options: dict[str, str] = field(default_factory=dict)
    local: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "table": "audit", "path": self.path, "type": self.type, "uuid": self.uuid,
            "accessor": self.accessor, "description": self.description,
            "options": self.options, "local": self.local,
        }

    def describe(self) -> dict[str, Any]:
        """As `GET sys/audit` shows it."""
        return {
            "type": self.type, "description": self.description, "options": self.options,
            "local": self.local, "path": self.path,
        }


@dataclass(slots=True)
class _Device:
    entry: AuditEntry
    device: AuditDevice
    fmt: FormatConfig
    hasher: Hasher


class AuditBroker:
    def __init__(self, storage: Any, mounts: Any = None) -> None:
        """`storage`: a view over the barrier at its root. `mounts` (optional): something
        with `.get(mount_path)` returning an entry whose `.config` may hold
        `audit_non_hmac_request_keys` / `audit_non_hmac_response_keys` (the mount table)."""
        self._storage = storage
        self.mounts = mounts
        # Replaced, never mutated, so a logging loop always sees one consistent snapshot.
        self._devices: tuple[_Device, ...] = ()
        # request id -> (device snapshot, request entry per device): log_response reuses the
        # hashed auth/request blocks of log_request. Bounded; a miss just rebuilds them.
        self._pending: dict[str, tuple[tuple[_Device, ...], list[Any]]] = {}

    # -- lifecycle --------------------------------------------------------------------------
    async def setup(self, *, create: bool = True) -> None:
        """Load the table and open every device (after unseal). A device whose file cannot be
        opened is still registered: it retries on every write, so requests fail closed
        instead of the node refusing to unseal.

        `create=False` (a standby: it never writes): a device whose salt is missing is a
        StorageError — the replica has not received it yet — and nothing is opened."""
        self.teardown()
        raw = await self._storage.get(AUDIT_TABLE_KEY)
        if raw is None:
            return
        table = orjson.loads(raw)
        devices: list[_Device] = []
        for item in table.get("entries") or []:
            entry = AuditEntry(
                path=item["path"], type=item["type"], uuid=item["uuid"],
                accessor=item.get("accessor", ""), description=item.get("description", ""),
                options=dict(item.get("options") or {}), local=bool(item.get("local", False)),
            )
            salt = await self._salt(entry.uuid, create=create)
            try:
                device, fmt = create_device(entry.type, entry.options, strict=False)
            except UserError as exc:
                log.error("audit device %s could not be set up: %s", entry.path, exc)
                device, fmt = _broken_device(entry)
            devices.append(_Device(entry, device, fmt, _hasher(salt, fmt)))
        self._devices = tuple(devices)

    def teardown(self) -> None:
        """Close every device (seal / step-down); the table stays in storage."""
        devices, self._devices = self._devices, ()
        for d in devices:
            d.device.close()

    def reload(self) -> None:
        """SIGHUP: reopen every file (log rotation)."""
        for d in self._devices:
            d.device.reopen()

    @property
    def enabled(self) -> bool:
        return bool(self._devices)

    def entries(self) -> list[AuditEntry]:
        return sorted((d.entry for d in self._devices), key=lambda e: e.path)

    # -- table changes ----------------------------------------------------------------------
    async def enable(self, path: str, type: str, options: dict[str, str] | None = None,
                     description: str = "", local: bool = False) -> None:
        path = normalize(path)
        if not path:
            raise UserError("backend path must be specified")
        for d in self._devices:
            if d.entry.path.startswith(path) or path.startswith(d.entry.path):
                raise UserError("path already in use")
        options = dict(options or {})
        device, fmt = create_device(type, options)  # UserError: nothing stored
        entry = AuditEntry(
            path=path, type=type, uuid=str(uuid.uuid4()),
            accessor=f"audit_{type}_{secrets.token_hex(4)}", description=description,
            options=options, local=local,
        )
        try:
            salt = await self._salt(entry.uuid)
            new = (*self._devices, _Device(entry, device, fmt, _hasher(salt, fmt)))
            await self._persist(new)
        except BaseException:
            device.close()
            await self._forget_salt(entry.uuid)
            raise
        self._devices = new
        log.info("enabled audit device %s (type %s)", path, type)

    async def disable(self, path: str) -> bool:
        """Remove the device at `path`; False when there was none (Vault answers 204)."""
        path = normalize(path)
        found = next((d for d in self._devices if d.entry.path == path), None)
        if found is None:
            return False
        new = tuple(d for d in self._devices if d is not found)
        await self._persist(new)
        self._devices = new
        found.device.close()
        await self._forget_salt(found.entry.uuid)
        log.info("disabled audit device %s", path)
        return True

    async def hash(self, path: str, value: str) -> str:
        """`sys/audit-hash`: the device's HMAC of `value` (whatever its `log_raw` says)."""
        path = normalize(path)
        for d in self._devices:
            if d.entry.path == path:
                return d.hasher.hash(value)
        raise UserError(f"unknown audit backend {path}")

    # -- logging (hot path) -----------------------------------------------------------------
    async def log_request(self, req: Request, decision: Any, error: str = "") -> None:
        """The `type:"request"` entry, before the request is handled. `error` is for a
        request rejected before handling (e.g. "permission denied"), normally ""."""
        devices = self._devices
        if not devices:
            return
        exempt = self._exempt(req, NON_HMAC_REQUEST_KEYS)
        now = rfc3339_nano()

        def build(_: int, d: _Device) -> dict[str, Any]:
            return request_entry(d.hasher, req, decision, error, now, exempt)

        built = await _build(devices, build, small(req.data))
        written: list[Any] = []
        logged = False
        for d, (entry, line) in zip(devices, built, strict=True):
            if _write(d, line, "request", req.id):
                logged = True
            written.append(entry)
        if not logged:
            raise AuditFailed("no audit backend succeeded in logging the request")
        if req.id:
            pending = self._pending
            if len(pending) >= _PENDING_MAX:
                pending.clear()
            pending[req.id] = (devices, written)

    async def log_response(self, req: Request, decision: Any, resp: Response | None,
                           error: str = "") -> None:
        """The `type:"response"` entry, after handling (and wrapping)."""
        devices = self._devices
        if not devices:
            return
        req_exempt = self._exempt(req, NON_HMAC_REQUEST_KEYS)
        resp_exempt = self._exempt(req, NON_HMAC_RESPONSE_KEYS)
        now = rfc3339_nano()
        pending = self._pending.pop(req.id, None) if req.id else None
        reuse = pending[1] if pending is not None and pending[0] is devices else None

        def build(i: int, d: _Device) -> dict[str, Any]:
            return response_entry(
                d.hasher, req, decision, resp, error, now, req_exempt, resp_exempt,
                d.fmt.elide_list_responses, reuse[i] if reuse is not None else None,
            )

        inline = small(resp.data if resp is not None else None) and (
            reuse is not None or small(req.data))
        built = await _build(devices, build, inline)
        logged = False
        for d, (_, line) in zip(devices, built, strict=True):
            if _write(d, line, "response", req.id):
                logged = True
        if not logged:
            raise AuditFailed("no audit backend succeeded in logging the response")

    # -- internals --------------------------------------------------------------------------
    def _exempt(self, req: Request, option: str) -> frozenset[str]:
        mounts = self.mounts
        if mounts is None or not req.mount_path:
            return EMPTY
        mount = mounts.get(req.mount_path)
        config = getattr(mount, "config", None)
        keys = config.get(option) if config else None
        return frozenset(keys) if keys else EMPTY

    async def _salt(self, entry_uuid: str, *, create: bool = True) -> str:
        """The device's salt, created (random UUID) on first use — unless not `create`."""
        key = f"{AUDIT_BARRIER_PREFIX}{entry_uuid}/{SALT_KEY}"
        if not create:
            raw = await self._storage.get(key)
            if raw is None:
                raise StorageError(f"the salt of audit device {entry_uuid} has not reached "
                                   "this node's storage yet")
            return bytes(raw).decode()
        return (await get_or_create(self._storage, key, lambda: str(uuid.uuid4()).encode())
                ).decode()

    async def _forget_salt(self, entry_uuid: str) -> None:
        try:
            await self._storage.delete(f"{AUDIT_BARRIER_PREFIX}{entry_uuid}/{SALT_KEY}")
        except Exception as exc:  # cleanup only: the table no longer points at it
            log.warning("could not delete the salt of audit device %s: %r", entry_uuid, exc)

    async def _persist(self, devices: tuple[_Device, ...]) -> None:
        table = {"type": "audit", "entries": [d.entry.to_json() for d in devices]}
        await self._storage.put(AUDIT_TABLE_KEY, orjson.dumps(table))


_Built = tuple[dict[str, Any] | None, bytes | Exception]


async def _build(devices: tuple[_Device, ...],
                 build: Callable[[int, _Device], dict[str, Any]], inline: bool) -> list[_Built]:
    """Each device's entry and its line (or the exception that building it raised). Hashing
    is Python work proportional to the number of strings in the data: for large data it runs
    on the thread pool, where the event loop gets the GIL back every few milliseconds, instead
    of stalling every other request (a 10,000-item batch: ~40 ms; a 30 MiB body of short
    strings: ~10 s)."""
    def run() -> list[_Built]:
        out: list[_Built] = []
        for i, d in enumerate(devices):
            entry = None
            try:
                entry = build(i, d)
                out.append((entry, _line(d.fmt, entry)))
            except Exception as exc:
                out.append((entry, exc))
        return out
    return run() if inline else await pools.in_thread(run)


def _write(d: _Device, line: bytes | Exception, kind: str, request_id: str) -> bool:
    """Write one built line to its device, on the event loop's thread (devices are not
    shared with other threads); False (logged) when building or writing failed."""
    try:
        if isinstance(line, Exception):
            raise line
        d.device.write(line)
        return True
    except Exception as exc:
        log.error("audit device %s failed to log %s %s: %r", d.entry.path, kind, request_id,
                  exc)
        return False


def _hasher(salt: str, fmt: FormatConfig) -> Hasher:
    return Hasher(salt, log_raw=fmt.log_raw, hmac_accessor=fmt.hmac_accessor)


def _line(fmt: FormatConfig, entry: dict[str, Any]) -> bytes:
    body = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
    return fmt.prefix + body if fmt.prefix else body


class _BrokenDevice(AuditDevice):
    """A stored device whose options no longer validate: every write fails."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, line: bytes) -> None:
        raise OSError(f"audit device {self.path} is misconfigured")


def _broken_device(entry: AuditEntry) -> tuple[AuditDevice, FormatConfig]:
    return _BrokenDevice(entry.path), FormatConfig()
