"""`sys/step-down` and `sys/ha-status` (spec ha-and-sys-api §1.6, §4.13)."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

from transit import __version__
from transit.engines.system.ports import NodeControl
from transit.errors import ForwardToActive
from transit.fields import FieldData
from transit.gocompat import isoformat_z
from transit.logical import Request, Response

ECHO_STALE_SECONDS = 30.0  # standbys silent for longer drop out of the list


async def step_down(node: NodeControl, req: Request, d: FieldData) -> None:
    """The active node gives up the lock and sits out a cooldown; a no-op without HA."""
    ha = node.ha
    if ha is not None:
        # This request runs on the node being stepped down: don't wait for our own teardown.
        await ha.step_down(wait=False)
    return None


def _rfc3339(ts: float) -> str:
    return isoformat_z(dt.datetime.fromtimestamp(ts, dt.UTC))


async def ha_status(node: NodeControl, req: Request, d: FieldData) -> Response:
    """Every node of the cluster, as the active node knows them (their echoes): asked of a
    performance standby, the request goes to the active node, as in Vault."""
    if node.ha is not None and not node.ha.is_active:
        raise ForwardToActive("sys/ha-status is answered by the active node")
    nodes: list[dict[str, Any]] = [{
        "hostname": socket.gethostname(), "api_address": node.api_addr,
        "cluster_address": node.cluster_addr, "active_node": True, "last_echo": None,
        "version": __version__, "node_id": node.node_id,
    }]
    now = dt.datetime.now(dt.UTC).timestamp()
    for node_id, echo in sorted(node.echoes.items()):
        if now - echo["last_echo"] > ECHO_STALE_SECONDS:
            continue
        nodes.append({
            "hostname": echo["hostname"], "api_address": echo["api_address"],
            "cluster_address": echo["cluster_address"], "active_node": False,
            "last_echo": _rfc3339(echo["last_echo"]), "version": __version__,
            "node_id": node_id,
            # ours: a standby that cannot serve as a performance standby says why
            "performance_standby": echo.get("performance_standby", False),
            "standby_problem": echo.get("standby_problem", ""),
        })
    return Response(data={"nodes": nodes}, mirror_data=True)
