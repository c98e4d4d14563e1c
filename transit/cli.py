"""The `transit` command line, Vault-style single-dash flags (`transit server -dev`)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from transit import __version__
from transit.errors import ConfigError


def _server_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "server",
        help="start a transit server",
        description="Start a transit server: `-dev` for an in-memory, unsealed development "
        "server with transit mounted at transit/, or `-config FILE` (HCL or JSON).",
    )
    p.add_argument("-config", "--config", metavar="FILE", help="server configuration file (HCL or JSON)")
    p.add_argument("-dev", "--dev", action="store_true", help="start an in-memory dev server")
    p.add_argument(
        "-dev-root-token-id", "--dev-root-token-id", default="", metavar="TOKEN",
        help="root token to use in dev mode (default: generated)",
    )
    p.add_argument(
        "-dev-listen-address", "--dev-listen-address", default="127.0.0.1:8200",
        metavar="ADDR", help="address the dev server listens on (default 127.0.0.1:8200)",
    )
    p.add_argument(
        "-workers", "--workers", type=int, default=None, metavar="N",
        help="worker processes for this node, sharing its identity and HA role (default: the "
        "config's `workers`, else the CPU count with redis storage and 1 otherwise; more "
        "than 1 needs storage \"redis\"; -dev always runs 1)",
    )
    p.add_argument(
        "-log-level", "--log-level", default=None,
        choices=["trace", "debug", "info", "warn", "warning", "error"],
        help="log level (default: info, or the config file's log_level)",
    )


def _cluster_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from transit.localcluster import DEFAULT_WORKDIR

    p = sub.add_parser(
        "cluster",
        help="run a local HA cluster (Redis + several nodes) for development and tests",
        description="Start or stop a local HA cluster on 127.0.0.1: a Redis primary and "
        "replicas, N transit nodes with a static seal, initialised, one of them active.",
    )
    csub = p.add_subparsers(dest="cluster_command", metavar="ACTION")
    up = csub.add_parser("up", help="start a local cluster (detached)")
    up.add_argument("--nodes", type=int, default=3, help="transit nodes (default 3)")
    up.add_argument("--replicas", type=int, default=2, help="Redis replicas (default 2)")
    up.add_argument("--dir", default=DEFAULT_WORKDIR,
                    help=f"work folder for configs, logs and state (default {DEFAULT_WORKDIR})")
    up.add_argument("--base-port", type=int, default=8200,
                    help="API port of node 0; node i uses base+10*i, cluster port +1 "
                    "(default 8200)")
    up.add_argument("--redis-port", type=int, default=6379,
                    help="Redis primary port; replicas use the next ports (default 6379)")
    up.add_argument("--lock-ttl", default="10s", help="HA lock TTL (default 10s)")
    up.add_argument("--perf-standby", action=argparse.BooleanOptionalAction, default=True,
                    help="run the standbys as performance standbys, like the server's default "
                    "(--no-perf-standby: plain standbys that forward every request)")
    up.add_argument("--workers", type=int, default=None,
                    help="worker processes per node (default: the server's default)")
    down = csub.add_parser("down", help="stop a cluster started by `cluster up`")
    down.add_argument("--dir", default=DEFAULT_WORKDIR,
                      help=f"work folder given to `up` (default {DEFAULT_WORKDIR})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transit", description="A Vault-compatible encryption-as-a-service server."
    )
    parser.add_argument("-version", "--version", action="version", version=f"transit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _server_parser(sub)
    _cluster_parser(sub)
    return parser


def _cmd_server(args: argparse.Namespace) -> int:
    import uvloop

    from transit.config import WORKERS_NEED_REDIS, load_config, resolve_workers
    from transit.server import DevOptions, dev_config, preflight, run

    try:
        if args.dev:
            if args.workers is not None and args.workers > 1:
                raise ConfigError(f"-dev runs one process: {WORKERS_NEED_REDIS}")
            config = dev_config(args.dev_listen_address)
            dev: DevOptions | None = DevOptions(args.dev_root_token_id, args.dev_listen_address)
            workers = 1
        elif args.config:
            config = load_config(args.config)
            dev = None
            workers = resolve_workers(config, args.workers)
            if workers > 1:
                preflight(config, workers)
        else:
            print("error: either -dev or -config FILE is required", file=sys.stderr)
            return 2
    except ConfigError as exc:
        print(f"error loading configuration: {exc}", file=sys.stderr)
        return 1
    _no_core_dumps()
    level = (args.log_level or config.log_level or "info").upper()
    level = {"TRACE": "DEBUG", "WARN": "WARNING"}.get(level, level)
    logging.basicConfig(level=level, format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per forwarded request
    if workers > 1:
        from transit.workers import serve_workers

        try:
            return serve_workers(config, workers)
        except OSError as exc:
            print(f"error starting the listeners: {exc}", file=sys.stderr)
            return 1
    try:
        uvloop.run(run(config, dev))
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:
        print(f"error loading configuration: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from transit.localcluster import ClusterError, LocalCluster, describe, down_from_state

    if args.cluster_command == "up":
        try:
            cluster = LocalCluster(args.dir, nodes=args.nodes, replicas=args.replicas,
                                   base_port=args.base_port, redis_port=args.redis_port,
                                   lock_ttl=args.lock_ttl, perf_standby=args.perf_standby,
                                   workers=args.workers)
            cluster.up()
            active = cluster.active_index()
        except (ClusterError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted; everything started was stopped", file=sys.stderr)
            return 1
        print(describe(cluster, active), end="")
        return 0
    if args.cluster_command == "down":
        try:
            report = down_from_state(args.dir)
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"==> cluster in {args.dir} stopped: {report['terminated']} process(es) "
              f"terminated, {report['killed']} killed, {report['already_gone']} already gone")
        return 0
    print("usage: transit cluster {up,down} [options] (see transit cluster -h)",
          file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "server":
        return _cmd_server(args)
    if args.command == "cluster":
        return _cmd_cluster(args)
    parser.print_help()
    return 0 if args.command is None else 2


def _no_core_dumps() -> None:
    """A core dump of the server holds the unsealed root key and every cached key: none is
    written unless TRANSIT_ALLOW_CORE_DUMPS=1 (for debugging on a machine you trust)."""
    if os.environ.get("TRANSIT_ALLOW_CORE_DUMPS") == "1":
        return
    import resource

    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
