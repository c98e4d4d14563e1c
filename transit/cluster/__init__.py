"""High availability: the election loop, the leader advertisement, request forwarding and
the cluster listener (contract: docs/dev/contracts.md §6.2)."""

from transit.cluster.advert import (
    LeaderRecord,
    leader_key,
    make_cluster_cert,
    ssl_client_context,
    ssl_server_context,
    tls_name,
)
from transit.cluster.forward import Forwarder, ForwardingError
from transit.cluster.ha import HAController
from transit.cluster.listener import ClusterListener

__all__ = [
    "ClusterListener",
    "Forwarder",
    "ForwardingError",
    "HAController",
    "LeaderRecord",
    "leader_key",
    "make_cluster_cert",
    "ssl_client_context",
    "ssl_server_context",
    "tls_name",
]
