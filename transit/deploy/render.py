"""Configuration text for every program of the deployment, from a `Layout`: `redis.conf`,
`sentinel.conf`, each node's HCL, `haproxy.cfg` and `prometheus.yml`. The compose files and
the local cluster both come from these functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from transit.deploy.topology import (
    HEALTH_READ,
    HEALTH_WRITE,
    REDIS_PERSISTENCE,
    SENTINEL_MASTER,
    Layout,
    Node,
)


# -- Redis and Sentinel --------------------------------------------------------------------
def redis_settings(layout: Layout, j: int, *, directory: str, logfile: str = ""
                   ) -> list[tuple[str, str]]:
    """Redis server j's settings as (directive, value) pairs: a `redis.conf` line each, or
    `--directive value` on a command line (`redis_args`)."""
    me = layout.redis[j]
    out = [("port", str(me.port)), ("bind", layout.redis_bind),
           *REDIS_PERSISTENCE,
           ("dir", directory),
           ("repl-diskless-sync-delay", "0")]  # a (re)joining replica syncs at once, not after 5 s
    if logfile:
        out.append(("logfile", logfile))
    if layout.announce_hostnames:
        out.append(("replica-announce-ip", me.host))
    if j > 0:
        out.append(("replicaof", f"{layout.primary.host} {layout.primary.port}"))
    return out


def _conf_value(value: str) -> str:
    return '""' if value == "" else value


def redis_conf(layout: Layout, j: int, *, directory: str, logfile: str = "") -> str:
    role = "the initial primary" if j == 0 else f"a replica of {layout.primary.name}"
    lines = [f"# {layout.redis[j].name}: {role} (Sentinel may swap the roles later)"]
    lines += [f"{k} {_conf_value(v)}" for k, v in redis_settings(
        layout, j, directory=directory, logfile=logfile)]
    return "\n".join(lines) + "\n"


def redis_args(server: str, settings: Iterable[tuple[str, str]]) -> list[str]:
    args = [server]
    for k, v in settings:
        args += [f"--{k}", *v.split(" ")] if k == "replicaof" else [f"--{k}", v]
    return args


def sentinel_conf(layout: Layout, j: int, *, directory: str, logfile: str = "") -> str:
    """Sentinel j: watches the primary under the name `transit`; a quorum of them declares it
    down after `down_after_ms` and promotes the replica with the most data."""
    me, s, p = layout.sentinels[j], layout.sentinel, layout.primary
    lines = [f"# {me.name}: Sentinel rewrites this file (its id, the replicas and the other "
             "Sentinels it found)",
             f"port {me.port}", f"bind {layout.redis_bind}", f"dir {directory}"]
    if logfile:
        lines.append(f"logfile {logfile}")
    if layout.announce_hostnames:
        lines += ["sentinel resolve-hostnames yes", "sentinel announce-hostnames yes",
                  f"sentinel announce-ip {me.host}"]
    lines += [f"sentinel monitor {SENTINEL_MASTER} {p.host} {p.port} {s.quorum}",
              f"sentinel down-after-milliseconds {SENTINEL_MASTER} {s.down_after_ms}",
              f"sentinel failover-timeout {SENTINEL_MASTER} {s.failover_timeout_ms}",
              f"sentinel parallel-syncs {SENTINEL_MASTER} 1"]
    return "\n".join(lines) + "\n"


# -- transit nodes ---------------------------------------------------------------------------
def hcl_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _block(kind: str, label: str, items: Sequence[tuple[str, str]]) -> str:
    width = max((len(k) for k, _ in items), default=0)
    body = "".join(f"  {k:<{width}} = {v}\n" for k, v in items)
    return f'{kind} "{label}" {{\n{body}}}\n\n' if label else f"{kind} {{\n{body}}}\n\n"


def node_hcl(*, header: str, storage: Sequence[tuple[str, str]], listen: str, seal: str,
             api_addr: str, cluster_addr: str, cluster_name: str, perf_standby: bool,
             workers: int | None = None, telemetry: bool = False, extra: str = "") -> str:
    """One node's configuration (values in `storage` are HCL already: quoted strings)."""
    top = [("api_addr", hcl_str(api_addr)), ("cluster_addr", hcl_str(cluster_addr)),
           ("cluster_name", hcl_str(cluster_name)), ("disable_mlock", "true"),
           ("ui", "true")]  # the web UI at /ui/ on every node (docs/ui.md)
    width = max(len(k) for k, _ in top)
    return (
        f"# {header}\n"
        + _block("storage", "redis", storage)
        + _block("listener", "tcp", [("address", hcl_str(listen)), ("tls_disable", "true")])
        + seal
        + (_block("telemetry", "", [("unauthenticated_metrics_access", "true")])
           if telemetry else "")
        + "".join(f"{k:<{width}} = {v}\n" for k, v in top)
        + f"disable_performance_standby = {'false' if perf_standby else 'true'}\n"
        + (f"workers = {workers}\n" if workers is not None else "")
        + extra
    )


def node_storage(layout: Layout, node: Node) -> list[tuple[str, str]]:
    """The storage stanza of a node of the layout: the primary through Sentinel, reads from
    the Redis server next to it."""
    return [("sentinel_addresses", hcl_str(",".join(s.address for s in layout.sentinels))),
            ("sentinel_master", hcl_str(SENTINEL_MASTER)),
            ("read_address", hcl_str(node.read_redis.address)),
            ("node_id", hcl_str(node.name)),
            ("lock_ttl", hcl_str(layout.lock_ttl))]


def layout_node_hcl(layout: Layout, i: int, *, header: str, seal: str, perf_standby: bool = True,
                    workers: int | None = None, extra: str = "") -> str:
    node = layout.nodes[i]
    return node_hcl(header=header, storage=node_storage(layout, node),
                    listen=f"{node.listen_host}:{node.api_port}", seal=seal,
                    api_addr=node.api_addr, cluster_addr=node.cluster_addr,
                    cluster_name=layout.cluster_name, perf_standby=perf_standby,
                    workers=workers, telemetry=True, extra=extra)


# -- HAProxy ---------------------------------------------------------------------------------
def _check_line(layout: Layout) -> str:
    c = layout.checks
    line = (f"default-server check inter {c.inter_ms}ms fastinter {c.fastinter_ms}ms "
            f"downinter {c.downinter_ms}ms rise {c.rise} fall {c.fall}")
    # (no `on-marked-down shutdown-sessions`: a standby leaving the pool with 429 still
    # answers what it was sent; a dead node's connections are gone anyway)
    if layout.announce_hostnames:
        # a recreated container has a new address: follow Docker's DNS, and start even
        # while a node's name does not resolve yet
        line += " resolvers docker init-addr last,libc,none"
    return line


def haproxy_cfg(layout: Layout, *, log: str = "stdout format raw local0 info") -> str:
    """Two frontends. `writes` sends everything to the one node answering 200 on plain
    `sys/health` (the active node); `reads` balances over every node answering 200 with
    `perfstandbyok=true`: the active node and the performance standbys (473 without the
    parameter), which serve encrypt/decrypt and reads themselves and forward the rest. A
    standby that cannot serve locally (feed or replica link down) answers 429 and leaves the
    pool until it can. HTTP headers pass through untouched, `X-Vault-Index` and
    `X-Vault-Token` included."""
    f, c = layout.frontends, layout.checks

    def backend(name: str, uri: str, comment: str, balance: str) -> list[str]:
        lines = [f"backend {name}", f"    # {comment}", f"    balance {balance}",
                 "    option httpchk", f"    http-check send meth GET uri {uri}",
                 "    http-check expect status 200", f"    {_check_line(layout)}"]
        lines += [f"    server {n.name} {n.backend.address}" for n in layout.nodes]
        return lines + [""]

    lines = [
        f"# HAProxy in front of the transit nodes ({layout.flavour}); generated from "
        "transit/deploy/render.py",
        "global",
        f"    log {log}",
        "    maxconn 4096",
        "",
        *(["resolvers docker", "    nameserver dns 127.0.0.11:53", "    hold valid 1s", ""]
          if layout.announce_hostnames else []),
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option redispatch 1",  # a connection a dead node refused: retried on another
        "    retries 3",
        "    timeout connect 1s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-keep-alive 10s",
        f"    timeout check {c.timeout_ms}ms",
        "",
        "frontend writes",
        f"    bind {f.bind_host}:{f.write}",
        "    default_backend active",
        "",
        "frontend reads",
        f"    bind {f.bind_host}:{f.read}",
        "    default_backend serving",
        "",
        "frontend stats",
        f"    bind {f.bind_host}:{f.stats}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
        "",
        *backend("active", HEALTH_WRITE, "writes: the active node only (200; standbys "
                 "answer 429 or 473)", "first"),
        # leastconn, not roundrobin: a node that holds requests (a standby taking over waits
        # for its activation) gets no more of them while the others answer
        *backend("serving", HEALTH_READ, "encrypt, decrypt and reads: the active node and "
                 "the performance standbys serving locally (200; 429 while a standby cannot)",
                 "leastconn"),
    ]
    return "\n".join(lines)


# -- Prometheus ------------------------------------------------------------------------------
def prometheus_yml(layout: Layout) -> str:
    """Scrape sys/metrics of every node (the nodes' telemetry stanza allows it without a
    token)."""
    targets = ", ".join(f'"{n.backend.address}"' for n in layout.nodes)
    return (
        "# Prometheus scraping every transit node (profile `metrics`)\n"
        "global:\n  scrape_interval: 15s\n"
        "scrape_configs:\n"
        "  - job_name: transit\n"
        "    metrics_path: /v1/sys/metrics\n"
        "    params:\n      format: [prometheus]\n"
        f"    static_configs:\n      - targets: [{targets}]\n"
    )
