"""`python -m transit.deploy.bootstrap init|unseal`: initialise a new Shamir-sealed cluster
and unseal its nodes, as an operator would with `vault operator init` and `unseal` on each
node (the compose file's one-shot `init` and `unseal` services; docs/deploy.md).

- `init`: waits until every node answers, sends `sys/init` to the first one, prints the key
  shares and the root token once (nothing is written anywhere else), then unseals every node.
- `unseal`: when some node is sealed, asks for key shares (hidden input; or one per line on
  a non-terminal stdin) until the threshold is reached, and sends them to every sealed node
  (discarding first any unseal progress an earlier, failed attempt left there).

Nodes come from `--nodes` or `$TRANSIT_NODES` (comma-separated base URLs), before or after the
action; `--timeout` (default 120 s) bounds the wait for every node to answer. Exit status 0
when every node ends up unsealed, else 1 with `error: ...` lines on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
import threading
import time
from collections.abc import Callable

import httpx


def _health(client: httpx.Client, node: str, timeout: float = 3.0) -> dict[str, object] | None:
    try:
        r = client.get(f"{node}/v1/sys/health", timeout=timeout)
        return dict(r.json())
    except (httpx.HTTPError, ValueError):
        return None


def _describe(exc: httpx.HTTPError) -> str:
    """`ConnectError (PUT http://node/v1/sys/init): [Errno 111] Connection refused`."""
    where = ""
    with contextlib.suppress(RuntimeError):  # no request attached
        where = f" ({exc.request.method} {exc.request.url})"
    return f"{type(exc).__name__}{where}: {exc}"


def wait_answering(client: httpx.Client, nodes: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for node in nodes:
        while _health(client, node, min(3.0, max(0.1, deadline - time.monotonic()))) is None:
            if time.monotonic() >= deadline:
                raise SystemExit(f"error: {node} does not answer after {timeout:g}s")
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _errors(r: httpx.Response) -> str:
    """The server's error messages (`{"errors": [...]}`), else the status and body."""
    try:
        errors = r.json().get("errors")
    except (ValueError, AttributeError):
        errors = None
    if errors and isinstance(errors, list):
        return "; ".join(str(e) for e in errors)
    return f"{r.status_code} {r.text.strip()}"


def unseal_everywhere(client: httpx.Client, nodes: list[str], keys: list[str]) -> list[str]:
    """Send the key shares to every node at the same time (one thread per node); the nodes
    still sealed afterwards (each with a message on stderr).

    A node's unseal progress left over from an earlier, failed attempt (a share rejected
    half-way, an interrupted run) is discarded first: otherwise its shares, possibly wrong
    ones, would be combined with these."""
    sealed: list[str] = []

    def one(node: str) -> None:
        try:
            status = client.get(f"{node}/v1/sys/seal-status", timeout=10.0).json()
            if status.get("sealed") and status.get("progress"):
                client.put(f"{node}/v1/sys/unseal", json={"reset": True}, timeout=10.0)
            for key in keys:
                r = client.put(f"{node}/v1/sys/unseal", json={"key": key}, timeout=30.0)
                if r.status_code != 200:
                    print(f"error: {node}: {_errors(r)}", file=sys.stderr)
                    sealed.append(node)
                    return
                if not r.json().get("sealed", True):
                    print(f"{node}: unsealed")
                    return
        except (httpx.HTTPError, ValueError) as exc:
            print(f"error: {node}: {_describe(exc) if isinstance(exc, httpx.HTTPError) else exc}",
                  file=sys.stderr)
            sealed.append(node)
            return
        print(f"error: {node}: still sealed after {len(keys)} key shares", file=sys.stderr)
        sealed.append(node)

    threads = [threading.Thread(target=one, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sealed:
        print(f"error: {len(sealed)} node(s) still sealed: {', '.join(sorted(sealed))}",
              file=sys.stderr)
    return sealed


def cmd_init(client: httpx.Client, nodes: list[str], shares: int, threshold: int) -> int:
    if (_health(client, nodes[0]) or {}).get("initialized"):
        print(f"error: {nodes[0]} is already initialised; use `unseal`", file=sys.stderr)
        return 1
    r = client.put(f"{nodes[0]}/v1/sys/init", timeout=60.0,
                   json={"secret_shares": shares, "secret_threshold": threshold})
    if r.status_code != 200:
        print(f"error: sys/init on {nodes[0]}: {_errors(r)}", file=sys.stderr)
        return 1
    doc = r.json()
    keys: list[str] = doc["keys_base64"]
    print("Keep these safe and apart; they are shown only once.\n")
    for i, key in enumerate(keys, 1):
        print(f"Unseal Key {i}: {key}")
    # flushed now: on a pipe, keys still buffered when an unseal hangs and the run is killed
    # would be lost, and nothing else has them
    print(f"\nInitial Root Token: {doc['root_token']}\n", flush=True)
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
    sealed = [n for n in nodes if (_health(client, n) or {}).get("sealed", True)]
    if not sealed:
        print("every node is already unsealed")
        return 0
    keys: list[str] = []
    while len(keys) < threshold:
        key = (ask(f"Unseal key share ({len(keys) + 1} of {threshold}): ") if sys.stdin.isatty()
               else sys.stdin.readline()).strip()
        if not key:
            print(f"error: not enough key shares ({len(keys)} of {threshold})", file=sys.stderr)
            return 1
        if key in keys:  # the nodes would ignore it and stay sealed
            print(f"error: key share {len(keys) + 1} repeats an earlier one", file=sys.stderr)
            return 1
        keys.append(key)
    still = unseal_everywhere(client, sealed, keys)
    return 1 if still else 0


def main(argv: list[str] | None = None) -> int:
    # --nodes and --timeout are accepted before or after the action (`init --nodes ...`);
    # the action's copies default to SUPPRESS, so they only override when given.
    def common(parser: argparse.ArgumentParser, nodes: object, timeout: object) -> None:
        parser.add_argument("--nodes", default=nodes,
                            help="comma-separated node URLs (default: $TRANSIT_NODES)")
        parser.add_argument("--timeout", type=float, default=timeout,
                            help="how long to wait for the nodes to answer (default 120 s)")

    p = argparse.ArgumentParser(prog="python -m transit.deploy.bootstrap",
                                description=__doc__.split("\n\n")[0])
    common(p, os.environ.get("TRANSIT_NODES", ""), 120.0)
    sub = p.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init", help="initialise, print the keys once, unseal every node")
    common(init, argparse.SUPPRESS, argparse.SUPPRESS)
    init.add_argument("--key-shares", type=int, default=5)
    init.add_argument("--key-threshold", type=int, default=3)
    unseal = sub.add_parser("unseal", help="ask for key shares and unseal every sealed node")
    common(unseal, argparse.SUPPRESS, argparse.SUPPRESS)
    args = p.parse_args(argv)
    nodes = [n.strip().rstrip("/") for n in args.nodes.split(",") if n.strip()]
    if not nodes:
        p.error("no nodes: pass --nodes or set TRANSIT_NODES")
    try:
        with httpx.Client() as client:
            wait_answering(client, nodes, args.timeout)
            if args.action == "init":
                return cmd_init(client, nodes, args.key_shares, args.key_threshold)
            return cmd_unseal(client, nodes)
    except httpx.HTTPError as exc:  # a node stopped answering half-way
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return 1
    except ValueError as exc:  # an answer that is not the JSON of sys/*
        print(f"error: unexpected answer from a node: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
