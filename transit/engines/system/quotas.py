"""`sys/quotas/rate-limit/<name>` and `sys/quotas/config` (spec operations-api §7; Vault's
vault/logical_system_quotas.go). The rules and their matching live in `transit.quotas`,
enforcement in `transit.api.quota_gate`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from transit.errors import NoHandler, UserError
from transit.fields import (
    MAX_DURATION_SECONDS,
    Field,
    FieldData,
    FieldType,
    parse_duration,
)
from transit.logical import Request, Response
from transit.quotas import QuotaConfig, RateLimitQuota

if TYPE_CHECKING:
    from transit.engines.system.ports import NodeControl

RATE_LIMIT_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, ""),
    "type": Field(FieldType.STRING, ""),
    "path": Field(FieldType.STRING, ""),
    "role": Field(FieldType.STRING, ""),
    "rate": Field(FieldType.ANY, None),
    "interval": Field(FieldType.ANY, 0),  # signed durations: Vault checks the sign itself
    "block_interval": Field(FieldType.ANY, 0),
    "inheritable": Field(FieldType.BOOL, None),
}
CONFIG_FIELDS: dict[str, Field] = {
    "enable_rate_limit_audit_logging": Field(FieldType.BOOL, False),
    "enable_rate_limit_response_headers": Field(FieldType.BOOL, False),
    "rate_limit_exempt_paths": Field(FieldType.SLICE, []),
}


def _rate(value: Any) -> float:
    if isinstance(value, bool):
        raise UserError("'rate' is invalid")
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise UserError("'rate' is invalid") from None
    if not math.isfinite(rate) or rate <= 0 or rate > 2**53:
        raise UserError("'rate' is invalid")
    return rate


def _duration(value: Any, name: str) -> int:
    try:
        return parse_duration(value)
    except ValueError:
        raise UserError(f"'{name}' is invalid") from None


def _sanitize(path: str) -> str:
    """Vault's sanitizePath: no leading "/", a trailing one."""
    path = path.lstrip("/")
    return path if path.endswith("/") else path + "/"


async def write_rate_limit(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    name = req.params.get("name", "").strip()
    if not name:
        raise UserError("'name' is invalid")
    rate = _rate(d.get("rate"))
    interval = _duration(d.get("interval"), "interval") or 1
    block = _duration(d.get("block_interval"), "block")
    if interval < 0 or interval > MAX_DURATION_SECONDS:
        raise UserError("'interval' is invalid")
    if block < 0 or block > MAX_DURATION_SECONDS:
        raise UserError("'block' is invalid")
    role = d.get("role")
    path = _sanitize(d.get("path"))
    mount_path = suffix = ""
    if path != "/":
        try:
            _, inner, _, mount_path, _, _ = node.route(path)
        except NoHandler:
            raise UserError(f'invalid mount path "{path}"') from None
        suffix = inner.rstrip("/")
    if role and not mount_path.startswith("auth/"):
        raise UserError("role can only be set for auth mounts")
    inheritable = d.get("inheritable")
    if inheritable is None:
        inheritable = mount_path == ""  # the global rule is inheritable by default
    quota = RateLimitQuota(name=name, mount_path=mount_path, path_suffix=suffix, rate=rate,
                           interval=int(interval), block_interval=int(block), role=role,
                           inheritable=bool(inheritable))
    clash = await node.quotas.put_rule(quota)
    if clash is not None:
        raise UserError(f'quota rule with similar properties exists under the name "{clash.name}"')
    return None


async def read_rate_limit(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    quota = node.quotas.table.rules.get(req.params.get("name", "").strip())
    return Response(data=quota.describe()) if quota is not None else None


async def list_rate_limits(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    names = sorted(node.quotas.table.rules)
    return Response(data={"keys": names}) if names else None


async def delete_rate_limit(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    await node.quotas.delete_rule(req.params.get("name", "").strip())
    return None


async def read_config(node: NodeControl, req: Request, d: FieldData) -> Response:
    return Response(data=node.quotas.table.config.describe())


async def write_config(node: NodeControl, req: Request, d: FieldData) -> Response | None:
    """Replaces all three settings (an omitted list becomes empty), as Vault does."""
    paths = d.get("rate_limit_exempt_paths")
    if isinstance(paths, str):
        paths = [p for p in paths.split(",") if p]
    if not all(isinstance(p, str) for p in paths):
        raise UserError("'rate_limit_exempt_paths' must be a list of strings")
    await node.quotas.set_config(QuotaConfig(
        bool(d.get("enable_rate_limit_audit_logging")),
        bool(d.get("enable_rate_limit_response_headers")),
        tuple(p.strip().lstrip("/") for p in paths if p.strip()),
    ))
    return None
