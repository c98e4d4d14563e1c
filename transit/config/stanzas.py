"""The server configuration's stanzas other than `listener`, each a frozen dataclass:
`telemetry` (TelemetryConfig), `storage`/`backend` (StorageConfig), `audit "<type>" "<path>"`
(AuditDeviceConfig) and `seal "<type>"` (SealStanza: not SealConfig, the name of the
seal configuration stored in `core/seal-config`, transit/seal/stored.py), with their parsers.

StorageConfig.options stays a string map, as Vault decodes it (`map[string]string`): each
backend reads its own keys (transit/storage/factory.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transit.config.values import _blocks, _str, parse_bool, parse_duration
from transit.errors import ConfigError

AUDIT_DEVICE_TYPES = ("file",)


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
class SealStanza:
    """The `seal "<type>" { ... }` stanza (at most one; none means Shamir). transit.seal.static
    reads it (`static_key`): "static" with `current_key`, or "shamir"; other types are refused there."""

    type: str
    options: dict[str, Any] = field(default_factory=dict, hash=False)


def seal_stanza(raw: Mapping[str, Any]) -> SealStanza | None:
    """The `seal` stanza of a config's raw dict, or None; ConfigError for more than one."""
    if "seal" not in raw:
        return None
    blocks = _blocks(raw["seal"], "seal")
    if len(blocks) > 1:
        raise ConfigError("only one seal block is permitted (seal migration is not supported)")
    kind, body = blocks[0]
    return SealStanza(type=kind, options=body)


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


