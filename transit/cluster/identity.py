"""Who may write: the HA lock *owner* of one running server (DESIGN §4, issue 8 point 4).

A node id names a node to people and to the other nodes: `sys/ha-status`, `sys/leader`, the
advertisement `core/leader/<node id>`, the cluster certificate `fw-<node id>`. It comes from
the configuration, so two processes can be started with the same one (a copied config file, a
restart while the old process still runs). Those are two writers all the same, so the lock
does not name a node id but an **owner**: `<node id>@<instance>`, where the instance is a
random id made once per server start — by the supervisor for all the worker processes of one
node (they legitimately share the role, transit/workers.py), or by the server itself for a
one-process node. Everything that compares lock holders compares owners:

- the lock value is `<owner>:<epoch>` and every fenced write checks it whole;
- Redis connections are named `transit-<owner>`, so `holder_gone(owner)` is about that
  process (its siblings), not about every process that shares the node id;
- a worker follows only a lock held by its own owner;
- a node releases (compare-and-delete) only `<its owner>:<its epoch>`, or a holder whose
  connections are all gone.

Node ids may not contain "@" (nor whitespace or control characters), so the node id of an
owner is everything before its last "@"; an owner without "@" (a bare node id, as tests and
older lock values use) is its own node id.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transit import __version__
from transit.errors import ConfigError

SEPARATOR = "@"


def check_node_id(node_id: str) -> str:
    """`node_id`, or ConfigError when it could not name a node unambiguously."""
    if not node_id:
        raise ConfigError("storage node_id must not be empty")
    if SEPARATOR in node_id:
        raise ConfigError(f"storage node_id {node_id!r} must not contain {SEPARATOR!r} "
                          "(it separates the node id from the instance in the HA lock)")
    if any(c.isspace() or not c.isprintable() for c in node_id):
        raise ConfigError(f"storage node_id {node_id!r} must not contain whitespace or "
                          "control characters")
    return node_id


def configured_node_id(options: Mapping[str, Any]) -> str:
    """The storage stanza's `node_id` (checked), or a fresh random one."""
    value = options.get("node_id")
    if value is None or value == "":
        return str(uuid.uuid4())
    return check_node_id(str(value))


def new_owner(node_id: str) -> str:
    """A lock owner for one start of a server with `node_id`: `<node id>@<12 hex digits>`."""
    return f"{check_node_id(node_id)}{SEPARATOR}{secrets.token_hex(6)}"


def node_of(owner: str) -> str:
    """The node id of a lock owner (the owner itself when it has no instance part)."""
    node, sep, _instance = owner.rpartition(SEPARATOR)
    return node if sep and node else owner


@dataclass
class ClusterInfo:
    """The cluster's name and id, shared by every node (`core/cluster/local/info`): made once
    by the first active node (or `sys/init`), loaded by the others."""

    name: str = field(default_factory=lambda: f"vault-cluster-{secrets.token_hex(4)}")
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = __version__
