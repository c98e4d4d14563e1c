"""Server configuration: Vault's HCL (or JSON) config file -> frozen dataclasses.

Layer L0: imports only the stdlib and the other L0 modules (errors, gocompat, hcl, and the
stdlib-only api.jsonlimits and api.tls). Values are
lenient the way Vault's are: booleans accept true/"true"/1, durations accept "90s"/"1h30m"/plain
seconds. Every problem is a ConfigError with a readable message, never a parser traceback.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from transit import hcl
from transit.api import tls
from transit.api.jsonlimits import (
    DEFAULT_MAX_JSON_ARRAY_ELEMENT_COUNT,
    DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_JSON_OBJECT_ENTRY_COUNT,
    DEFAULT_MAX_JSON_STRING_VALUE_LENGTH,
)
from transit.errors import ConfigError
from transit.gocompat import GO_FALSE, GO_TRUE, sum_duration

DEFAULT_MAX_REQUEST_SIZE = 32 * 1024 * 1024
JSON_LIMIT_DEFAULTS = {
    "max_json_depth": DEFAULT_MAX_JSON_DEPTH,
    "max_json_string_value_length": DEFAULT_MAX_JSON_STRING_VALUE_LENGTH,
    "max_json_object_entry_count": DEFAULT_MAX_JSON_OBJECT_ENTRY_COUNT,
    "max_json_array_element_count": DEFAULT_MAX_JSON_ARRAY_ELEMENT_COUNT,
}
TLS_VERSIONS = ("tls10", "tls11", "tls12", "tls13")
HTTP_TIMEOUT_DEFAULTS = {  # Vault's listener defaults, in seconds
    "http_read_header_timeout": 10.0,
    "http_read_timeout": 30.0,
    "http_write_timeout": 0.0,
    "http_idle_timeout": 300.0,
}
# The `tls_*` listener keys transit implements. Other listener keys it does not know are
# ignored, as before, unless they match _REFUSED_LISTENER_PREFIXES or _REFUSED_LISTENER_KEYS.
_TLS_LISTENER_KEYS = frozenset(
    """
    tls_disable tls_cert_file tls_key_file tls_min_version tls_max_version tls_cipher_suites
    tls_prefer_server_cipher_suites tls_require_and_verify_client_cert tls_client_ca_file
    tls_disable_client_certs
    """.split()
)
# Security settings transit does not implement: refused at start-up rather than ignored
# (with any `tls_` key not in _TLS_LISTENER_KEYS).
_REFUSED_LISTENER_PREFIXES = (
    "tls_", "proxy_protocol_", "x_forwarded_for_", "unauthenticated_", "disable_unauthed_",
    "enable_unauthenticated_", "redact_",
)
_REFUSED_LISTENER_KEYS = frozenset(
    {"require_request_header", "disable_replication_status_endpoints", "chroot_namespace"})
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
AUDIT_DEVICE_TYPES = ("file",)

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
# Go's number grammar ("1.", ".5") and Vault's extra "d" unit.
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")


@dataclass(frozen=True)
class ListenerConfig:
    type: str = "tcp"
    address: str = "127.0.0.1:8200"
    cluster_address: str = ""  # filled in by the parser: same host as `address`, port + 1
    tls_disable: bool = False
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_min_version: str = "tls12"
    tls_max_version: str = "tls13"
    tls_cipher_suites: tuple[str, ...] = ()  # Go names; () keeps OpenSSL's defaults
    tls_prefer_server_cipher_suites: bool = False  # deprecated in Vault (Go ignores it)
    tls_require_and_verify_client_cert: bool = False
    tls_client_ca_file: str = ""
    tls_disable_client_certs: bool = False
    # seconds (Vault's keys; 0 or unset keeps these defaults, as in Vault)
    http_read_header_timeout: float = HTTP_TIMEOUT_DEFAULTS["http_read_header_timeout"]
    http_read_timeout: float = HTTP_TIMEOUT_DEFAULTS["http_read_timeout"]
    http_write_timeout: float = HTTP_TIMEOUT_DEFAULTS["http_write_timeout"]  # 0: none
    http_idle_timeout: float = HTTP_TIMEOUT_DEFAULTS["http_idle_timeout"]
    max_request_duration: float = 0.0  # seconds; 0: the server's default_max_request_duration
    max_connections: int = 0  # ours; 0: as many as RLIMIT_NOFILE allows (api/limits.py)
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE  # bytes; <0 means unlimited (Vault)
    # Vault's JSON limits on request bodies (0 or unset: Vault's default)
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    max_json_string_value_length: int = DEFAULT_MAX_JSON_STRING_VALUE_LENGTH
    max_json_object_entry_count: int = DEFAULT_MAX_JSON_OBJECT_ENTRY_COUNT
    max_json_array_element_count: int = DEFAULT_MAX_JSON_ARRAY_ELEMENT_COUNT
    # `telemetry { unauthenticated_metrics_access = true }`: sys/metrics without a token
    unauthenticated_metrics_access: bool = False
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class TelemetryConfig:
    """The server's `telemetry` stanza: the keys transit implements (others are refused)."""

    # seconds; 0 disables ?format=prometheus. Vault's "24h" default applies only when the
    # stanza is present (no stanza at all: prometheus is not enabled), as in Vault.
    prometheus_retention_time: float = 0.0
    disable_hostname: bool = False
    # ours at this level: applies to every listener (Vault has it in the listener's block)
    unauthenticated_metrics_access: bool = False


@dataclass(frozen=True)
class StorageConfig:
    type: str
    options: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class AuditDeviceConfig:
    """An `audit "<type>" "<path>" { ... }` stanza (OpenBao's declarative audit devices)."""

    type: str
    path: str  # the device name with a trailing "/", as in sys/audit
    description: str = ""
    local: bool = False
    options: dict[str, str] = field(default_factory=dict, hash=False)


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


# -- lenient scalars (Vault's parseutil) ---------------------------------------------------


def parse_bool(value: Any, name: str = "value") -> bool:
    """Vault's ParseBool: true/false, ints (non-zero is true), "true"/"1"/"t"/... strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        v = value.strip().lower()  # any case: "TRUE", "tRuE"
        if v in GO_TRUE:
            return True
        if v in GO_FALSE:
            return False
    raise ConfigError(f"{name}: invalid boolean {value!r}")


def parse_duration(value: Any, name: str = "value") -> float:
    """Vault's ParseDurationSecond: ints/plain numbers are seconds, else Go durations (+ "d")."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: invalid duration {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        v = value.strip()
        if _NUMBER.fullmatch(v):
            return float(v)
        seconds = sum_duration(v.lstrip("+-"), _DURATION_PART)
        if seconds is not None:
            return -seconds if v.startswith("-") else seconds
    raise ConfigError(f"{name}: invalid duration {value!r}")


def _max_staleness(value: Any) -> float:
    name = "performance_standby_max_staleness"
    seconds = parse_duration(value, name)
    if not 0.1 <= seconds <= 3600:
        raise ConfigError(f"{name}: must be between 100ms and 1h, got {value!r}")
    return seconds


def _parse_int(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{name}: invalid integer {value!r}")


def _str(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{name}: expected a string, got {value!r}")


# -- parsing -------------------------------------------------------------------------------


def _blocks(value: Any, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Labelled stanzas as (label, body), from HCL's or JSON's shapes of `kind "label" {}`."""
    if isinstance(value, list):
        return [b for item in value for b in _blocks(item, kind)]
    if not isinstance(value, dict):
        raise ConfigError(f'{kind}: expected a block like {kind} "<type>" {{ ... }}')
    out: list[tuple[str, dict[str, Any]]] = []
    for label, body in value.items():
        bodies = body if isinstance(body, list) else [body]
        for b in bodies:
            if not isinstance(b, dict):
                raise ConfigError(f'{kind} "{label}": expected a block, got {b!r}')
            out.append((str(label), b))
    return out


def _storage(raw: dict[str, Any], keys: tuple[str, ...]) -> StorageConfig | None:
    found = [b for k in keys if k in raw for b in _blocks(raw[k], k)]
    if not found:
        return None
    if len(found) > 1:
        raise ConfigError(f"only one '{keys[0]}' block is permitted")
    kind, body = found[0]
    # Vault decodes storage options into map[string]string.
    options = {
        k: (str(v).lower() if isinstance(v, bool) else str(v))
        if isinstance(v, str | int | float)
        else v
        for k, v in body.items()
    }
    return StorageConfig(type=kind, options=options)


def split_host_port(address: str) -> tuple[str, int]:
    """'127.0.0.1:8200' / '[::1]:8200' / ':8200' -> (host, port): the listener and cluster
    addresses' one splitter. Brackets are dropped, an empty host is "0.0.0.0"; ValueError
    when the port is not a number."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def _cluster_address(address: str) -> str:
    """The default cluster address: the API address's port + 1 (host kept as written)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f'listener address "{address}": expected host:port')
    return f"{host}:{int(port) + 1}"


def _refuse_unsupported(body: dict[str, Any], where: str) -> None:
    for key in body:
        if key in _TLS_LISTENER_KEYS:
            continue
        if key in _REFUSED_LISTENER_KEYS or key.startswith(_REFUSED_LISTENER_PREFIXES):
            raise ConfigError(
                f'{where}: "{key}" is not supported by transit; it is a security setting, '
                "so it is refused rather than ignored (remove it)")


def _tls_version(body: dict[str, Any], name: str, default: str, where: str) -> str:
    version = _str(body.get(name, default), f"{where} {name}")
    if version not in TLS_VERSIONS:
        raise ConfigError(f'{where}: invalid {name} "{version}" '
                          f"(one of {', '.join(TLS_VERSIONS)})")
    return version


def _listener_tls(body: dict[str, Any], where: str) -> dict[str, Any]:
    """The TLS keys past tls_disable and the certificate pair, validated (their files are
    read at start-up, transit/api/tls.py)."""
    min_version = _tls_version(body, "tls_min_version", "tls12", where)
    max_version = _tls_version(body, "tls_max_version", "tls13", where)
    if TLS_VERSIONS.index(max_version) < TLS_VERSIONS.index(min_version):
        raise ConfigError(f'{where}: tls_max_version "{max_version}" is lower than '
                          f'tls_min_version "{min_version}"')
    try:
        suites = tls.parse_cipher_suites(
            _str(body.get("tls_cipher_suites", ""), f"{where} tls_cipher_suites"))
    except ValueError as exc:
        raise ConfigError(f"{where} tls_cipher_suites: {exc}") from None
    if suites and min_version != "tls13" and not any(s in tls.GO_CIPHER_SUITES for s in suites):
        raise ConfigError(f"{where}: tls_cipher_suites names only TLS 1.3 suites, which are "
                          "not configurable; name TLS 1.2 suites or set tls_min_version "
                          '= "tls13"')
    flags = {name: parse_bool(body.get(name, False), f"{where} {name}") for name in (
        "tls_prefer_server_cipher_suites", "tls_require_and_verify_client_cert",
        "tls_disable_client_certs")}
    if flags["tls_require_and_verify_client_cert"] and flags["tls_disable_client_certs"]:
        raise ConfigError(f"{where}: 'tls_disable_client_certs' and "
                          "'tls_require_and_verify_client_cert' are mutually exclusive")
    ca = _str(body.get("tls_client_ca_file", ""), f"{where} tls_client_ca_file")
    if flags["tls_require_and_verify_client_cert"] and not ca:
        raise ConfigError(f"{where}: tls_require_and_verify_client_cert needs "
                          "tls_client_ca_file (the CA that signs client certificates)")
    return {"tls_min_version": min_version, "tls_max_version": max_version,
            "tls_cipher_suites": suites, "tls_client_ca_file": ca, **flags}


def _listener_durations(body: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, default in HTTP_TIMEOUT_DEFAULTS.items():
        seconds = parse_duration(body.get(name, 0), f"{where} {name}")
        out[name] = seconds if seconds > 0 else default  # Vault: only > 0 overrides
    duration = parse_duration(body.get("max_request_duration", 0),
                              f"{where} max_request_duration")
    out["max_request_duration"] = max(0.0, duration)
    conns = _parse_int(body.get("max_connections", 0), f"{where} max_connections")
    if conns < 0:
        raise ConfigError(f"{where} max_connections: must be a positive integer "
                          "(0: as many as the file-descriptor limit allows)")
    out["max_connections"] = conns
    return out


TELEMETRY_KEYS = ("prometheus_retention_time", "disable_hostname",
                  "unauthenticated_metrics_access")
_LISTENER_TELEMETRY_KEYS = ("unauthenticated_metrics_access",)


def _telemetry_body(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any] | None:
    """The body of a `telemetry { ... }` block (HCL gives a list of one), or None; a key
    transit does not implement stops the server rather than being ignored."""
    if value is None:
        return None
    bodies = value if isinstance(value, list) else [value]
    if len(bodies) != 1 or not isinstance(bodies[0], dict):
        raise ConfigError(f"{where}: expected one block like telemetry {{ ... }}")
    body = bodies[0]
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: {', '.join(unknown)} not supported by transit (it implements "
            f"{', '.join(allowed)}); remove it")
    return body


def _telemetry(raw: dict[str, Any]) -> TelemetryConfig:
    body = _telemetry_body(raw.get("telemetry"), "telemetry", TELEMETRY_KEYS)
    if body is None:
        return TelemetryConfig()
    retention = parse_duration(body.get("prometheus_retention_time", "24h"),
                               "telemetry prometheus_retention_time")
    if retention < 0:
        raise ConfigError("telemetry prometheus_retention_time must not be negative")
    return TelemetryConfig(
        prometheus_retention_time=retention,
        disable_hostname=parse_bool(body.get("disable_hostname", False),
                                    "telemetry disable_hostname"),
        unauthenticated_metrics_access=parse_bool(
            body.get("unauthenticated_metrics_access", False),
            "telemetry unauthenticated_metrics_access"),
    )


def _listener(kind: str, body: dict[str, Any]) -> ListenerConfig:
    if kind != "tcp":
        raise ConfigError(f'unsupported listener type "{kind}" (only "tcp")')
    where = f'listener "{kind}"'
    _refuse_unsupported(body, where)
    address = _str(body.get("address", "127.0.0.1:8200"), f"{where} address")
    cluster = _str(body.get("cluster_address", ""), f"{where} cluster_address")
    tls_disable = parse_bool(body.get("tls_disable", False), f"{where} tls_disable")
    cert = _str(body.get("tls_cert_file", ""), f"{where} tls_cert_file")
    key = _str(body.get("tls_key_file", ""), f"{where} tls_key_file")
    tls_keys = _listener_tls(body, where)
    if not tls_disable and not (cert and key):
        raise ConfigError(
            f"{where} on {address}: TLS is enabled (tls_disable is not set), "
            "so tls_cert_file and tls_key_file are required"
        )
    size = body.get("max_request_size", 0)
    max_size = _parse_int(size, f"{where} max_request_size")
    json_limits = {}
    for name, default in JSON_LIMIT_DEFAULTS.items():
        n = _parse_int(body.get(name, 0), f"{where} {name}")
        if n < 0:
            raise ConfigError(f"{where} {name}: must be a positive integer (0: the default)")
        json_limits[name] = n or default
    return ListenerConfig(
        type=kind,
        address=address,
        cluster_address=cluster or _cluster_address(address),
        tls_disable=tls_disable,
        tls_cert_file=cert,
        tls_key_file=key,
        **tls_keys,
        **_listener_durations(body, where),
        max_request_size=max_size if max_size != 0 else DEFAULT_MAX_REQUEST_SIZE,
        **json_limits,
        unauthenticated_metrics_access=_listener_metrics_access(body, where),
        raw=body,
    )


def _listener_metrics_access(body: dict[str, Any], where: str) -> bool:
    tel = _telemetry_body(body.get("telemetry"), f"{where} telemetry", _LISTENER_TELEMETRY_KEYS)
    if tel is None:
        return False
    return parse_bool(tel.get("unauthenticated_metrics_access", False),
                      f"{where} telemetry unauthenticated_metrics_access")


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


def _options(value: Any, where: str) -> dict[str, str]:
    """An audit stanza's `options`: string to string, as over the API (bools as
    "true"/"false", numbers as their text)."""
    blocks = value if isinstance(value, list) else [value]
    out: dict[str, str] = {}
    for block in blocks:
        if not isinstance(block, dict):
            raise ConfigError(f"{where}: options must be a block of key = value pairs")
        for key, item in block.items():
            if isinstance(item, bool):
                out[str(key)] = "true" if item else "false"
            elif isinstance(item, str | int | float):
                out[str(key)] = str(item)
            else:
                raise ConfigError(f'{where}: option "{key}" must be a string, got {item!r}')
    return out


def _audit_devices(value: Any, prefixing: bool) -> tuple[AuditDeviceConfig, ...]:
    """`audit "<type>" "<path>" { description, local, options { ... } }` stanzas, in order."""
    if value is None:
        return ()
    out: list[AuditDeviceConfig] = []
    for kind, named in _blocks(value, "audit"):
        if not named or not all(isinstance(b, dict | list) for b in named.values()):
            raise ConfigError(f'audit "{kind}": expected audit "{kind}" "<path>" {{ ... }}')
        for name, body in _blocks(named, f'audit "{kind}"'):
            where = f'audit "{kind}" "{name}"'
            if name in ("options", "description", "local"):
                raise ConfigError(f'audit "{kind}": expected two labels, the type and the '
                                  f'path: audit "{kind}" "<path>" {{ ... }}')
            if kind not in AUDIT_DEVICE_TYPES:
                raise ConfigError(f'{where}: unsupported audit device type "{kind}" '
                                  f"(only {', '.join(AUDIT_DEVICE_TYPES)})")
            path = name.strip("/")
            if not path:
                raise ConfigError(f"{where}: the device path must not be empty")
            unknown = set(body) - {"description", "local", "options"}
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                                  "(description, local, options)")
            options = _options(body.get("options", {}), where)
            if not (options.get("file_path") or options.get("path")):
                raise ConfigError(f'{where}: options must set "file_path"')
            if options.get("prefix") and not prefixing:
                raise ConfigError(f'{where}: the "prefix" option needs '
                                  "allow_audit_log_prefixing = true")
            device = AuditDeviceConfig(
                type=kind, path=path + "/",
                description=_str(body.get("description", ""), f"{where} description"),
                local=parse_bool(body.get("local", False), f"{where} local"),
                options=options,
            )
            for other in out:
                if other.path.startswith(device.path) or device.path.startswith(other.path):
                    raise ConfigError(f'{where}: path "{device.path}" overlaps the audit '
                                      f'device "{other.path}" declared before it')
            out.append(device)
    return tuple(out)


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
    ui = parse_bool(env.get("VAULT_UI") or raw.get("ui", False), "ui")
    if ui:
        warnings.append("ui = true: transit has no web UI (yet); the setting is ignored")
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
