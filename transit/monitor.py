"""`GET /v1/sys/monitor` (spec operations-api §5.1): this process's log lines, streamed.

A `Hub` logging handler sits on the root logger while at least one client watches (added on
the first subscription, removed with the last). Each subscriber has its level, its format
(standard or json, hclog lines as `transit/logs.py` writes them) and a bounded buffer of 512
lines: a slow reader loses lines rather than slowing the server. Records come from the event
loop's thread or from worker threads; lines are handed to the loop thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from transit.logs import LEVELS, HclogFormatter

BUFFER = 512
MONITOR_LEVELS = ("trace", "debug", "info", "warn", "error")


class Subscriber:
    __slots__ = ("level", "formatter", "queue", "loop", "dropped")

    def __init__(self, level: int, fmt: str, loop: asyncio.AbstractEventLoop) -> None:
        self.level = level
        self.formatter = HclogFormatter(fmt)
        self.queue: asyncio.Queue[str] = asyncio.Queue(BUFFER)
        self.loop = loop
        self.dropped = 0

    def _put(self, line: str) -> None:
        try:
            self.queue.put_nowait(line)
        except asyncio.QueueFull:
            self.dropped += 1


class Hub(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802
        pass  # each subscriber formats for itself (transit/workers.py swaps formatters)

    def emit(self, record: logging.LogRecord) -> None:
        for sub in list(self.subscribers):
            if record.levelno < sub.level:
                continue
            try:
                line = sub.formatter.format(record)
            except Exception:
                continue
            try:  # records come from the loop's thread or from pool threads
                sub.loop.call_soon_threadsafe(sub._put, line)
            except RuntimeError:  # the loop is closed
                pass

    def subscribe(self, level: str, fmt: str) -> Subscriber:
        sub = Subscriber(LEVELS[level], fmt, asyncio.get_running_loop())
        with self._lock:
            self.subscribers.append(sub)
            root = logging.getLogger()
            if self not in root.handlers:
                root.addHandler(self)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            with contextlib.suppress(ValueError):
                self.subscribers.remove(sub)
            if not self.subscribers:
                logging.getLogger().removeHandler(self)


hub = Hub()


def server_log_format() -> str:
    """"json" when the server itself logs JSON (then monitor output is JSON too, as Vault)."""
    for h in logging.getLogger().handlers:
        fmt = getattr(h, "formatter", None)
        if isinstance(fmt, HclogFormatter) and fmt.fmt == "json":
            return "json"
    return "standard"


def parse_query(query: dict[str, Any]) -> tuple[str, str]:
    """(level, format) from `log_level` / `log_format`; ValueError with Vault's message."""
    level = str(query.get("log_level") or "info").strip().lower()
    if level not in MONITOR_LEVELS:
        raise ValueError("unknown log level")
    fmt = str(query.get("log_format") or "standard").strip().lower()
    if fmt not in ("standard", "json"):
        raise ValueError("unknown log format")
    if server_log_format() == "json":
        fmt = "json"
    return level, fmt


async def stream(core: Any, level: str, fmt: str, receive: Any, send: Any) -> None:
    """200, no Content-Type, chunked: one line per `\\n` until the client leaves or the node
    seals (checked every second)."""
    sub = hub.subscribe(level, fmt)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        while not gone.done():
            getter = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait({getter, gone}, timeout=1.0,
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                lines = [getter.result()]
                while not sub.queue.empty():
                    lines.append(sub.queue.get_nowait())
                await send({"type": "http.response.body", "more_body": True,
                            "body": "".join(f"{x}\n" for x in lines).encode()})
            else:
                getter.cancel()
            if getattr(core, "sealed", False):
                break
        if not gone.done():
            await send({"type": "http.response.body", "body": b""})
    finally:
        gone.cancel()
        hub.unsubscribe(sub)


async def _disconnected(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
