"""Unauthenticated raw endpoints: `sys/health`, `sys/seal-status`, `sys/leader`, `sys/init`,
`sys/unseal` (spec ha-and-sys-api §4.1-4.5), and those of `transit/api/operator.py`
(`sys/rekey/*`, `sys/generate-root/*`).

Every handler is ``async def handler(core, method, query, body) -> (status, body bytes)``:
`method` is the HTTP verb, `query` the first value of each query parameter, `body` the decoded
JSON object ({} for GET/HEAD or an empty body). Errors are raised as `transit.errors`
exceptions (UserError -> 400); the app renders them. `STATUS_HANDLERS` maps the path (no
`/v1/`, no trailing slash) to the handler.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from transit.api.wire import error_body
from transit.engines.system import operator
from transit.engines.system.rawjson import bool_field as _bool
from transit.engines.system.rawjson import decode_share
from transit.engines.system.rawjson import fields as _fields
from transit.engines.system.rawjson import int_field as _int
from transit.engines.system.rawjson import str_field as _str
from transit.engines.system.rawjson import strings_field as _strings
from transit.errors import StorageError, UserError
from transit.fields import parse_bool, parse_int
from transit.gocompat import isoformat_z

if TYPE_CHECKING:
    from transit.core import Core

StatusHandler = Callable[["Core", str, dict[str, str], dict[str, Any]], Awaitable[tuple[int, bytes]]]

_CODE_DEFAULTS = {
    "activecode": 200, "standbycode": 429, "drsecondarycode": 472,
    "performancestandbycode": 473, "sealedcode": 503, "uninitcode": 501,
    "haunhealthycode": 474, "removedcode": 530,
}
_NOT_ALLOWED = (405, error_body([]))


async def health(
    core: Core, method: str, query: dict[str, str], body: dict[str, Any]
) -> tuple[int, bytes]:
    if method not in ("GET", "HEAD"):
        return _NOT_ALLOWED
    try:
        codes = {k: parse_int(query[k]) if k in query else v for k, v in _CODE_DEFAULTS.items()}
        standbyok = parse_bool(query.get("standbyok", "false") or "false")
        perfstandbyok = parse_bool(query.get("perfstandbyok", "false") or "false")
    except ValueError:
        return 400, error_body([])
    unreachable = ""
    try:
        seal = await core.seal.status()
        initialized, sealed = seal["initialized"], seal["sealed"]
    except StorageError as exc:  # storage away: sealed as far as anyone can tell (503)
        unreachable = f"storage unreachable: {exc}"
        initialized, sealed = False, True
    # Set by the HA layer; a single node is never a standby.
    standby = bool(getattr(core, "standby", False))
    perf_standby = bool(getattr(core, "perf_standby", False))
    if unreachable:
        code = codes["sealedcode"]
    elif not initialized:
        code = codes["uninitcode"]
    elif sealed:
        code = codes["sealedcode"]
    elif perf_standby:
        code = codes["activecode"] if perfstandbyok else codes["performancestandbycode"]
    elif standby:
        code = codes["activecode"] if standbyok else codes["standbycode"]
    else:
        code = codes["activecode"]
    out: dict[str, Any] = {
        "initialized": initialized, "sealed": sealed,
        "standby": standby or sealed or not initialized,
        "performance_standby": perf_standby,
        "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
        "server_time_utc": int(time.time()), "version": core.cluster.version,
        "enterprise": False,
    }
    if initialized and not sealed:
        out["cluster_name"] = core.cluster.name
        out["cluster_id"] = core.cluster.id
    out.update(echo_duration_ms=0, clock_skew_ms=0, replication_primary_canary_age_ms=0)
    problem = unreachable or getattr(core, "serving_problem", "")
    if problem and (not sealed or unreachable or getattr(core, "storage_problem", "")):
        out["standby_problem"] = problem  # (not Vault's) why the node is not serving
    return code, orjson.dumps(out)


async def _seal_status_body(core: Core) -> bytes:
    seal = await core.seal.status()
    out: dict[str, Any] = {
        "type": seal["type"], "initialized": seal["initialized"], "sealed": seal["sealed"],
        "t": seal["t"], "n": seal["n"], "progress": seal["progress"], "nonce": seal["nonce"],
        "version": core.cluster.version, "build_date": "",
        "migration": seal["migration"], "recovery_seal": seal["recovery_seal"],
        "storage_type": core.storage_type,
    }
    if seal["initialized"] and not seal["sealed"]:
        out["cluster_name"] = core.cluster.name
        out["cluster_id"] = core.cluster.id
    return orjson.dumps(out)


async def seal_status(
    core: Core, method: str, query: dict[str, str], body: dict[str, Any]
) -> tuple[int, bytes]:
    if method not in ("GET", "HEAD"):
        return _NOT_ALLOWED
    return 200, await _seal_status_body(core)


async def leader(
    core: Core, method: str, query: dict[str, str], body: dict[str, Any]
) -> tuple[int, bytes]:
    if method not in ("GET", "HEAD"):
        return _NOT_ALLOWED
    out: dict[str, Any] = {
        "ha_enabled": False, "is_self": False, "active_time": "0001-01-01T00:00:00Z",
        "leader_address": "", "leader_cluster_address": "", "performance_standby": False,
        "performance_standby_last_remote_wal": 0, "last_wal": 0,
    }
    ha = core.ha
    if ha is not None:
        out["ha_enabled"] = True
        if core.sealed:
            return 503, error_body(["Vault is sealed"])
        record = await ha.leader()
        if record is not None:
            out["leader_address"] = record.api_addr
            out["leader_cluster_address"] = record.cluster_addr
        out["performance_standby"] = bool(getattr(core, "perf_standby", False))
        if ha.is_active:
            out["is_self"] = True
            if ha.active_since is not None:
                out["active_time"] = isoformat_z(ha.active_since)
    return 200, orjson.dumps(out)


# -- sys/init ---------------------------------------------------------------------------


async def init(
    core: Core, method: str, query: dict[str, str], body: dict[str, Any]
) -> tuple[int, bytes]:
    """GET: `{"initialized"}`. PUT/POST: initialise (the node stays sealed under Shamir)."""
    if method in ("GET", "HEAD"):
        return 200, orjson.dumps({"initialized": await core.seal.initialized()})
    if method not in ("PUT", "POST"):
        return _NOT_ALLOWED
    f = _fields(body)
    s = "InitRequest"
    shares, threshold = _int(f, "secret_shares", s), _int(f, "secret_threshold", s)
    pgp_keys = _strings(f, "pgp_keys", s)
    _int(f, "stored_shares", s)
    rec_shares, rec_threshold = _int(f, "recovery_shares", s), _int(f, "recovery_threshold", s)
    rec_pgp_keys = _strings(f, "recovery_pgp_keys", s)
    root_pgp = _str(f, "root_token_pgp_key", s)

    barrier_flags = [n for n, v in (("secret_shares", shares), ("secret_threshold", threshold),
                                    ("pgp_keys", pgp_keys)) if v]
    recovery_flags = [n for n, v in (("recovery_shares", rec_shares),
                                     ("recovery_threshold", rec_threshold),
                                     ("recovery_pgp_keys", rec_pgp_keys)) if v]
    auto = core.seal.auto
    wrong = barrier_flags if auto else recovery_flags
    if wrong:
        raise UserError(
            f"parameters {','.join(wrong)} not applicable to seal type {core.seal.type}"
        )
    if auto:
        shares, threshold, pgp_keys = rec_shares, rec_threshold, rec_pgp_keys
    if pgp_keys and len(pgp_keys) != shares:
        what = "recovery" if auto else "seal"
        raise UserError(
            f"invalid {what} configuration: count mismatch between number of provided "
            "PGP keys and number of shares"
        )
    if pgp_keys or root_pgp:
        raise UserError("PGP encryption of unseal keys and root token is not supported")

    result = dict(await core.initialize(shares, threshold))
    if auto:  # the shares are recovery key shares (Vault's auto-seal init response)
        result["recovery_keys"] = result.get("keys", [])
        result["recovery_keys_base64"] = result.get("keys_base64", [])
        result["keys"], result["keys_base64"] = [], []
    return 200, orjson.dumps(result)


# -- sys/unseal -------------------------------------------------------------------------


async def unseal(
    core: Core, method: str, query: dict[str, str], body: dict[str, Any]
) -> tuple[int, bytes]:
    """Submit one key share (or `reset`); answers the seal-status body."""
    if method not in ("PUT", "POST"):
        return _NOT_ALLOWED
    f = _fields(body)
    s = "UnsealRequest"
    key_text, reset, migrate = _str(f, "key", s), _bool(f, "reset", s), _bool(f, "migrate", s)
    if reset:
        await core.seal.unseal(None, reset=True)
        return 200, await _seal_status_body(core)
    if migrate:
        raise UserError(
            "'migrate' parameter set true in JSON body when not in seal migration mode"
        )
    if not key_text:
        raise UserError("'key' must be specified in request body as JSON, or 'reset' set to true")
    key = decode_share(key_text)
    if await core.seal.unseal(key):
        await core.post_unseal()
    return 200, await _seal_status_body(core)


async def sys_metrics(
    core: Core, method: str, query: dict[str, str], body: dict[str, Any]
) -> tuple[int, bytes]:
    """A marker: `sys/metrics` (operations-api §4) is answered by the app itself, raw, either
    without a token (listener `telemetry { unauthenticated_metrics_access = true }`) or after
    the core's pipeline (token, ACL, audit) has passed the logical read of `sys/metrics`."""
    raise AssertionError("sys/metrics is answered by VaultApp")


async def sys_monitor(
    core: Core, method: str, query: dict[str, str], body: dict[str, Any]
) -> tuple[int, bytes]:
    """A marker: `sys/monitor` (operations-api §5.1) streams from the app once the core's
    pipeline has passed the logical read (transit/monitor.py)."""
    raise AssertionError("sys/monitor is answered by VaultApp")


# Answered by VaultApp itself after the core's pipeline (token, ACL, audit) passed their
# logical read (or, for metrics, without a token on a listener that allows it). Not status
# endpoints: not in STATUS_HANDLERS.
APP_ANSWERED: dict[str, StatusHandler] = {"sys/metrics": sys_metrics, "sys/monitor": sys_monitor}

STATUS_HANDLERS: dict[str, StatusHandler] = {
    "sys/health": health,
    "sys/seal-status": seal_status,
    "sys/leader": leader,
    "sys/init": init,
    "sys/unseal": unseal,
    # sys/rekey/* and sys/generate-root/* (operations-api §1-2); their DELETEs are logical
    # routes (transit/engines/system/rekey.py): the app hands raw handlers GET/PUT/POST only
    **operator.HANDLERS,
}
__all__ = ["APP_ANSWERED", "STATUS_HANDLERS", "decode_share"]
