"""The audit broker: the device table, per-device salts, and fail-closed logging (§4.11).

Storage (a view over the barrier at its root):
  * `core/audit`: the device table, `{"type":"audit","entries":[{path,type,description,
    options,local,uuid,accessor}, ...]}` (Vault's MountTable shape);
  * `audit/<uuid>/salt`: the device's salt, a random UUID (Vault's `salt` key in the
    device's barrier view).

Declarative devices (OpenBao 2.x, spec operations-api §8): `audit "<type>" "<path>" {...}`
stanzas of the server config (`declared`) are made to match the table each time the active
node loads its state (`setup(create=True)`; a standby never writes): a missing one is
enabled, one whose stanza changed is updated in place (same uuid and salt), and one whose
stanza is gone is disabled. They are marked `declared` in the table; the API lists and
hashes with them like any device, but cannot disable them, and a stanza never takes over a
device enabled over the API at an overlapping path (an error line; the stanza is skipped).

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

from transit import metrics, pools
from transit.audit.devices import AuditDevice, FormatConfig, create_device
from transit.audit.format import request_entry, response_entry
from transit.audit.hashing import EMPTY, Hasher, small
from transit.errors import AuditFailed, StorageError, UserError
from transit.gocompat import format_time_ns
from transit.logical import Request, Response
from transit.storage.update import get_or_create

log = logging.getLogger("transit.audit")

AUDIT_TABLE_KEY = "core/audit"
AUDIT_BARRIER_PREFIX = "audit/"
SALT_KEY = "salt"

_PENDING_MAX = 1024
_REQUEST_FAILURE = ("vault.audit.log_request_failure",)  # telemetry keys
_RESPONSE_FAILURE = ("vault.audit.log_response_failure",)

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
    declared: bool = False  # managed by an `audit` stanza of the server config

    def to_json(self) -> dict[str, Any]:
        out = {
            "table": "audit", "path": self.path, "type": self.type, "uuid": self.uuid,
            "accessor": self.accessor, "description": self.description,
            "options": self.options, "local": self.local,
        }
        if self.declared:
            out["declared"] = True
        return out

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
        # the server config's `audit` stanzas (transit.config.AuditDeviceConfig), applied
        # by the active node at every load; OpenBao's two switches (Vault's behaviour: on)
        self.declared: tuple[Any, ...] = ()
        self.allow_api_creation = True
        self.allow_prefixing = True

    # -- lifecycle --------------------------------------------------------------------------
    async def setup(self, *, create: bool = True) -> None:
        """Load the table and open every device (after unseal). A device whose file cannot be
        opened is still registered: it retries on every write, so requests fail closed
        instead of the node refusing to unseal.

        `create=False` (a standby: it never writes): a device whose salt is missing is a
        StorageError — the replica has not received it yet — and nothing is opened."""
        self.teardown()
        raw = await self._storage.get(AUDIT_TABLE_KEY)
        devices: list[_Device] = []
        items = (orjson.loads(raw).get("entries") or []) if raw is not None else []
        for item in items:
            entry = AuditEntry(
                path=item["path"], type=item["type"], uuid=item["uuid"],
                accessor=item.get("accessor", ""), description=item.get("description", ""),
                options=dict(item.get("options") or {}), local=bool(item.get("local", False)),
                declared=bool(item.get("declared", False)),
            )
            salt = await self._salt(entry.uuid, create=create)
            devices.append(self._open(entry, salt))
        self._devices = tuple(devices)
        if create and (self.declared or any(d.entry.declared for d in devices)):
            await self._apply_declared()

    @staticmethod
    def _open(entry: AuditEntry, salt: str) -> _Device:
        try:
            device, fmt = create_device(entry.type, entry.options, strict=False)
        except UserError as exc:
            log.error("audit device %s could not be set up: %s", entry.path, exc)
            device, fmt = _broken_device(entry)
        return _Device(entry, device, fmt, _hasher(salt, fmt))

    async def _apply_declared(self) -> None:
        """Make the table match the config's `audit` stanzas (active node only): enable the
        missing ones, update the changed ones in place, disable those no longer declared.
        One write, and none when nothing changed."""
        current = list(self._devices)
        wanted = {d.path: d for d in self.declared}
        changed = False
        closing: list[_Device] = []
        forget: list[str] = []
        kept: list[_Device] = []
        for d in current:
            if d.entry.declared and d.entry.path not in wanted:
                closing.append(d)
                forget.append(d.entry.uuid)
                changed = True
                log.info("audit device %s disabled: its stanza left the configuration",
                         d.entry.path)
                continue
            kept.append(d)
        current = kept
        for decl in self.declared:
            index = next((i for i, d in enumerate(current) if d.entry.path == decl.path), None)
            clash = next((d for d in current if d.entry.path != decl.path and (
                d.entry.path.startswith(decl.path) or decl.path.startswith(d.entry.path))),
                None)
            if index is not None and not current[index].entry.declared:
                clash = current[index]
            if clash is not None:
                log.error('audit "%s" "%s" in the configuration is not applied: the path is '
                          "in use by the device %s enabled through the API (disable it "
                          "there, or rename the stanza)", decl.type, decl.path.rstrip("/"),
                          clash.entry.path)
                continue
            entry = AuditEntry(
                path=decl.path, type=decl.type, uuid=str(uuid.uuid4()),
                accessor=f"audit_{decl.type}_{secrets.token_hex(4)}",
                description=decl.description, options=dict(decl.options), local=decl.local,
                declared=True,
            )
            if index is not None:
                old = current[index].entry
                if (old.type, old.options, old.description, old.local) == (
                        entry.type, entry.options, entry.description, entry.local):
                    continue
                entry.uuid, entry.accessor = old.uuid, old.accessor  # same salt, same HMACs
                closing.append(current[index])
                current[index] = self._open(entry, await self._salt(entry.uuid))
                log.info("audit device %s updated from the configuration", entry.path)
            else:
                current.append(self._open(entry, await self._salt(entry.uuid)))
                log.info("enabled audit device %s (type %s) from the configuration",
                         entry.path, entry.type)
            changed = True
        if not changed:
            return
        new = tuple(current)
        try:
            await self._persist(new)
        except BaseException:
            for d in new:
                if d not in self._devices:
                    d.device.close()
            raise
        self._devices = new
        for d in closing:
            d.device.close()
        for entry_uuid in forget:
            await self._forget_salt(entry_uuid)

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
        if not self.allow_api_creation:
            raise UserError("cannot enable audit device via API; use declarative, "
                            "config-based audit device management instead")
        path = normalize(path)
        if not path:
            raise UserError("backend path must be specified")
        if (options or {}).get("prefix") and not self.allow_prefixing:
            raise UserError('the "prefix" option is not allowed '
                            "(allow_audit_log_prefixing = false)")
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
        if found.entry.declared:
            raise UserError("cannot disable configuration-managed audit device")
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
        now = format_time_ns()

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
            metrics.incr(_REQUEST_FAILURE)
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
        now = format_time_ns()
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
            metrics.incr(_RESPONSE_FAILURE)
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


def check_declared(declared: tuple[Any, ...], *, allow_prefixing: bool = True) -> None:
    """Validate the config's `audit` stanzas as `sys/audit` would, without opening any file
    (ConfigError naming the stanza)."""
    from transit.audit.devices import DEVICE_TYPES, parse_format, parse_mode
    from transit.errors import ConfigError

    for decl in declared:
        where = f'audit "{decl.type}" "{decl.path.rstrip("/")}"'
        try:
            if decl.type not in DEVICE_TYPES:
                raise UserError(f'unknown backend type: "{decl.type}"')
            parse_format(decl.options)
            parse_mode(decl.options.get("mode"))
            if not (decl.options.get("file_path") or decl.options.get("path") or "").strip():
                raise UserError('"file_path" is required')
            if decl.options.get("prefix") and not allow_prefixing:
                raise UserError('the "prefix" option needs allow_audit_log_prefixing = true')
        except UserError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None


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
