"""The whole server configuration: ServerConfig, the top-level keys (supported, no-op,
refused), `parse_config` / `load_config`, and what the command line resolves on top of the
file (`resolve_logging`, `resolve_workers`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from transit import hcl
from transit.config.listener import ListenerConfig, _listener
from transit.config.stanzas import (
    AuditDeviceConfig,
    SealStanza,
    StorageConfig,
    TelemetryConfig,
    _audit_devices,
    _storage,
    _telemetry,
    seal_stanza,
)
from transit.config.values import (
    _blocks,
    _max_staleness,
    _parse_int,
    _str,
    parse_bool,
    parse_duration,
)
from transit.errors import ConfigError

DEFAULT_LEASE_TTL = 768 * 3600  # Vault's default_lease_ttl and max_lease_ttl: 32 days

# The top-level keys of Vault's (and OpenBao's) server configuration, by what transit does
# with them. Every one of them either works, or stops the server with a message naming it
# (REFUSED_KEYS always; REFUSED_UNLESS_OFF when set to anything but its off value); a key
# Vault does not know is accepted with a warning, as Vault does.
SUPPORTED_KEYS = frozenset(
    """
    storage backend listener seal audit api_addr redirect_addr cluster_addr cluster_name
    disable_mlock ui log_level log_format log_file log_rotate_duration log_rotate_bytes
    log_rotate_max_files default_lease_ttl max_lease_ttl default_max_request_duration
    disable_clustering disable_performance_standby pid_file workers
    performance_standby_max_staleness unsafe_allow_api_audit_creation
    allow_audit_log_prefixing telemetry
    """.split()
)
# Switches that turn off something transit does not have (Enterprise seal wrapping,
# replication indexing, Sentinel tracing, lease-count quota tracking): either value is
# what transit does, as in Vault Community Edition.
NO_OP_KEYS = frozenset(
    "disable_sealwrap disable_indexing disable_sentinel_trace imprecise_lease_role_tracking"
    .split()
)
_NOT_IMPLEMENTED = "is not implemented by transit"
REFUSED_KEYS: dict[str, str] = {
    "ha_storage": 'a separate HA backend is not supported: HA comes from storage "redis"',
    "ha_backend": 'a separate HA backend is not supported: HA comes from storage "redis"',
    "replication": f"replication (Vault Enterprise) {_NOT_IMPLEMENTED}",
    "entropy": f"entropy augmentation (Vault Enterprise) {_NOT_IMPLEMENTED}",
    "license_path": "transit has no license (a Vault Enterprise setting)",
    "administrative_namespace_path": f"namespaces (Vault Enterprise) {_NOT_IMPLEMENTED}",
    "service_registration": f"service registration (Consul, Kubernetes) {_NOT_IMPLEMENTED}",
    "user_lockout": "user lockout applies to auth methods transit does not have",
    "plugin_directory": f"plugins {_NOT_IMPLEMENTED}",
    "plugin_file_uid": f"plugins {_NOT_IMPLEMENTED}",
    "plugin_file_permissions": f"plugins {_NOT_IMPLEMENTED}",
    "plugin_tmpdir": f"plugins {_NOT_IMPLEMENTED}",
    "cache_size": "transit has no storage read cache to size (its token, policy and key "
                  "caches are bounded internally)",
    "log_requests_level": f"request logging {_NOT_IMPLEMENTED}; use an audit device",
    "cluster_cipher_suites": "the cluster port's TLS (mutual, with per-node certificates) "
                             "cannot be configured",
    "post_unseal_trace_directory": f"post-unseal tracing {_NOT_IMPLEMENTED}",
    "remove_irrevocable_lease_after": f"leases {_NOT_IMPLEMENTED} (only tokens expire)",
}
REFUSED_UNLESS_OFF: dict[str, str] = {
    "disable_cache": "transit's caches cannot be turned off",
    "raw_storage_endpoint": f"sys/raw {_NOT_IMPLEMENTED}",
    "introspection_endpoint": f"sys/internal/inspect {_NOT_IMPLEMENTED}",
    "enable_response_header_hostname": f"the X-Vault-Hostname header {_NOT_IMPLEMENTED}",
    "enable_response_header_raft_node_id": "transit has no raft storage",
    "disable_printable_check": "request paths and values are always checked for "
                               "non-printable characters",
    "enable_post_unseal_trace": f"post-unseal tracing {_NOT_IMPLEMENTED}",
    "detect_deadlocks": f"deadlock detection {_NOT_IMPLEMENTED}",
    "experiments": "transit has no experiments to enable",
}
KNOWN_KEYS = SUPPORTED_KEYS | NO_OP_KEYS | REFUSED_KEYS.keys() | REFUSED_UNLESS_OFF.keys()


@dataclass(frozen=True)
class ServerConfig:
    listeners: tuple[ListenerConfig, ...]
    storage: StorageConfig
    ha_storage: StorageConfig | None = None
    api_addr: str = ""
    cluster_addr: str = ""
    cluster_name: str = ""
    disable_mlock: bool = False
    ui: bool = False
    log_level: str = "info"  # canonical: trace, debug, info, warn, error
    log_format: str = "standard"  # or "json"
    log_file: str = ""
    log_rotate_duration: float = 24 * 3600.0  # seconds; 0: never
    log_rotate_bytes: int = 0  # 0: no limit
    log_rotate_max_files: int = 0  # 0: keep all, -1: keep none
    default_lease_ttl: int = DEFAULT_LEASE_TTL  # seconds (token TTLs)
    max_lease_ttl: int = DEFAULT_LEASE_TTL
    pid_file: str = ""
    audit: tuple[AuditDeviceConfig, ...] = ()
    # OpenBao's switches; transit's defaults are Vault's behaviour (both allowed)
    unsafe_allow_api_audit_creation: bool = True
    allow_audit_log_prefixing: bool = True
    default_max_request_duration: float = 90.0  # seconds
    disable_clustering: bool = False
    disable_performance_standby: bool = False
    # ours: a performance standby serves from its caches only while they are at most this
    # many seconds behind the primary (transit/cluster/invalidation.py); else it forwards
    performance_standby_max_staleness: float = 5.0
    workers: int | None = None  # processes per node; None = unset (see `resolve_workers`)
    telemetry: TelemetryConfig = TelemetryConfig()
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    warnings: tuple[str, ...] = ()
    path: str = ""  # the file it was read from (SIGHUP re-reads it); "" for -dev

    @property
    def seal(self) -> SealStanza | None:
        """The `seal` stanza, typed; None for Shamir. Read from `raw` when asked, so a malformed
        stanza is reported where the seal key is loaded (transit.seal.static.static_key), as before."""
        return seal_stanza(self.raw)


WORKERS_NEED_REDIS = 'workers > 1 needs storage "redis" (inmem and file storage live in one process)'


def _check_workers(n: int, storage_type: str, name: str = "workers") -> int:
    if n < 1:
        raise ConfigError(f"{name} must be at least 1, got {n}")
    if n > 1 and storage_type != "redis":
        raise ConfigError(f"{WORKERS_NEED_REDIS}; storage is \"{storage_type}\"")
    return n


def _workers(value: Any, storage_type: str) -> int | None:
    if value is None:
        return None
    return _check_workers(_parse_int(value, "workers"), storage_type)


def default_workers() -> int:
    """The CPUs this process may run on (its affinity mask, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(config: ServerConfig, override: int | None = None) -> int:
    """Worker processes for this node: the `-workers` flag, else the config's `workers`, else
    the CPU count with redis storage and 1 otherwise. ConfigError for > 1 without redis."""
    if override is not None:
        return _check_workers(override, config.storage.type, "-workers")
    if config.workers is not None:
        return config.workers
    return default_workers() if config.storage.type == "redis" else 1


def _refuse_keys(raw: dict[str, Any], source: str) -> None:
    """Vault keys transit does not implement stop the server, naming the key."""
    for key, value in raw.items():
        why = REFUSED_KEYS.get(key)
        if why is None and key in REFUSED_UNLESS_OFF and _is_on(value, key):
            why = REFUSED_UNLESS_OFF[key]
        if why is not None:
            raise ConfigError(f'"{key}" in {source} is not supported: {why}; remove it')


def _is_on(value: Any, key: str) -> bool:
    if key in ("detect_deadlocks", "experiments"):  # a list or a comma-separated string
        if isinstance(value, str):
            return bool(value.strip())
        return bool(value)
    return parse_bool(value, key)


def _lease_ttls(raw: dict[str, Any]) -> tuple[int, int]:
    """(default_lease_ttl, max_lease_ttl) in seconds; 0 or unset is 768h, as in Vault."""
    out = []
    for name in ("default_lease_ttl", "max_lease_ttl"):
        seconds = parse_duration(raw.get(name, 0), name)
        if seconds < 0:
            raise ConfigError(f"{name}: must not be negative, got {raw[name]!r}")
        out.append(int(seconds) or DEFAULT_LEASE_TTL)
    default, maximum = out
    if default > maximum:
        raise ConfigError(
            f"default_lease_ttl ({raw.get('default_lease_ttl', '768h')}) cannot be larger "
            f"than max_lease_ttl ({raw.get('max_lease_ttl', '768h')}); both default to 768h")
    return default, maximum


def _logging(raw: dict[str, Any]) -> dict[str, Any]:
    from transit import logs

    out: dict[str, Any] = {
        "log_level": logs.parse_level(_str(raw.get("log_level", "info"), "log_level")),
        "log_format": logs.parse_format(_str(raw.get("log_format", ""), "log_format")),
        "log_file": _str(raw.get("log_file", ""), "log_file").strip(),
        "log_rotate_duration": parse_duration(raw.get("log_rotate_duration", "24h"),
                                              "log_rotate_duration"),
        "log_rotate_bytes": _parse_int(raw.get("log_rotate_bytes", 0), "log_rotate_bytes"),
        "log_rotate_max_files": _parse_int(raw.get("log_rotate_max_files", 0),
                                           "log_rotate_max_files"),
    }
    if out["log_rotate_duration"] < 0 or out["log_rotate_bytes"] < 0:
        raise ConfigError("log_rotate_duration and log_rotate_bytes must not be negative")
    if out["log_rotate_max_files"] < -1:
        raise ConfigError("log_rotate_max_files: 0 keeps every rotated file, -1 none, "
                          f"N the newest N; got {out['log_rotate_max_files']}")
    return out


def _build(raw: dict[str, Any], source: str, env: Mapping[str, str]) -> ServerConfig:
    warnings = [
        f"unknown or unsupported field {k} found in configuration at {source}"
        for k in raw
        if k not in KNOWN_KEYS
    ]
    _refuse_keys(raw, source)
    if env.get("VAULT_EXPERIMENTS", "").strip():
        raise ConfigError("VAULT_EXPERIMENTS is not supported: transit has no experiments "
                          "to enable; unset it")
    if env.get("VAULT_SEAL_TYPE", "").strip():
        raise ConfigError('VAULT_SEAL_TYPE is not supported: configure the seal with a '
                          '`seal "static" { ... }` stanza (or none, for Shamir); unset it')
    storage = _storage(raw, ("storage", "backend"))
    if storage is None:
        raise ConfigError('a storage backend must be specified (storage "<type>" { ... })')
    listeners = tuple(
        _listener(kind, body) for kind, body in _blocks(raw.get("listener", []), "listener")
    )
    if not listeners:
        raise ConfigError('at least one listener must be specified (listener "tcp" { ... })')

    api_addr = _str(
        env.get("VAULT_API_ADDR") or env.get("VAULT_REDIRECT_ADDR") or raw.get("api_addr")
        or raw.get("redirect_addr") or "",
        "api_addr",
    )
    if api_addr and "://" not in api_addr:
        raise ConfigError(f"api_addr {api_addr!r} must be a full URL (e.g. https://host:8200)")
    cluster_addr = _str(
        env.get("VAULT_CLUSTER_ADDR") or raw.get("cluster_addr") or "", "cluster_addr"
    )
    mlock = env.get("VAULT_DISABLE_MLOCK") or raw.get("disable_mlock", False)
    ui = parse_bool(env.get("VAULT_UI") or raw.get("ui", False), "ui")  # the web UI at /ui/
    disable_clustering = parse_bool(raw.get("disable_clustering", False), "disable_clustering")
    if disable_clustering and storage.type == "redis":
        raise ConfigError('"disable_clustering" = true is not supported with storage '
                          '"redis": standbys always reach the active node over its cluster '
                          "port; remove it")
    prefixing = parse_bool(raw.get("allow_audit_log_prefixing", True),
                           "allow_audit_log_prefixing")
    default_ttl, max_ttl = _lease_ttls(raw)
    telemetry = _telemetry(raw)
    if telemetry.unauthenticated_metrics_access:
        listeners = tuple(replace(lst, unauthenticated_metrics_access=True) for lst in listeners)
    return ServerConfig(
        listeners=listeners,
        storage=storage,
        api_addr=api_addr,
        cluster_addr=cluster_addr,
        cluster_name=_str(raw.get("cluster_name", ""), "cluster_name"),
        disable_mlock=parse_bool(mlock, "disable_mlock"),
        ui=ui,
        **_logging(raw),
        default_lease_ttl=default_ttl,
        max_lease_ttl=max_ttl,
        pid_file=_str(raw.get("pid_file", ""), "pid_file").strip(),
        audit=_audit_devices(raw.get("audit"), prefixing),
        unsafe_allow_api_audit_creation=parse_bool(
            raw.get("unsafe_allow_api_audit_creation", True), "unsafe_allow_api_audit_creation"),
        allow_audit_log_prefixing=prefixing,
        default_max_request_duration=parse_duration(
            raw.get("default_max_request_duration", 90), "default_max_request_duration"
        ),
        disable_clustering=disable_clustering,
        disable_performance_standby=parse_bool(
            raw.get("disable_performance_standby", False), "disable_performance_standby"
        ),
        performance_standby_max_staleness=_max_staleness(
            raw.get("performance_standby_max_staleness", 5.0)),
        workers=_workers(raw.get("workers"), storage.type),
        telemetry=telemetry,
        raw=raw,
        warnings=tuple(warnings),
    )


def resolve_logging(config: ServerConfig, *, level: str | None = None, fmt: str | None = None,
                    log_file: str | None = None, rotate_duration: str | None = None,
                    rotate_bytes: int | None = None, rotate_max_files: int | None = None,
                    env: Mapping[str, str] | None = None) -> ServerConfig:
    """The config with its logging settings as Vault resolves them: the `-log-*` flag, else
    VAULT_LOG_LEVEL / VAULT_LOG_FORMAT (OpenBao's BAO_*), else the file, else the default.
    ConfigError on an invalid value."""
    from dataclasses import replace

    from transit import logs

    env = os.environ if env is None else env
    out: dict[str, Any] = {}
    env_level = env.get("VAULT_LOG_LEVEL") or env.get("BAO_LOG_LEVEL")
    if level is not None:
        out["log_level"] = logs.parse_level(level, "-log-level")
    elif env_level:
        out["log_level"] = logs.parse_level(env_level, "VAULT_LOG_LEVEL")
    env_format = env.get("VAULT_LOG_FORMAT") or env.get("BAO_LOG_FORMAT")
    if fmt is not None:
        out["log_format"] = logs.parse_format(fmt, "-log-format")
    elif env_format:
        out["log_format"] = logs.parse_format(env_format, "VAULT_LOG_FORMAT")
    if log_file is not None:
        out["log_file"] = log_file.strip()
    if rotate_duration is not None:
        out["log_rotate_duration"] = parse_duration(rotate_duration, "-log-rotate-duration")
        if out["log_rotate_duration"] < 0:
            raise ConfigError("-log-rotate-duration must not be negative")
    if rotate_bytes is not None:
        if rotate_bytes < 0:
            raise ConfigError("-log-rotate-bytes must not be negative")
        out["log_rotate_bytes"] = rotate_bytes
    if rotate_max_files is not None:
        if rotate_max_files < -1:
            raise ConfigError("-log-rotate-max-files: 0 keeps every rotated file, -1 none")
        out["log_rotate_max_files"] = rotate_max_files
    return replace(config, **out) if out else config


def parse_config(
    text: str, fmt: str = "hcl", *, source: str = "<string>", env: Mapping[str, str] | None = None
) -> ServerConfig:
    """Parse config text. `fmt` is "hcl" or "json"; text starting with "{" is always JSON.

    `env` defaults to os.environ (VAULT_API_ADDR (or VAULT_REDIRECT_ADDR), VAULT_CLUSTER_ADDR,
    VAULT_DISABLE_MLOCK and VAULT_UI override the file; VAULT_EXPERIMENTS and
    VAULT_SEAL_TYPE are refused). The logging variables are applied by `resolve_logging`.
    """
    if fmt not in ("hcl", "json"):
        raise ConfigError(f'unknown config format "{fmt}"')
    if fmt == "json" or text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"error parsing config {source}: {exc}") from None
    else:
        try:
            raw = hcl.loads(text)
        except hcl.HCLError as exc:
            raise ConfigError(f"error parsing config {source}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {source}: top level must be an object")
    return _build(raw, source, os.environ if env is None else env)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> ServerConfig:
    """Read and parse a config file; `.json` files (or JSON content) are parsed as JSON."""
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"error loading configuration from {p}: {exc}") from None
    fmt = "json" if p.endswith(".json") else "hcl"
    from dataclasses import replace

    return replace(parse_config(text, fmt, source=p, env=env), path=p)
