"""The `transit` command line, Vault-style single-dash flags (`transit server -dev`)."""

from __future__ import annotations

import argparse
import logging
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
        "-log-level", "--log-level", default=None,
        choices=["trace", "debug", "info", "warn", "warning", "error"],
        help="log level (default: info, or the config file's log_level)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transit", description="A Vault-compatible encryption-as-a-service server."
    )
    parser.add_argument("-version", "--version", action="version", version=f"transit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _server_parser(sub)
    return parser


def _cmd_server(args: argparse.Namespace) -> int:
    import uvloop

    from transit.config import load_config
    from transit.server import DevOptions, dev_config, run

    try:
        if args.dev:
            config = dev_config(args.dev_listen_address)
            dev: DevOptions | None = DevOptions(args.dev_root_token_id, args.dev_listen_address)
        elif args.config:
            config = load_config(args.config)
            dev = None
        else:
            print("error: either -dev or -config FILE is required", file=sys.stderr)
            return 2
    except ConfigError as exc:
        print(f"error loading configuration: {exc}", file=sys.stderr)
        return 1
    level = (args.log_level or config.log_level or "info").upper()
    level = {"TRACE": "DEBUG", "WARN": "WARNING"}.get(level, level)
    logging.basicConfig(level=level, format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per forwarded request
    try:
        uvloop.run(run(config, dev))
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:
        print(f"error loading configuration: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "server":
        return _cmd_server(args)
    parser.print_help()
    return 0 if args.command is None else 2
