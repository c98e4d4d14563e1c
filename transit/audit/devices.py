"""Audit devices: where entry lines go, and the per-device format options.

Only Vault's `file` device type exists. `file_path` is a path, `stdout` or `discard`
(case-insensitive). A path is opened when the device is created (enable fails with a 400 if it
cannot be) in append mode, created with `mode` (default 0600; "0000" leaves the mode alone)
and kept open. A line is one unbuffered `write(2)`; a failed write closes the file, reopens
it and retries once, then raises (the broker counts that device as failed). `reopen()` is the
SIGHUP hook (log rotation).
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from dataclasses import dataclass
from typing import Any

from transit.errors import UserError
from transit.fields import parse_bool

log = logging.getLogger("transit.audit")

DEVICE_TYPES = ("file",)
_INVALID = "invalid configuration"


@dataclass(frozen=True, slots=True)
class FormatConfig:
    """The options that shape entries (shared by every device type)."""

    log_raw: bool = False
    hmac_accessor: bool = True
    elide_list_responses: bool = False
    prefix: bytes = b""


def _bool_option(options: dict[str, str], name: str, default: bool) -> bool:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        return parse_bool(raw)
    except ValueError:
        raise UserError(f"unable to parse '{name}': {_INVALID}") from None


def parse_format(options: dict[str, str]) -> FormatConfig:
    fmt = options.get("format", "json") or "json"
    if fmt != "json":
        if fmt == "jsonx":
            raise UserError(f'unsupported "format": "jsonx" (only "json" is available): {_INVALID}')
        raise UserError(f'invalid "format": "{fmt}": {_INVALID}')
    return FormatConfig(
        log_raw=_bool_option(options, "log_raw", False),
        hmac_accessor=_bool_option(options, "hmac_accessor", True),
        elide_list_responses=_bool_option(options, "elide_list_responses", False),
        prefix=options.get("prefix", "").encode(),
    )


def parse_mode(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0o600
    try:
        mode = int(raw, 8)
    except ValueError:
        raise UserError(f'unable to parse "mode" {raw!r} as an octal file mode: {_INVALID}') from None
    if not 0 <= mode <= 0o7777:
        raise UserError(f'unable to parse "mode" {raw!r} as an octal file mode: {_INVALID}')
    return mode


class AuditDevice:
    """A sink for entry lines. `write` raises (OSError or other) when the line is not stored."""

    type = ""

    def write(self, line: bytes) -> None:
        raise NotImplementedError

    def reopen(self) -> None:
        """Reopen the underlying output (SIGHUP). Must not raise."""

    def close(self) -> None:
        pass


class DiscardDevice(AuditDevice):
    type = "file"

    def write(self, line: bytes) -> None:
        return None


class StdoutDevice(AuditDevice):
    type = "file"

    def write(self, line: bytes) -> None:
        out: Any = getattr(sys.stdout, "buffer", None)
        if out is None:  # a replaced text-only stdout (tests, embedding)
            sys.stdout.write(line.decode())
        else:
            out.write(line)
        sys.stdout.flush()


class FileDevice(AuditDevice):
    type = "file"

    def __init__(self, path: str, mode: int = 0o600) -> None:
        self.path = path
        self.mode = mode
        self._fd = -1

    def open(self) -> None:
        """Open (or create) the file for appending; raises OSError."""
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        fd = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.mode or 0o600
        )
        try:
            if self.mode and stat.S_ISREG(os.fstat(fd).st_mode):
                os.fchmod(fd, self.mode)  # the file may have existed with other bits
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def write(self, line: bytes) -> None:
        # One unbuffered write(2) per line: nothing is held back in a user-space buffer, so
        # success means the kernel has the line (what fail-closed auditing needs).
        if self._fd >= 0:
            try:
                self._write_all(line)
                return
            except OSError as exc:
                log.warning("audit file %s: write failed (%s), reopening", self.path, exc)
                self._drop()
        self.open()  # raises OSError when the path cannot be opened any more
        try:
            self._write_all(line)
        except OSError:
            self._drop()
            raise

    def _write_all(self, line: bytes) -> None:
        written = os.write(self._fd, line)
        if written < len(line):  # short write (e.g. disk nearly full): finish or raise
            view = memoryview(line)
            while written < len(line):
                written += os.write(self._fd, view[written:])

    def reopen(self) -> None:
        self._drop()
        try:
            self.open()
        except OSError as exc:
            # Left closed: the next write tries again and fails closed if it still can't.
            log.error("audit file %s: reopen failed: %s", self.path, exc)

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def _go_open_error(path: str, exc: OSError) -> str:
    reason = (exc.strerror or str(exc)).lower()
    return f"open {path}: {reason}"


def create_device(
    device_type: str, options: dict[str, str], *, strict: bool = True
) -> tuple[AuditDevice, FormatConfig]:
    """Validate `options` and open the device; UserError (400) on any problem. With
    `strict=False` (loading a stored table) a file that cannot be opened yet is not an error:
    the device retries on every write and fails until it can."""
    if device_type not in DEVICE_TYPES:
        raise UserError(f'unknown backend type: "{device_type}"')
    fmt = parse_format(options)
    if "file_path" in options:
        path = options["file_path"]
    elif "path" in options:  # Vault's old name for it
        path = options["path"]
    else:
        raise UserError(f'"file_path" is required: {_INVALID}')
    path = path.strip()
    if not path:
        raise UserError(f"file path is required: {_INVALID}")
    mode = parse_mode(options.get("mode"))
    if path.lower() == "stdout":
        return StdoutDevice(), fmt
    if path.lower() == "discard":
        return DiscardDevice(), fmt
    device = FileDevice(path, mode)
    try:
        device.open()
    except OSError as exc:
        if not strict:
            log.error("audit file %s cannot be opened: %s", path, exc)
            return device, fmt
        raise UserError(
            f'file sink creation failed for path "{path}": {_go_open_error(path, exc)}'
        ) from None
    return device, fmt
