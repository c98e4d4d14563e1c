"""Issue 15 item 3: a deposed active node stops serving at once, cached encrypts included.

The active node (default worker processes) has 20 open keep-alive connections. Its whole
process group is paused (SIGSTOP) past the lock TTL; the successor rotates a key, raises its
`min_decryption_version` and `min_encryption_version` to the latest, trims it, and deletes
another key. Requests are then written onto the 20 connections while the old active is still
paused (they wait in its sockets, so on resume its event loop may read them before any timer
of its own runs), it is resumed (SIGCONT), and the connections keep sending for a while.

Nothing the old active answers after resuming may contradict the successor's writes:
- an acknowledged encrypt has a version >= the successor's `min_encryption_version`, and its
  ciphertext decrypts, on the new active, to the plaintext sent;
- an acknowledged encrypt with the deleted key likewise decrypts on the new active (it can only
  have been served by the successor);
- a decrypt of a version below the successor's `min_decryption_version` is never acknowledged.
Refusals (503, or a closed connection) are fine: they acknowledge nothing.
"""

from __future__ import annotations

import base64
import http.client
import json
import signal
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tests.fault.harness import FaultCluster
from tests.ha.util import poll

CONNECTIONS = 20


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class KeptAlive:
    """One keep-alive HTTP/1.1 connection to a node, driven by hand (send, then read)."""

    def __init__(self, addr: str, token: str) -> None:
        u = urlsplit(addr)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.token = token
        self.open = True

    def send(self, path: str, body: dict[str, Any]) -> bool:
        if not self.open:
            return False
        try:
            self.conn.request("POST", f"/v1/{path}", body=json.dumps(body),
                              headers={"X-Vault-Token": self.token,
                                       "Content-Type": "application/json"})
        except OSError:
            self.open = False
        return self.open

    def read(self) -> tuple[int, dict[str, Any]]:
        """(status, body); status 0 when the connection gave no answer (then it is closed)."""
        try:
            r = self.conn.getresponse()
            raw = r.read()
        except (OSError, http.client.HTTPException):
            self.open = False
            self.conn.close()
            return 0, {}
        if r.getheader("connection", "").lower() == "close":
            self.open = False
        try:
            return r.status, json.loads(raw) if raw else {}
        except ValueError:
            return r.status, {}

    def call(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self.read() if self.send(path, body) else (0, {})


def test_deposed_active_acknowledges_nothing_after_the_successors_writes(
        make_cluster: Callable[..., FaultCluster]) -> None:
    cluster = make_cluster(nodes=3)
    cluster.setup()
    old = cluster.wait_active()

    def req(i: int, method: str, path: str, body: Any = None) -> dict[str, Any]:
        r = cluster.request(i, method, path, json=body)
        assert 200 <= r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else {}

    req(old, "POST", "transit/keys/rot", {})
    req(old, "POST", "transit/keys/gone", {})
    req(old, "POST", "transit/keys/gone/config", {"deletion_allowed": True})
    conns = [KeptAlive(cluster.nodes[old].addr, cluster.root_token) for _ in range(CONNECTIONS)]
    old_ct = ""
    for n, c in enumerate(conns):  # warm every connection (and every worker's caches)
        for key in ("rot", "gone"):
            status, doc = c.call(f"transit/encrypt/{key}", {"plaintext": b64(b"warm")})
            assert status == 200, (n, status, doc)
            if key == "rot":
                old_ct = doc["data"]["ciphertext"]
    assert old_ct.startswith("vault:v1:")

    sent: list[tuple[int, str, str, bytes | str]] = []  # (conn, kind, key, plaintext/ct)

    def send_all(round_: int) -> None:
        for n, c in enumerate(conns):
            kind = ("encrypt", "encrypt-gone", "decrypt-old")[(n + round_) % 3]
            if kind == "decrypt-old":
                ok = c.send("transit/decrypt/rot", {"ciphertext": old_ct})
                payload: bytes | str = old_ct
            else:
                key = "rot" if kind == "encrypt" else "gone"
                payload = f"r{round_}c{n}".encode()
                ok = c.send(f"transit/encrypt/{key}", {"plaintext": b64(payload)})
            sent.append((n, kind, "" if ok else "not sent", payload))

    answers: list[tuple[str, bytes | str, int, dict[str, Any]]] = []

    def read_all() -> None:
        batch = sent[:]
        sent.clear()
        for n, kind, note, payload in batch:
            if note:
                continue
            status, doc = conns[n].read()
            answers.append((kind, payload, status, doc))

    cluster.kill(old, signal.SIGSTOP)
    try:
        new = cluster.wait_active(timeout=cluster.lock_ttl + 20, exclude=(old,))
        # The successor's writes: rotate, raise both minimum versions, trim, delete.
        req(new, "POST", "transit/keys/rot/rotate")
        latest = req(new, "POST", "transit/keys/rot/rotate")["data"]["latest_version"]
        req(new, "POST", "transit/keys/rot/config",
            {"min_decryption_version": latest, "min_encryption_version": latest})
        req(new, "POST", "transit/keys/rot/trim", {"min_available_version": latest})
        req(new, "DELETE", "transit/keys/gone")
        send_all(0)  # waits in the paused node's sockets
        time.sleep(0.3)
    finally:
        cluster.kill(old, signal.SIGCONT)
    read_all()
    # Keep sending on the same connections while the resumed node finds out and steps down.
    deadline = time.monotonic() + cluster.lock_ttl + 2
    round_ = 1
    while time.monotonic() < deadline and any(c.open for c in conns):
        send_all(round_)
        t = threading.Thread(target=read_all)
        t.start()
        t.join(60)
        assert not t.is_alive()
        round_ += 1
    poll(lambda: (h := cluster.health(old)) is not None and h[0] in (429, 473), 20,
         "the resumed node to report itself a standby")

    assert cluster.wait_active(timeout=5) == new
    problems: list[str] = []
    statuses: dict[str, dict[int, int]] = {}
    for kind, payload, status, doc in answers:
        statuses.setdefault(kind, {}).setdefault(status, 0)
        statuses[kind][status] += 1
        if not 200 <= status < 300:
            continue
        if kind == "decrypt-old":
            problems.append(f"acknowledged a decrypt of v1 below min_decryption_version "
                            f"{latest}: {doc}")
            continue
        ct = doc.get("data", {}).get("ciphertext", "")
        version = int(ct.split(":")[1][1:]) if ct.startswith("vault:v") else 0
        key = "rot" if kind == "encrypt" else "gone"
        if key == "rot" and version < latest:
            problems.append(f"acknowledged an encrypt with v{version} < min_encryption_version "
                            f"{latest}")
        r = cluster.request(new, "POST", f"transit/decrypt/{key}", json={"ciphertext": ct})
        if r.status_code != 200 or base64.b64decode(r.json()["data"]["plaintext"]) != payload:
            problems.append(f"acknowledged {kind} ciphertext {ct[:20]}... does not decrypt on "
                            f"the new active: {r.status_code} {r.text[:200]}")
    first = {}
    for _kind, _payload, status, _doc in answers[:CONNECTIONS]:
        first[status] = first.get(status, 0) + 1
    leaving = [line for line in cluster.nodes[old].log(20000).splitlines()
               if "no longer" in line or "stepping down" in line or "leaves the active" in line]
    print(f"deposed active: answers by kind and status {statuses}; queued while paused: "
          f"{first}; rounds {round_}; old node's log on leaving: {leaving[:6]}")
    assert answers, "no request reached the old active"
    assert not problems, "\n".join(problems[:10])
