"""Raw HTTP/1.1 over a socket: the request goes on the wire byte for byte as the fuzzer built
it (no client normalises the path, drops a header or refuses a control character), one
connection per request (`Connection: close`), and the answer is read to EOF and parsed."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

ANSWER_TIMEOUT = 30.0  # seconds for the whole exchange; a slower answer is a failure


@dataclass
class RawResponse:
    status: int  # 0: no parseable status line came back
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    raw_head: bytes = b""
    elapsed: float = 0.0
    error: str = ""  # why the exchange failed (timeout, reset before any answer, bad framing)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def short(self, limit: int = 600) -> str:
        body = self.body[:limit]
        more = f"...({len(self.body)} bytes)" if len(self.body) > limit else ""
        return (f"{self.status} {self.reason} headers={self.headers} body={body!r}{more}"
                f"{' error=' + self.error if self.error else ''}")


def exchange(port: int, raw: bytes, timeout: float = ANSWER_TIMEOUT) -> RawResponse:
    """Send `raw`, read until the server closes, parse. Never raises for network trouble:
    the failure is in `RawResponse.error` (a test asserts on it)."""
    start = time.monotonic()
    deadline = start + timeout
    chunks: list[bytes] = []
    error = ""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except OSError as exc:  # the server answered early (413, 400) and closed: read it
            error = f"send: {exc!r}"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                error = f"no complete answer within {timeout}s"
                break
            s.settimeout(left)
            try:
                chunk = s.recv(1 << 16)
            except TimeoutError:
                error = f"no complete answer within {timeout}s"
                break
            except OSError as exc:
                if not chunks:
                    error = f"recv: {exc!r}"
                break
            if not chunk:
                break
            chunks.append(chunk)
    resp = parse(b"".join(chunks))
    resp.elapsed = time.monotonic() - start
    if error and (resp.status == 0 or "within" in error):
        resp.error = error
    return resp


def parse(data: bytes) -> RawResponse:
    """The final answer in `data`: interim 1xx answers (100 Continue) are skipped."""
    for _ in range(10):
        resp = _parse_one(data)
        if resp.status == 0 or resp.status >= 200 or not resp.body:
            return resp
        data = resp.body  # for a 1xx, `body` holds everything after its head
    return resp


def _parse_one(data: bytes) -> RawResponse:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return RawResponse(0, raw_head=data[:500], error="no end of headers" if data else
                           "connection closed without an answer")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return RawResponse(0, raw_head=head[:500], error=f"bad status line {lines[0][:100]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers.append((k.decode("latin-1").strip().lower(), v.decode("latin-1").strip()))
    resp = RawResponse(int(parts[1]), parts[2].decode("latin-1") if len(parts) > 2 else "",
                       headers, b"", head)
    if resp.status < 200:
        resp.body = rest
        return resp
    if resp.header("transfer-encoding") == "chunked":
        body, ok = _dechunk(rest)
        if not ok:
            resp.error = "bad chunked framing"
        resp.body = body
    else:
        length = resp.header("content-length")
        resp.body = rest[:int(length)] if length is not None and length.isdigit() else rest
    return resp


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    out: list[bytes] = []
    pos = 0
    for _ in range(len(data) + 1):  # at most one chunk per byte
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return b"".join(out), False
        try:
            size = int(data[pos:eol].split(b";")[0], 16)
        except ValueError:
            return b"".join(out), False
        if size == 0:
            return b"".join(out), True
        out.append(data[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
    return b"".join(out), False


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` plus every descendant (the process pool's workers), in KiB."""
    total = 0
    for p in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
    return total


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 10_000:
        kids = children.get(todo.pop(), [])
        out.extend(kids)
        todo.extend(kids)
    return out
