"""The `listener "tcp" { ... }` stanza: ListenerConfig and its parser (address and cluster
address, TLS, HTTP timeouts, request size and JSON limits, the listener's telemetry block).

Configuration owns the TLS cipher-suite names (transit/config/tls_names.py) and the JSON-limit
defaults; the API (transit/api/tls.py, transit/api/jsonlimits.py) applies them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transit.config import tls_names
from transit.config.stanzas import _LISTENER_TELEMETRY_KEYS, _telemetry_body
from transit.config.values import _parse_int, _str, parse_bool, parse_duration
from transit.errors import ConfigError
from transit.gocompat import is_digits

DEFAULT_MAX_REQUEST_SIZE = 32 * 1024 * 1024
# Vault's listener defaults for the JSON limits (transit/api/jsonlimits.py applies them)
DEFAULT_MAX_JSON_DEPTH = 300
DEFAULT_MAX_JSON_STRING_VALUE_LENGTH = 1024 * 1024
DEFAULT_MAX_JSON_OBJECT_ENTRY_COUNT = 10_000
DEFAULT_MAX_JSON_ARRAY_ELEMENT_COUNT = 10_000
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


def _cluster_address(address: str) -> str:
    """The default cluster address: the API address's port + 1 (host kept as written)."""
    host, sep, port = address.rpartition(":")
    if not sep or not is_digits(port):
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
        suites = tls_names.parse_cipher_suites(
            _str(body.get("tls_cipher_suites", ""), f"{where} tls_cipher_suites"))
    except ValueError as exc:
        raise ConfigError(f"{where} tls_cipher_suites: {exc}") from None
    if suites and min_version != "tls13" and not any(s in tls_names.GO_CIPHER_SUITES for s in suites):
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
    json_limits: dict[str, Any] = {}
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


