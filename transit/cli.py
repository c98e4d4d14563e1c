"""The `transit` command line, Vault-style single-dash flags (`transit server -dev`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from transit import __version__
from transit.errors import ConfigError

DEV_LISTEN_ADDRESS = "127.0.0.1:8200"


def _server_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "server",
        help="start a transit server",
        description="Start a transit server: `-dev` for an in-memory, unsealed development "
        "server with transit mounted at transit/, or `-config FILE` (HCL or JSON).",
    )
    p.add_argument("-config", "--config", metavar="FILE", help="server configuration file (HCL or JSON)")
    p.add_argument("-dev", "--dev", action="store_true", help="start an in-memory dev server")
    p.add_argument(
        "-dev-root-token-id", "--dev-root-token-id", default=None, metavar="TOKEN",
        help="root token to use in dev mode (default: $VAULT_DEV_ROOT_TOKEN_ID, else "
        "generated)",
    )
    p.add_argument(
        "-dev-listen-address", "--dev-listen-address", default=None,
        metavar="ADDR", help="address the dev server listens on (default: "
        f"$VAULT_DEV_LISTEN_ADDRESS, else {DEV_LISTEN_ADDRESS})",
    )
    p.add_argument(
        "-workers", "--workers", type=int, default=None, metavar="N",
        help="worker processes for this node, sharing its identity and HA role (default: the "
        "config's `workers`, else the CPU count with redis storage and 1 otherwise; more "
        "than 1 needs storage \"redis\"; -dev always runs 1)",
    )
    p.add_argument(
        "-log-level", "--log-level", default=None, metavar="LEVEL",
        help="trace, debug, info, warn or error (default: $VAULT_LOG_LEVEL, else the "
        "config's log_level, else info)",
    )
    p.add_argument(
        "-log-format", "--log-format", default=None, metavar="FORMAT",
        help="standard or json (default: $VAULT_LOG_FORMAT, else the config's log_format, "
        "else standard)",
    )
    p.add_argument(
        "-log-file", "--log-file", default=None, metavar="PATH",
        help="also write the log to this file (a directory gets vault.log; default: the "
        "config's log_file)",
    )
    p.add_argument("-log-rotate-duration", "--log-rotate-duration", default=None,
                   metavar="DURATION", help="rotate the log file at this age (default 24h)")
    p.add_argument("-log-rotate-bytes", "--log-rotate-bytes", type=int, default=None,
                   metavar="N", help="rotate the log file at this size (default 0: no limit)")
    p.add_argument("-log-rotate-max-files", "--log-rotate-max-files", type=int, default=None,
                   metavar="N", help="rotated log files to keep (default 0: all; -1: none)")


def _cluster_parser(sub: argparse._SubParsersAction) -> None:
    from transit.dev.clusterparts import DEFAULT_WORKDIR

    p = sub.add_parser(
        "cluster",
        help="run a local HA cluster (Redis + several nodes) for development and tests",
        description="Start or stop a local HA cluster on 127.0.0.1: a Redis primary and "
        "replicas, N transit nodes with a static seal, initialised, one of them active; with "
        "--sentinels 3 --haproxy, the topology of docker/compose.yml (docs/deploy.md).",
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
    up.add_argument("--sentinels", type=int, default=0,
                    help="Redis Sentinels watching the primary (default 0: none); with "
                    "Sentinels the nodes find the primary through them and node i reads from "
                    "Redis server i (the primary counts), as in docker/compose.yml")
    up.add_argument("--sentinel-port", type=int, default=None,
                    help="port of the first Sentinel, the next ones follow (default: "
                    "redis-port + 20000)")
    up.add_argument("--haproxy", action="store_true",
                    help="start HAProxy in front of the nodes (haproxy from /usr/sbin): writes "
                    "to the active node on --haproxy-port, encrypt/decrypt/reads over every "
                    "unsealed node on the next port, stats page on the one after")
    up.add_argument("--haproxy-port", type=int, default=8300,
                    help="HAProxy's writes frontend; reads +1, stats +2 (default 8300)")
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


def _env(name: str) -> str:
    """VAULT_<name>, else OpenBao's BAO_<name>, else ""."""
    return os.environ.get(f"VAULT_{name}") or os.environ.get(f"BAO_{name}") or ""


def _cmd_server(args: argparse.Namespace) -> int:
    import uvloop

    from transit.config import WORKERS_NEED_REDIS, load_config, resolve_logging, resolve_workers
    from transit.logs import setup_logging
    from transit.server import (
        DevOptions,
        check_startup,
        dev_config,
        preflight,
        remove_pid_file,
        run,
    )

    try:
        if args.dev:
            if args.workers is not None and args.workers > 1:
                raise ConfigError(f"-dev runs one process: {WORKERS_NEED_REDIS}")
            # flags win over the environment, as in Vault
            address = (args.dev_listen_address or _env("DEV_LISTEN_ADDRESS")
                       or DEV_LISTEN_ADDRESS)
            token = args.dev_root_token_id
            if token is None:
                token = _env("DEV_ROOT_TOKEN_ID")
            config = dev_config(address)
            dev: DevOptions | None = DevOptions(token, address)
            workers = 1
        elif args.config:
            config = load_config(args.config)
            dev = None
            workers = resolve_workers(config, args.workers)
        else:
            print("error: either -dev or -config FILE is required", file=sys.stderr)
            return 2
        config = resolve_logging(
            config, level=args.log_level, fmt=args.log_format, log_file=args.log_file,
            rotate_duration=args.log_rotate_duration, rotate_bytes=args.log_rotate_bytes,
            rotate_max_files=args.log_rotate_max_files)
        check_startup(config)
        if workers > 1:
            preflight(config, workers)
        setup_logging(config.log_level, config.log_format, log_file=config.log_file,
                      rotate_duration=config.log_rotate_duration,
                      rotate_bytes=config.log_rotate_bytes,
                      rotate_max_files=config.log_rotate_max_files)
    except ConfigError as exc:
        print(f"error loading configuration: {exc}", file=sys.stderr)
        return 1
    _no_core_dumps()
    if workers > 1:
        from transit.workers import serve_workers

        try:
            return serve_workers(config, workers)
        except OSError as exc:
            print(f"error starting the listeners: {exc}", file=sys.stderr)
            return 1
        finally:
            remove_pid_file(config.pid_file)  # written by worker 0 with our pid
    try:
        uvloop.run(run(config, dev))
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:
        print(f"error loading configuration: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from transit.dev.clusterstate import ClusterError, describe, down_from_state
    from transit.dev.localcluster import LocalCluster

    if args.cluster_command == "up":
        try:
            cluster = LocalCluster(args.dir, nodes=args.nodes, replicas=args.replicas,
                                   base_port=args.base_port, redis_port=args.redis_port,
                                   lock_ttl=args.lock_ttl, perf_standby=args.perf_standby,
                                   workers=args.workers, sentinels=args.sentinels,
                                   sentinel_port=args.sentinel_port,
                                   haproxy_port=args.haproxy_port if args.haproxy else None)
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
