"""Unauthenticated status endpoints: `sys/health`, `sys/seal-status`, `sys/leader`,
`sys/init` (spec ha-and-sys-api §4.1-4.4). Each returns (status, body)."""

from __future__ import annotations

import time

import orjson

from transit.api.wire import error_body
from transit.core import Core
from transit.engines.fields import parse_bool, parse_int

_CODE_DEFAULTS = {
    "activecode": 200, "standbycode": 429, "drsecondarycode": 472,
    "performancestandbycode": 473, "sealedcode": 503, "uninitcode": 501,
    "haunhealthycode": 474, "removedcode": 530,
}


def health(core: Core, method: str, query: dict[str, str]) -> tuple[int, bytes]:
    try:
        codes = {k: parse_int(query[k]) if k in query else v for k, v in _CODE_DEFAULTS.items()}
        standbyok = parse_bool(query.get("standbyok", "false") or "false")
        perfstandbyok = parse_bool(query.get("perfstandbyok", "false") or "false")
    except ValueError:
        return 400, error_body([])
    standby = False  # single node: never a standby until HA arrives
    perf_standby = False
    if not core.initialized:
        code = codes["uninitcode"]
    elif core.sealed:
        code = codes["sealedcode"]
    elif perf_standby:
        code = codes["activecode"] if perfstandbyok else codes["performancestandbycode"]
    elif standby:
        code = codes["activecode"] if standbyok else codes["standbycode"]
    else:
        code = codes["activecode"]
    body = {
        "initialized": core.initialized, "sealed": core.sealed,
        "standby": standby or core.sealed or not core.initialized,
        "performance_standby": perf_standby,
        "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
        "server_time_utc": int(time.time()), "version": core.cluster.version,
        "enterprise": False, "echo_duration_ms": 0, "clock_skew_ms": 0,
        "replication_primary_canary_age_ms": 0,
    }
    if core.initialized and not core.sealed:
        body["cluster_name"] = core.cluster.name
        body["cluster_id"] = core.cluster.id
    return code, orjson.dumps(body)


def seal_status(core: Core, method: str, query: dict[str, str]) -> tuple[int, bytes]:
    body: dict[str, object] = {
        "type": "shamir", "initialized": core.initialized, "sealed": core.sealed,
        "t": 1 if core.initialized else 0, "n": 1 if core.initialized else 0, "progress": 0,
        "nonce": "", "version": core.cluster.version, "build_date": "",
        "migration": False, "recovery_seal": False, "storage_type": core.storage_type,
    }
    if core.initialized and not core.sealed:
        body["cluster_name"] = core.cluster.name
        body["cluster_id"] = core.cluster.id
    return 200, orjson.dumps(body)


def leader(core: Core, method: str, query: dict[str, str]) -> tuple[int, bytes]:
    body = {
        "ha_enabled": False, "is_self": False, "active_time": "0001-01-01T00:00:00Z",
        "leader_address": "", "leader_cluster_address": "", "performance_standby": False,
        "performance_standby_last_remote_wal": 0,
    }
    return 200, orjson.dumps(body)


def init(core: Core, method: str, query: dict[str, str]) -> tuple[int, bytes]:
    """GET tells whether the node is initialised; initialising arrives with the barrier."""
    if method in ("PUT", "POST") and core.initialized:
        return 400, error_body(["Vault is already initialized"])
    return 200, orjson.dumps({"initialized": core.initialized})
