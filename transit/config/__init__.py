"""Server configuration: Vault's HCL (or JSON) config file -> frozen dataclasses, one per stanza.

Layer L0: imports only the stdlib and the other L0 modules (errors, gocompat, hcl, and the
stdlib-only api.jsonlimits and api.tls). Values are
lenient the way Vault's are: booleans accept true/"true"/1, durations accept "90s"/"1h30m"/plain
seconds. Every problem is a ConfigError with a readable message, never a parser traceback.

    values.py        the lenient scalars, the labelled-stanza reader, the host:port splitter
    listener.py      `listener "tcp"`: ListenerConfig
    stanzas.py       `telemetry`, `storage`, `audit`, `seal`: TelemetryConfig, StorageConfig,
                     AuditDeviceConfig, SealStanza
    serverconfig.py  ServerConfig, the top-level keys, parse_config / load_config and the
                     command line's resolve_logging / resolve_workers

Everything is importable from `transit.config` itself.
"""

from __future__ import annotations

from transit.config.listener import (
    DEFAULT_MAX_REQUEST_SIZE,
    HTTP_TIMEOUT_DEFAULTS,
    JSON_LIMIT_DEFAULTS,
    TLS_VERSIONS,
    ListenerConfig,
)
from transit.config.serverconfig import (
    DEFAULT_LEASE_TTL,
    KNOWN_KEYS,
    NO_OP_KEYS,
    REFUSED_KEYS,
    REFUSED_UNLESS_OFF,
    SUPPORTED_KEYS,
    WORKERS_NEED_REDIS,
    ServerConfig,
    default_workers,
    load_config,
    parse_config,
    resolve_logging,
    resolve_workers,
)
from transit.config.stanzas import (
    AUDIT_DEVICE_TYPES,
    TELEMETRY_KEYS,
    AuditDeviceConfig,
    SealStanza,
    StorageConfig,
    TelemetryConfig,
    seal_stanza,
)
from transit.config.values import (
    parse_bool,
    parse_duration,
    split_host_port,
)

__all__ = [
    "AUDIT_DEVICE_TYPES",
    "AuditDeviceConfig",
    "DEFAULT_LEASE_TTL",
    "DEFAULT_MAX_REQUEST_SIZE",
    "HTTP_TIMEOUT_DEFAULTS",
    "JSON_LIMIT_DEFAULTS",
    "KNOWN_KEYS",
    "ListenerConfig",
    "NO_OP_KEYS",
    "REFUSED_KEYS",
    "REFUSED_UNLESS_OFF",
    "SUPPORTED_KEYS",
    "SealStanza",
    "ServerConfig",
    "StorageConfig",
    "TELEMETRY_KEYS",
    "TLS_VERSIONS",
    "TelemetryConfig",
    "WORKERS_NEED_REDIS",
    "default_workers",
    "load_config",
    "parse_bool",
    "parse_config",
    "parse_duration",
    "resolve_logging",
    "resolve_workers",
    "seal_stanza",
    "split_host_port",
]
