"""`python -m transit.deploy.bootstrap init|unseal`: initialise a new Shamir-sealed cluster
and unseal its nodes, as an operator would with `vault operator init` and `unseal` on each
node (the compose file's one-shot `init` and `unseal` services; docs/deploy.md).

- `init`: waits until every node answers, sends `sys/init` to the first one, prints the key
  shares and the root token once (nothing is written anywhere else), then unseals every node.
- `unseal`: asks for key shares (hidden input; or one per line on a non-terminal stdin) until
  the threshold is reached, and sends each to every sealed node.

Nodes come from `--nodes` or `$TRANSIT_NODES` (comma-separated base URLs).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import threading
import time
from collections.abc import Callable

import httpx


def _health(client: httpx.Client, node: str) -> dict[str, object] | None:
    try:
        r = client.get(f"{node}/v1/sys/health", timeout=3.0)
        return dict(r.json())
    except (httpx.HTTPError, ValueError):
        return None


def wait_answering(client: httpx.Client, nodes: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for node in nodes:
        while _health(client, node) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"error: {node} does not answer after {timeout:.0f}s")
            time.sleep(0.5)


def unseal_everywhere(client: httpx.Client, nodes: list[str], keys: list[str]) -> list[str]:
    """Send the key shares to every node at the same time (one thread per node); the nodes
    still sealed afterwards."""
    sealed: list[str] = []

    def one(node: str) -> None:
        for key in keys:
            try:
                r = client.put(f"{node}/v1/sys/unseal", json={"key": key}, timeout=30.0)
            except httpx.HTTPError as exc:
                print(f"{node}: {exc!r}", file=sys.stderr)
                sealed.append(node)
                return
            if r.status_code != 200:
                print(f"{node}: {r.status_code} {r.text}", file=sys.stderr)
                sealed.append(node)
                return
            if not r.json().get("sealed", True):
                print(f"{node}: unsealed")
                return
        sealed.append(node)

    threads = [threading.Thread(target=one, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sealed


def cmd_init(client: httpx.Client, nodes: list[str], shares: int, threshold: int) -> int:
    if (_health(client, nodes[0]) or {}).get("initialized"):
        print(f"error: {nodes[0]} is already initialised; use `unseal`", file=sys.stderr)
        return 1
    r = client.put(f"{nodes[0]}/v1/sys/init", timeout=60.0,
                   json={"secret_shares": shares, "secret_threshold": threshold})
    if r.status_code != 200:
        print(f"error: sys/init on {nodes[0]}: {r.status_code} {r.text}", file=sys.stderr)
        return 1
    doc = r.json()
    keys: list[str] = doc["keys_base64"]
    print("Keep these safe and apart; they are shown only once.\n")
    for i, key in enumerate(keys, 1):
        print(f"Unseal Key {i}: {key}")
    print(f"\nInitial Root Token: {doc['root_token']}\n")
    print(f"Unsealing every node with {threshold} of the {shares} keys ...")
    sealed = unseal_everywhere(client, nodes, keys[:threshold])
    return 1 if sealed else 0


def cmd_unseal(client: httpx.Client, nodes: list[str],
               ask: Callable[[str], str] = getpass.getpass) -> int:
    status = client.get(f"{nodes[0]}/v1/sys/seal-status", timeout=5.0).json()
    threshold = int(status.get("t") or 0)
    if not status.get("initialized") or threshold < 1:
        print("error: the cluster is not initialised; use `init`", file=sys.stderr)
        return 1
    keys = []
    while len(keys) < threshold:
        key = (ask(f"Unseal key share ({len(keys) + 1} of {threshold}): ") if sys.stdin.isatty()
               else sys.stdin.readline()).strip()
        if not key:
            print("error: not enough key shares", file=sys.stderr)
            return 1
        keys.append(key)
    sealed = [n for n in nodes if (_health(client, n) or {}).get("sealed", True)]
    still = unseal_everywhere(client, sealed, keys)
    return 1 if still else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m transit.deploy.bootstrap",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default=os.environ.get("TRANSIT_NODES", ""),
                   help="comma-separated node URLs (default: $TRANSIT_NODES)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="how long to wait for the nodes to answer (default 120 s)")
    sub = p.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init", help="initialise, print the keys once, unseal every node")
    init.add_argument("--key-shares", type=int, default=5)
    init.add_argument("--key-threshold", type=int, default=3)
    sub.add_parser("unseal", help="ask for key shares and unseal every sealed node")
    args = p.parse_args(argv)
    nodes = [n.strip().rstrip("/") for n in args.nodes.split(",") if n.strip()]
    if not nodes:
        p.error("no nodes: pass --nodes or set TRANSIT_NODES")
    with httpx.Client() as client:
        wait_answering(client, nodes, args.timeout)
        if args.action == "init":
            return cmd_init(client, nodes, args.key_shares, args.key_threshold)
        return cmd_unseal(client, nodes)


if __name__ == "__main__":
    raise SystemExit(main())
