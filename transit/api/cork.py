"""A connection's writes, corked until the end of the event loop's turn (`CorkedWrites`)."""

from __future__ import annotations

import asyncio
from typing import Any

LARGE = 65536  # a write this big goes out at once (a streamed answer must feel backpressure)


class CorkedWrites:
    """A connection's transport as its request cycles see it: what they write in one turn of
    the event loop goes out in one `write` at the end of that turn.

    - An answer's status line and headers leave in the same send(2) and TCP segment as its
      body instead of one each (uvicorn wrote them separately; the second send cost about a
      tenth of an encrypt's CPU).
    - The answers that the requests of many connections completed in the same turn leave
      back to back at its end, not each between the next requests' work. A client waiting
      on several connections is then woken once for the batch instead of once per answer:
      on a 2-vCPU VM this took a dev node from 76-78 to 58-59 µs of CPU per encrypt (system
      time 15-17 → 6 µs) and from about 13,000 to 17,000 req/s
      (bench/results/2026-12-08-encrypt-cost.md). An answer waits for the rest of the turn:
      at most the handling of the requests read with it.
    - Whatever the protocol writes or closes on the raw transport (refusals, timeouts,
      the 400, the idle close, shutdown, the client's FIN) flushes this first, so
      answers keep their order and none completed is dropped."""

    __slots__ = ("_transport", "_loop", "_chunks", "_scheduled", "_refused")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._chunks: list[bytes] = []
        self._scheduled = False
        self._refused = False

    def refuse(self) -> None:
        """The protocol is answering a refusal itself and closing: send what is pending now
        and drop every later write (the write side may be shut already)."""
        self.flush()
        self._refused = True

    @property
    def refused(self) -> bool:
        """`refuse` was called: nothing more is written."""
        return self._refused

    def write(self, data: bytes) -> None:
        if not data or self._refused:
            return
        self._chunks.append(data)
        if len(data) > LARGE:  # now, so that the transport's flow control sees it
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn_ended)

    def _turn_ended(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        chunks = self._chunks
        if chunks:
            self._chunks = []
            if self._transport.is_closing():  # gone meanwhile: nobody to read it
                return
            self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
