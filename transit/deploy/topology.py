"""What the HA deployment runs and how its parts reach each other, independent of where.

A `Layout` names every service (Redis servers, Sentinels, transit nodes, HAProxy) with the
host and port the others use to reach it, plus the settings that must be the same in every
deployment: Redis persistence, Sentinel timings, the HAProxy health checks. `compose_layout()`
is the `docker/compose.yml` deployment (service names as hosts, fixed container ports);
`local_layout()` the same topology on 127.0.0.1 with one port per process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SENTINEL_MASTER = "transit"
# Redis as docs/ha.md requires it, on the primary and on every replica (a replica Sentinel
# promotes keeps its own settings): AOF fsynced every second, no RDB snapshots (the AOF is the
# durable copy), never evict a stored entry.
REDIS_PERSISTENCE: tuple[tuple[str, str], ...] = (
    ("appendonly", "yes"),
    ("appendfsync", "everysec"),
    ("save", ""),
    ("maxmemory-policy", "noeviction"),
)
# Health checks (docs/ha.md#load-balancers). Writes: the active node only. Reads and
# encrypt/decrypt: the active node and the performance standbys that serve locally now (a
# standby whose feed or replica link is down answers 429 instead of 473 and forwards
# everything: out of the pool while it cannot serve by itself). A container is healthy when it
# is unsealed at all (standbyok too): a degraded standby is not restarted.
HEALTH_WRITE = "/v1/sys/health"  # 200: active; 429 standby, 473 perf standby, 503 sealed
HEALTH_READ = "/v1/sys/health?perfstandbyok=true"  # 200: active or serving perf standby
HEALTH_UNSEALED = "/v1/sys/health?perfstandbyok=true&standbyok=true"  # 200: any unsealed node


@dataclass(frozen=True)
class Endpoint:
    """A service as the others reach it."""

    name: str  # "redis-1", "sentinel-2", "transit-3"
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Node:
    """A transit node: where it listens and what it advertises."""

    name: str
    listen_host: str
    api_port: int
    advertise_host: str
    read_redis: Endpoint  # the Redis server next to it (`read_address`)

    @property
    def cluster_port(self) -> int:
        return self.api_port + 1

    @property
    def api_addr(self) -> str:
        return f"http://{self.advertise_host}:{self.api_port}"

    @property
    def cluster_addr(self) -> str:
        return f"https://{self.advertise_host}:{self.cluster_port}"

    @property
    def backend(self) -> Endpoint:
        """The node as HAProxy reaches it."""
        return Endpoint(self.name, self.advertise_host, self.api_port)


@dataclass(frozen=True)
class Checks:
    """HAProxy health checks (ms): `inter` while a server's state is settled, `fastinter`
    while it is changing (a first failure), `downinter` while it is down (how soon a new
    active node is seen), `rise`/`fall` consecutive results to change state."""

    inter_ms: int = 1000
    fastinter_ms: int = 250
    downinter_ms: int = 250
    rise: int = 1
    fall: int = 1
    timeout_ms: int = 1000


@dataclass(frozen=True)
class SentinelTimings:
    quorum: int = 2
    down_after_ms: int = 2000
    failover_timeout_ms: int = 10000


@dataclass(frozen=True)
class Frontends:
    """HAProxy's listening ports: writes (→ the active node), reads (→ every unsealed node),
    and the stats page."""

    bind_host: str
    write: int
    read: int
    stats: int


@dataclass(frozen=True)
class Layout:
    flavour: str  # "compose" | "local"
    redis: tuple[Endpoint, ...]  # [0]: the initial primary, the others replicate it
    sentinels: tuple[Endpoint, ...]
    nodes: tuple[Node, ...]
    frontends: Frontends
    redis_bind: str  # what each Redis/Sentinel binds ("127.0.0.1", or all interfaces)
    lock_ttl: str = "10s"
    cluster_name: str = "transit"
    checks: Checks = field(default_factory=Checks)
    sentinel: SentinelTimings = field(default_factory=SentinelTimings)

    @property
    def primary(self) -> Endpoint:
        return self.redis[0]

    @property
    def announce_hostnames(self) -> bool:
        """Compose: Redis and Sentinel announce service names, not container IPs (which
        change when a container is recreated)."""
        return self.flavour == "compose"

    def services(self) -> dict[str, str]:
        """Every process of the deployment: name → kind."""
        out = {r.name: "redis" for r in self.redis}
        out.update({s.name: "sentinel" for s in self.sentinels})
        out.update({n.name: "transit" for n in self.nodes})
        out["haproxy"] = "haproxy"
        return out


REDIS_PORT = 6379
SENTINEL_PORT = 26379
API_PORT = 8200


def compose_layout(nodes: int = 3, redis: int = 3, sentinels: int = 3) -> Layout:
    """`docker/compose.yml`: service names as hosts, every container on its standard port;
    HAProxy publishes writes on 8200, reads on 8300 and its stats on 8404."""
    rs = tuple(Endpoint(f"redis-{j + 1}", f"redis-{j + 1}", REDIS_PORT) for j in range(redis))
    ss = tuple(Endpoint(f"sentinel-{j + 1}", f"sentinel-{j + 1}", SENTINEL_PORT)
               for j in range(sentinels))
    ns = tuple(Node(f"transit-{i + 1}", "0.0.0.0", API_PORT, f"transit-{i + 1}", rs[i % redis])
               for i in range(nodes))
    return Layout("compose", rs, ss, ns, Frontends("*", 8200, 8300, 8404), redis_bind="0.0.0.0")


def local_layout(*, host: str, api_ports: list[int], redis_ports: list[int],
                 sentinel_ports: list[int], haproxy_port: int, lock_ttl: str,
                 checks: Checks | None = None, sentinel: SentinelTimings | None = None,
                 cluster_name: str = "transit-local") -> Layout:
    """The same topology on one machine: node i is `node-i` (as `transit cluster up` names
    them) on `api_ports[i]`, reading from Redis server i (mod their number); HAProxy's
    writes on `haproxy_port`, reads on +1, stats on +2."""
    rs = tuple(Endpoint(f"redis-{j + 1}", host, p) for j, p in enumerate(redis_ports))
    ss = tuple(Endpoint(f"sentinel-{j + 1}", host, p) for j, p in enumerate(sentinel_ports))
    ns = tuple(Node(f"node-{i}", host, p, host, rs[i % len(rs)]) for i, p in enumerate(api_ports))
    return Layout("local", rs, ss, ns,
                  Frontends(host, haproxy_port, haproxy_port + 1, haproxy_port + 2),
                  redis_bind=host, lock_ttl=lock_ttl, cluster_name=cluster_name,
                  checks=checks or Checks(), sentinel=sentinel or SentinelTimings())
