"""Composition root: config → storage backend → core → ASGI app → uvicorn listeners."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import ssl
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn

from transit import metrics, pools
from transit.api.app import VaultApp
from transit.api.forwarding import ForwardingGate
from transit.api.jsonlimits import JSONLimits
from transit.api.limits import LimitedConfig, listener_limits
from transit.api.protocol import VaultHttpToolsProtocol
from transit.api.quota_gate import QuotaGate
from transit.api.tls import server_context
from transit.cluster.identity import check_node_id, configured_node_id, new_owner
from transit.cluster.roles import HaOptions
from transit.cluster.siblings import RelayedSeal, WorkerInfo, WorkerLink
from transit.config import (
    ListenerConfig,
    ServerConfig,
    StorageConfig,
    TelemetryConfig,
    split_host_port,
)
from transit.core import Core
from transit.errors import ConfigError
from transit.logs import uvicorn_level
from transit.ratelimit import Buckets
from transit.reload import Reloader
from transit.seal.static import static_key
from transit.storage.factory import create_backend
from transit.ui.shell import with_ui

log = logging.getLogger("transit.server")


@dataclass(frozen=True)
class DevOptions:
    root_token: str = ""
    listen_address: str = "127.0.0.1:8200"


def load_static_seal_key(config: ServerConfig) -> bytes | None:
    """The key of a `seal "static"` stanza, or None for Shamir (ConfigError if invalid)."""
    return static_key(config.seal)


def dev_config(listen_address: str) -> ServerConfig:
    """What `-dev` means: in-memory storage, one plain-HTTP listener, the web UI on."""
    host, port = split_host_port(listen_address)
    return ServerConfig(
        listeners=(ListenerConfig(address=listen_address, tls_disable=True,
                                  cluster_address=f"{host}:{port + 1}"),),
        storage=StorageConfig(type="inmem"),
        api_addr=f"http://{listen_address}",
        telemetry=TelemetryConfig(prometheus_retention_time=24 * 3600.0),  # as Vault's -dev
        ui=True,  # as Vault's -dev
    )


def listener_url(listener: ListenerConfig) -> str:
    host, port = split_host_port(listener.address)
    scheme = "http" if listener.tls_disable else "https"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def invalidation_addresses(config: ServerConfig) -> tuple[str, str]:
    """(the local replica's address or else the primary's, the primary's) for the
    invalidation feed; "" when the storage stanza names neither (Sentinel only: the feed
    then asks the backend for the current primary at every (re)subscribe)."""
    opts = config.storage.options
    primary = str(opts.get("address") or "")
    return str(opts.get("read_address") or opts.get("read_addr") or primary), primary


def check_startup(config: ServerConfig) -> None:
    """What the config parser cannot check alone (it imports no server code): the declared
    audit devices' options, and the pid file's folder. ConfigError with a clear message."""
    from transit.audit.broker import check_declared

    check_declared(config.audit, allow_prefixing=config.allow_audit_log_prefixing)
    if config.pid_file:
        folder = os.path.dirname(os.path.abspath(config.pid_file))
        if not os.path.isdir(folder):
            raise ConfigError(f'pid_file "{config.pid_file}": the folder {folder} does not '
                              "exist")
        if os.path.isdir(config.pid_file):
            raise ConfigError(f'pid_file "{config.pid_file}" is a directory')


def configure_core(core: Core, config: ServerConfig) -> None:
    """The server-config settings the core applies: token TTL defaults and caps, and the
    declarative audit devices (enabled when this node loads its state as the active one)."""
    core.tokens.default_lease_ttl = config.default_lease_ttl
    core.tokens.max_lease_ttl = config.max_lease_ttl
    core.audit.declared = config.audit
    core.audit.allow_api_creation = config.unsafe_allow_api_audit_creation
    core.audit.allow_prefixing = config.allow_audit_log_prefixing


def write_pid_file(path: str, pid: int) -> None:
    """Vault's pid file: the process id, no newline, mode 0644 (replaced atomically)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def remove_pid_file(path: str) -> None:
    """Remove the pid file at a clean exit, if it still names this process."""
    if not path:
        return
    with contextlib.suppress(OSError):
        with open(path, encoding="ascii") as f:
            if f.read().strip() != str(os.getpid()):
                return
        os.remove(path)


async def _pid_file_once_listening(servers: list[uvicorn.Server], path: str, pid: int) -> None:
    """Write the pid file once every listener accepts connections; a pid file that cannot
    be written stops the server (exit status 1), as in Vault."""
    while not all(s.started for s in servers):
        if any(s.should_exit for s in servers):
            return
        await asyncio.sleep(0.01)
    try:
        write_pid_file(path, pid)
    except OSError as exc:
        log.error('cannot write pid_file "%s": %s; stopping', path, exc.strerror or exc)
        for s in servers:
            s.should_exit = True
        raise ConfigError(f'cannot write pid_file "{path}": {exc.strerror or exc}') from None
    log.info("pid %d written to %s", pid, path)


def preflight(config: ServerConfig, workers: int) -> None:
    """What would make every worker fail at start: a ConfigError now, in the supervisor."""
    load_static_seal_key(config)
    backend = create_backend(config.storage)  # builds clients only: no connection is opened
    configured_node_id(config.storage.options)  # e.g. an "@" in node_id
    if workers > 1 and not hasattr(backend, "primary_address"):
        raise ConfigError("workers > 1 needs redis storage: every worker subscribes to its "
                          "invalidation feed")


async def run(
    config: ServerConfig, dev: DevOptions | None = None, *, worker: WorkerInfo | None = None,
) -> None:
    """Serve one process: the whole node, or one worker of it (`worker`, transit/workers.py,
    whose listener sockets were bound by the supervisor, which also made the node's metrics
    directory; a one-process node makes its own here)."""
    if worker is not None:
        await _run(config, dev, worker=worker)
        return
    with metrics.private_dir():
        await _run(config, dev, worker=None)


async def _run(config: ServerConfig, dev: DevOptions | None, *, worker: WorkerInfo | None,
               ) -> None:
    multi = worker is not None and worker.count > 1
    physical = create_backend(config.storage)
    core = Core(
        physical, storage_type=config.storage.type, cluster_name=config.cluster_name,
        static_seal_key=load_static_seal_key(config),
    )
    configure_core(core, config)
    metrics.configure(config.telemetry.prometheus_retention_time,
                      config.telemetry.disable_hostname)
    metrics.bind(core)
    link = None
    if multi:
        assert worker is not None
        link = WorkerLink(worker, core)
        core.relay = link.relay
        core.seal = RelayedSeal(core.seal, link)  # type: ignore[assignment]
        link.attach()
    gated = dev is None and hasattr(physical, "acquire_lock")
    buckets = worker.buckets if worker is not None and worker.buckets else Buckets.create()
    fronts = [_front(core, lst, gated, buckets)  # limits are per listener
              for lst in config.listeners]
    front: Any = fronts[0]
    if gated:
        _enable_ha(core, physical, config, front, worker)
    token: str | None = None
    unseal_key: bytes | None = None
    if dev is not None:
        token, unseal_key = await core.setup_dev(dev.root_token)
    else:
        await core.start()
        if (link is not None and worker is not None and worker.restarted and core.initialized
                and core.sealed and not core.seal.auto):
            await link.sync_unseal()  # the node may have been unsealed with key shares
    if worker is None or worker.elector:
        _announce(config, dev, token, unseal_key, core)

    contexts: dict[str, ssl.SSLContext] = {}
    # the web UI at /ui (ui = true) in front of each listener's API app; the cluster
    # listener (enable_ha above) serves the API app alone
    servers = [uvicorn.Server(_uvicorn_config(with_ui(f, config.ui), lst, config, contexts))
               for f, lst in zip(fronts, config.listeners, strict=True)]
    # SIGHUP reopens audit files and reloads the log level and TLS certificates, as in Vault.
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, Reloader(config, contexts, core.audit.reload))
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)  # diagnostics: where is it waiting?
    tasks = [asyncio.create_task(metrics.run_flusher())]  # every process
    if worker is None or worker.elector:  # once per node: auto-rotation, echo heartbeats
        tasks.append(asyncio.create_task(core.lifecycle.run_periodic()))
        if core.ha is not None:
            tasks.append(asyncio.create_task(core.roles.run_echo()))
    # uvicorn re-raises the signal that stopped it once it has drained; with the default
    # disposition that would kill us before the HA lock is released below.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ignore_signal)
    pid_task = None
    if config.pid_file and (worker is None or worker.elector):
        # with workers, the node's pid is the supervisor's (it removes the file at exit)
        pid = os.getpid() if worker is None else os.getppid()
        pid_task = asyncio.create_task(_pid_file_once_listening(servers, config.pid_file, pid))
    try:
        if worker is not None and worker.sockets:
            await asyncio.gather(*(s.serve(sockets=[sock])
                                   for s, sock in zip(servers, worker.sockets, strict=True)))
        else:
            await asyncio.gather(*(s.serve() for s in servers))
        if pid_task is not None and pid_task.done() and not pid_task.cancelled():
            pid_task.result()  # ConfigError: the pid file could not be written
    finally:
        if pid_task is not None:
            pid_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConfigError):
                await pid_task
            if worker is None:
                remove_pid_file(config.pid_file)
        for task in tasks:
            task.cancel()
        if core.ha is not None:
            await core.ha.stop()
        if core.invalidator is not None:
            await core.invalidator.stop()
        if link is not None:
            link.detach()
        close = getattr(physical, "close", None)
        if close is not None:
            await close()
        pools.shutdown()


def _ignore_signal(signum: int, frame: Any) -> None:
    """Only reached after uvicorn has shut down (it handles the signals while serving)."""


def _dump_tasks() -> None:
    """Log the stack of every asyncio task (SIGUSR1)."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(file=out)
        log.warning("task %s:\n%s", task.get_name(), out.getvalue())


def _enable_ha(core: Core, physical: Any, config: ServerConfig, front: Any,
               worker: WorkerInfo | None = None) -> None:
    """Storage that can hold a lock makes this node part of an HA cluster. The workers of a
    node share its id and its lock owner (`<node id>@<instance>`, made once per start: by the
    supervisor, or here for a one-process node; transit/cluster/identity.py); worker 0
    elects, the others follow it (transit/cluster/follower.py). The storage connections are
    named after the owner, and the HA controller holds the lock as that owner."""
    listener = config.listeners[0]
    opts = config.storage.options
    if worker is not None:
        node_id = check_node_id(worker.node_id)
        owner = worker.owner or new_owner(node_id)
    else:
        node_id = configured_node_id(opts)
        owner = new_owner(node_id)
    multi = worker is not None and worker.count > 1
    (getattr(physical, "set_owner", None) or physical.set_node_id)(owner)
    standby_feed, primary_feed = invalidation_addresses(config)
    api_addr = config.api_addr or listener_url(listener)
    host, port = split_host_port(listener.cluster_address)
    shown = f"[{host}]" if ":" in host else host
    cluster_addr = config.cluster_addr or f"https://{shown}:{port}"
    core.enable_ha(physical, HaOptions(
        node_id=node_id, api_addr=api_addr, cluster_addr=cluster_addr,
        cluster_listen=listener.cluster_address, lock_ttl=float(getattr(physical, "lock_ttl", 10.0)),
        http=VaultHttpToolsProtocol, app=front, perf_standby=not config.disable_performance_standby,
        invalidation_address=standby_feed,
        invalidation_prefix=str(opts.get("prefix") or "transit"),
        follower=multi and worker is not None and not worker.elector,
        shared_writes=multi, invalidation_primary_address=primary_feed,
        max_staleness=config.performance_standby_max_staleness,
    ))


def _front(core: Core, listener: ListenerConfig, gated: bool, buckets: Buckets) -> Any:
    """The ASGI app of one listener, with that listener's request-size and JSON limits,
    behind the rate-limit quotas (checked first, on the node the client reached)."""
    app = VaultApp(core, max_request_size=listener.max_request_size,
                   unauthenticated_metrics_access=listener.unauthenticated_metrics_access,
                   json_limits=JSONLimits(
        max_depth=listener.max_json_depth,
        max_string_value_length=listener.max_json_string_value_length,
        max_object_entry_count=listener.max_json_object_entry_count,
        max_array_element_count=listener.max_json_array_element_count,
    ))
    if not gated:
        return QuotaGate(app, core, buckets)
    return QuotaGate(ForwardingGate(app, core, max_request_size=listener.max_request_size),
                     core, buckets)


def _uvicorn_config(app: Any, listener: ListenerConfig, config: ServerConfig,
                    contexts: dict[str, ssl.SSLContext]) -> uvicorn.Config:
    """uvicorn's config for one listener: its limits (enforced by VaultHttpToolsProtocol)
    and, for TLS, the SSL context built from its `tls_*` keys (ConfigError if its files
    cannot be read), also put in `contexts` by address (a SIGHUP reloads its certificate)."""
    host, port = split_host_port(listener.address)
    kwargs: dict[str, Any] = {}
    if not listener.tls_disable:
        context = contexts[listener.address] = server_context(listener)
        kwargs["ssl_context_factory"] = lambda _config, _default: context
    return LimitedConfig(
        app, host=host, port=port, loop="uvloop", http=VaultHttpToolsProtocol, lifespan="off",
        proxy_headers=False,
        access_log=False, log_level=uvicorn_level(config.log_level),
        server_header=False, date_header=True, timeout_keep_alive=listener.http_idle_timeout,
        timeout_graceful_shutdown=int(config.default_max_request_duration),
        http_limits=listener_limits(listener, config.default_max_request_duration,
                                    len(config.listeners)),
        **kwargs,
    )


def _announce(
    config: ServerConfig, dev: DevOptions | None, token: str | None, unseal_key: bytes | None,
    core: Core,
) -> None:
    url = listener_url(config.listeners[0])
    out = sys.stdout
    out.write("==> transit server configuration:\n\n")
    out.write(f"             Api Address: {config.api_addr or url}\n")
    out.write(f"               Listeners: {', '.join(listener_url(x) for x in config.listeners)}\n")
    out.write(f"                    Seal: {'static' if core.seal.auto else 'shamir'}\n")
    out.write(f"                 Storage: {config.storage.type}\n")
    out.write(f"            Cluster Name: {core.cluster.name}\n\n")
    if dev is not None and unseal_key is not None:
        out.write(
            "WARNING! dev mode is enabled! In this mode, transit runs entirely in-memory and\n"
            "starts unsealed with a single unseal key. Do not run dev mode in production.\n\n"
            "You may need to set the following environment variables:\n\n"
            f"    $ export VAULT_ADDR='{url}'\n\n"
            "The unseal key and root token are displayed below in case you want to\n"
            "seal/unseal the server or re-authenticate.\n\n"
            f"Unseal Key: {base64.b64encode(unseal_key).decode()}\n"
            f"Root Token: {token}\n\n"
        )
    elif core.storage_problem:
        out.write("Storage is unreachable: waiting for it (sys/health answers 503 "
                  "meanwhile).\n\n")
    elif not core.initialized:
        out.write("The server is not initialised: run `vault operator init` (or PUT sys/init).\n\n")
    elif core.sealed:
        out.write("The server is sealed: unseal it with `vault operator unseal` (sys/unseal).\n\n")
    if core.seal.auto:
        log.warning("static seal in use: the unseal key sits next to the data; keep it secret")
    out.write("==> transit server started! Log data will stream in below:\n\n")
    out.flush()
    for warning in config.warnings:
        log.warning("%s", warning)
