"""Server logging in hclog's formats (spec operations-api §5.2, §5.3).

- `standard`: `2026-12-07T03:13:52.176Z [INFO]  core: message: k=v` (ms timestamp in local
  time, `[LEVEL]` left-justified in 7 characters, then the module);
- `json`: one object per line, keys sorted: `@level`, `@message`, `@module`, `@timestamp`
  (microseconds), then the line's key/values flattened (`worker` for a worker process).

The module is the logger's name without its `transit.` prefix (`core`, `cluster.ha`);
uvicorn's loggers are routed through the same handlers (`uvicorn`, not its own
"INFO:     ..." format). Lines go to stderr and, with `log_file`, to a file too (rotated by
age and size, as Vault's `log_rotate_*`). A traceback appears only with a line logged from
an `except` block with `exc_info` (an unexpected error): expected conditions are one line.

Layer L0 (stdlib only, plus uvicorn's logging config when uvicorn is installed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import logging.config
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from transit.errors import ConfigError

TRACE = 5  # uvicorn's TRACE level too
logging.addLevelName(TRACE, "TRACE")

# Vault's accepted spellings -> the canonical hclog name
LEVEL_NAMES = {"trace": "trace", "debug": "debug", "info": "info", "notice": "info",
               "warn": "warn", "warning": "warn", "err": "error", "error": "error"}
LEVELS = {"trace": TRACE, "debug": logging.DEBUG, "info": logging.INFO,
          "warn": logging.WARNING, "error": logging.ERROR}
FORMATS = ("standard", "json")
DEFAULT_ROTATE_DURATION = 24 * 3600.0
DEFAULT_LOG_FILE_NAME = "vault.log"

_LABELS = {TRACE: "trace", logging.DEBUG: "debug", logging.INFO: "info",
           logging.WARNING: "warn", logging.ERROR: "error", logging.CRITICAL: "error"}
_MODULES = {"uvicorn.error": "uvicorn"}
_WORKER_TAG = re.compile(r"\[w(\d+)\] ")


def parse_level(value: Any, name: str = "log_level") -> str:
    """The canonical level (trace|debug|info|warn|error); ConfigError otherwise."""
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text == "":
        return "info"  # Vault: an empty level is the default
    if text is None or text not in LEVEL_NAMES:
        raise ConfigError(f'{name}: unknown log level "{value}" '
                          "(one of trace, debug, info, warn, error)")
    return LEVEL_NAMES[text]


def parse_format(value: Any, name: str = "log_format") -> str:
    """`standard` (also "") or `json`; ConfigError otherwise (Vault: "unknown log format")."""
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text is None or (text and text not in FORMATS):
        raise ConfigError(f'{name}: unknown log format "{value}" (standard or json)')
    return text or "standard"


def uvicorn_level(level: str) -> str:
    """The name uvicorn's Config takes for a canonical level."""
    return {"warn": "warning"}.get(level, level)


def module_name(logger: str) -> str:
    if logger.startswith("transit."):
        return logger[len("transit."):]
    return _MODULES.get(logger, logger)


def _label(levelno: int) -> str:
    label = _LABELS.get(levelno)
    if label is not None:
        return label
    for threshold in (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG):
        if levelno >= threshold:
            return _LABELS[threshold]
    return "trace"


def _timestamp(created: float, digits: int, colon: bool) -> str:
    t = dt.datetime.fromtimestamp(created).astimezone()
    frac = f"{t.microsecond:06d}"[:digits]
    offset = t.utcoffset() or dt.timedelta(0)
    if not offset:
        zone = "Z"
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        hh, mm = divmod(abs(minutes), 60)
        zone = f"{sign}{hh:02d}:{mm:02d}" if colon else f"{sign}{hh:02d}{mm:02d}"
    return f"{t:%Y-%m-%dT%H:%M:%S}.{frac}{zone}"


def _kv_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif value is None or isinstance(value, bool | int | float):
        text = json.dumps(value)
    else:
        text = str(value)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


class HclogFormatter(logging.Formatter):
    """One record -> one hclog line (plus its traceback, when it carries one)."""

    def __init__(self, fmt: str = "standard", fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.fmt = parse_format(fmt)
        self.fields: dict[str, Any] = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields = dict(self.fields)
        extra = getattr(record, "kv", None)
        if isinstance(extra, Mapping):
            fields.update(extra)
        stack = ""
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            stack = record.exc_text
        level, module = _label(record.levelno), module_name(record.name)
        if self.fmt == "json":
            obj: dict[str, Any] = {str(k): v for k, v in fields.items()}
            if stack:
                obj["stacktrace"] = stack
            obj.update({"@level": level, "@message": message, "@module": module,
                        "@timestamp": _timestamp(record.created, 6, True)})
            return json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False,
                              separators=(",", ":"))
        line = (f"{_timestamp(record.created, 3, False)} {'[' + level.upper() + ']':<7} "
                f"{module}: {message}")
        if fields:
            line += ": " + " ".join(f"{k}={_kv_value(v)}" for k, v in fields.items())
        if stack:
            line += "\n" + stack
        return line


class _HclogHandlerMixin:
    """Keeps the hclog formatter when something swaps formatters on every handler
    (transit/workers.py tags a worker's lines with `[w<i>] `: here that becomes the
    `worker=<i>` key/value of every line, in both formats)."""

    formatter: logging.Formatter | None

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802 (logging's name)
        current = self.formatter
        if isinstance(fmt, HclogFormatter) or not isinstance(current, HclogFormatter):
            self.formatter = fmt
            return
        tag = _WORKER_TAG.match(getattr(fmt, "_fmt", None) or "")
        if tag is not None:
            fields = {**current.fields, "worker": int(tag.group(1))}
            self.formatter = HclogFormatter(current.fmt, fields)


class HclogStreamHandler(_HclogHandlerMixin, logging.StreamHandler):
    pass


def resolve_log_file(path: str) -> str:
    """Vault's naming: a directory (or a path ending in "/") gets `vault.log`; a name without
    an extension gets `.log`."""
    if path.endswith("/") or os.path.isdir(path):
        return os.path.join(path, DEFAULT_LOG_FILE_NAME)
    base = os.path.basename(path)
    if "." not in base.lstrip("."):
        return path + ".log"
    return path


class LogFile(_HclogHandlerMixin, logging.Handler):
    """`log_file`: appends lines (mode 0640); rotates when the file is `rotate_duration`
    seconds old (0: never) or a line would take it past `rotate_bytes` (0: no limit),
    renaming it to `<name>-<unix nanoseconds>.<ext>`; then keeps the newest
    `rotate_max_files` rotated files (0: all, -1: none).

    Every process opens the file itself (the workers of a node are forked from the
    supervisor after this handler was made), and rotation happens under an exclusive
    `flock` of the file, after checking that the name still points at it; a process whose
    file was rotated by another reopens the name before its next line."""

    def __init__(self, path: str, *, rotate_duration: float = DEFAULT_ROTATE_DURATION,
                 rotate_bytes: int = 0, rotate_max_files: int = 0) -> None:
        super().__init__()
        self.path = resolve_log_file(path)
        self.rotate_duration = rotate_duration
        self.rotate_bytes = rotate_bytes
        self.rotate_max_files = rotate_max_files
        self._fd = -1
        self._pid = 0
        self._opened = 0.0
        self._mutex = threading.Lock()
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
            self._open()  # fail at start-up, not at the first line
        except OSError as exc:
            raise ConfigError(f'log_file "{path}": cannot open {self.path}: '
                              f"{exc.strerror or exc}") from None

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        old, self._fd = self._fd, fd
        if old >= 0:  # in a forked worker: the inherited copy (the parent keeps its own)
            with contextlib.suppress(OSError):
                os.close(old)
        self._pid = os.getpid()
        self._opened = time.time()

    def _current(self) -> bool:
        """Whether our descriptor is still the file at `path` (not rotated by another)."""
        try:
            mine, named = os.fstat(self._fd), os.stat(self.path)
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            with self._mutex:
                if self._pid != os.getpid() or not self._current():
                    self._open()
                if self._due(len(data)):
                    self._rotate()
                os.write(self._fd, data)
        except Exception:
            self.handleError(record)

    def _due(self, incoming: int) -> bool:
        if self.rotate_duration > 0 and time.time() - self._opened >= self.rotate_duration:
            return True
        if self.rotate_bytes > 0:
            size = os.fstat(self._fd).st_size
            return size > 0 and size + incoming > self.rotate_bytes
        return False

    def _rotate(self) -> None:
        fd = self._fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if self._current():  # nobody rotated it meanwhile
                stem, ext = os.path.splitext(self.path)
                os.rename(self.path, f"{stem}-{time.time_ns()}{ext}")
                self._prune(stem, ext)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._open()

    def _prune(self, stem: str, ext: str) -> None:
        if self.rotate_max_files == 0:
            return
        directory = os.path.dirname(stem) or "."
        pattern = re.compile(re.escape(os.path.basename(stem)) + r"-(\d+)" + re.escape(ext) + "$")
        rotated = sorted((int(m.group(1)), name) for name in os.listdir(directory)
                         if (m := pattern.match(name)))
        keep = max(0, self.rotate_max_files)
        for _, name in rotated[: len(rotated) - keep] if keep else rotated:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))

    def close(self) -> None:
        with self._mutex:
            if self._fd >= 0 and self._pid == os.getpid():
                with contextlib.suppress(OSError):
                    os.close(self._fd)
            self._fd = -1
        super().close()


# uvicorn's loggers: no handlers of their own, propagated to ours. uvicorn.Config applies
# its default LOGGING_CONFIG (its own "INFO:     ..." handlers) whenever a Config is made,
# the cluster listener's included: the default dict is rewritten in place, once.
_UVICORN_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {name: {"handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")},
}


def _route_uvicorn() -> None:
    try:
        from uvicorn import config as uvicorn_config
    except ImportError:  # pragma: no cover - uvicorn is a dependency of the server
        return
    default = uvicorn_config.LOGGING_CONFIG
    default.clear()
    default.update(json.loads(json.dumps(_UVICORN_LOGGING)))
    logging.config.dictConfig(json.loads(json.dumps(_UVICORN_LOGGING)))


def setup_logging(level: str = "info", fmt: str = "standard", *, log_file: str = "",
                  rotate_duration: float = DEFAULT_ROTATE_DURATION, rotate_bytes: int = 0,
                  rotate_max_files: int = 0, stream: Any = None) -> list[logging.Handler]:
    """Install the server's handlers on the root logger (replacing any), at `level`.
    ConfigError when the log file cannot be opened."""
    level = parse_level(level)
    fmt = parse_format(fmt)
    handlers: list[logging.Handler] = []
    console = HclogStreamHandler(stream if stream is not None else sys.stderr)
    console.setFormatter(HclogFormatter(fmt))
    handlers.append(console)
    if log_file:
        file_handler = LogFile(log_file, rotate_duration=rotate_duration,
                               rotate_bytes=rotate_bytes, rotate_max_files=rotate_max_files)
        file_handler.setFormatter(HclogFormatter(fmt))
        handlers.append(file_handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        with contextlib.suppress(Exception):
            old.close()
    for h in handlers:
        root.addHandler(h)
    _route_uvicorn()
    set_level(level)
    return handlers


def set_level(level: str) -> None:
    """Log at canonical `level` from now on (start-up, and a SIGHUP that changes it)."""
    n = LEVELS[level]
    logging.getLogger().setLevel(n)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logging.getLogger(name).setLevel(n)
    for noisy in ("httpx", "httpcore"):  # one line per forwarded request otherwise
        logging.getLogger(noisy).setLevel(max(logging.WARNING, n))
