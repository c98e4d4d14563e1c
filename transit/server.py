"""Composition root: config → storage backend → core → ASGI app → uvicorn listeners."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass

import uvicorn

from transit.api.app import VaultApp
from transit.api.protocol import VaultHttpToolsProtocol
from transit.config import ListenerConfig, ServerConfig, StorageConfig
from transit.core import Core
from transit.storage.factory import create_backend

log = logging.getLogger("transit.server")


@dataclass(frozen=True)
class DevOptions:
    root_token: str = ""
    listen_address: str = "127.0.0.1:8200"


def dev_config(listen_address: str) -> ServerConfig:
    """What `-dev` means: in-memory storage, one plain-HTTP listener."""
    host, port = split_address(listen_address)
    return ServerConfig(
        listeners=(ListenerConfig(address=listen_address, tls_disable=True,
                                  cluster_address=f"{host}:{port + 1}"),),
        storage=StorageConfig(type="inmem"),
        api_addr=f"http://{listen_address}",
    )


def split_address(address: str) -> tuple[str, int]:
    """'127.0.0.1:8200' / '[::1]:8200' / ':8200' → (host, port)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def listener_url(listener: ListenerConfig) -> str:
    host, port = split_address(listener.address)
    scheme = "http" if listener.tls_disable else "https"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


async def run(config: ServerConfig, dev: DevOptions | None = None) -> None:
    backend = create_backend(config.storage)
    core = Core(backend, storage_type=config.storage.type, cluster_name=config.cluster_name)
    if dev is not None:
        token: str | None = await core.setup_dev(dev.root_token)
    else:
        token = await core.setup()
    listener = config.listeners[0]
    app = VaultApp(core, max_request_size=listener.max_request_size)
    _announce(config, dev, token)

    periodic = asyncio.create_task(core.run_periodic())
    servers = [uvicorn.Server(_uvicorn_config(app, lst, config)) for lst in config.listeners]
    try:
        await asyncio.gather(*(s.serve() for s in servers))
    finally:
        periodic.cancel()


def _uvicorn_config(app: VaultApp, listener: ListenerConfig, config: ServerConfig) -> uvicorn.Config:
    host, port = split_address(listener.address)
    kwargs: dict[str, object] = {}
    if not listener.tls_disable:
        kwargs["ssl_certfile"] = listener.tls_cert_file
        kwargs["ssl_keyfile"] = listener.tls_key_file
    return uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http=VaultHttpToolsProtocol, lifespan="off",
        proxy_headers=False,
        access_log=False, log_level=config.log_level if config.log_level != "trace" else "debug",
        server_header=False, date_header=True, timeout_keep_alive=65,
        timeout_graceful_shutdown=int(config.default_max_request_duration), **kwargs,
    )


def _announce(config: ServerConfig, dev: DevOptions | None, token: str | None) -> None:
    url = listener_url(config.listeners[0])
    out = sys.stdout
    out.write("==> transit server configuration:\n\n")
    out.write(f"             Api Address: {config.api_addr or url}\n")
    out.write(f"               Listeners: {', '.join(listener_url(x) for x in config.listeners)}\n")
    out.write(f"                 Storage: {config.storage.type}\n")
    out.write(f"            Cluster Name: {'(generated)' if not config.cluster_name else config.cluster_name}\n\n")
    if dev is not None:
        out.write(
            "WARNING! dev mode is enabled! In this mode, transit runs entirely in-memory and\n"
            "starts unsealed. Do not run dev mode in production.\n\n"
            "You may need to set the following environment variables:\n\n"
            f"    $ export VAULT_ADDR='{url}'\n\n"
            f"Root Token: {token}\n\n"
        )
    elif token is not None:
        out.write(
            "A root token was generated for this new storage. It is shown only once:\n\n"
            f"Root Token: {token}\n\n"
        )
    for warning in config.warnings:
        out.write(f"WARNING: {warning}\n")
    out.write("==> transit server started! Log data will stream in below:\n\n")
    out.flush()
