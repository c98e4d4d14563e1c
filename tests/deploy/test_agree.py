"""docker/ and `transit cluster up --sentinels 3 --haproxy` describe the same deployment:
services, ports, health checks, Redis persistence and Sentinel settings. Rendered only
(the running cluster's own settings are checked in test_through_haproxy)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml

from tests.deploy.cluster import DeployCluster
from transit.config import load_config
from transit.deploy.render import haproxy_cfg, sentinel_conf
from transit.deploy.topology import REDIS_PERSISTENCE, compose_layout

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def local(tmp_path: Path) -> DeployCluster:
    return DeployCluster(tmp_path / "c")  # not started: its layout and rendered configs


def normalise_haproxy(text: str) -> list[str]:
    """haproxy.cfg without what differs by design: addresses, and Docker's DNS resolver."""
    out = []
    for line in text.splitlines()[1:]:
        line = re.sub(r" resolvers docker init-addr \S+", "", line)
        line = re.sub(r"^(\s+bind )\S+$", r"\1<addr>", line)
        line = re.sub(r"^(\s+server \S+ )\S+$", r"\1<addr>", line)
        out.append(line)
    text = "\n".join(out)
    text = re.sub(r"resolvers docker\n(    .*\n)+\n", "", text)
    return re.sub(r"server (transit-|node-)(\d)", lambda m: f"server n{int(m[2]) - (m[1] == 'transit-')}", text).splitlines()


def conf(text: str) -> dict[str, str]:
    pairs = (line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {k: v.strip('"') if v != '""' else "" for k, v in pairs}


def test_same_services(tmp_path: Path) -> None:
    doc = yaml.safe_load((DOCKER / "compose.yml").read_text())
    always = {k for k, v in doc["services"].items() if "profiles" not in v}
    kinds = Counter(re.sub(r"-\d+$", "", name) for name in always)
    c = local(tmp_path)
    assert kinds == Counter({"redis": 3, "sentinel": 3, "transit": 3, "haproxy": 1})
    assert Counter(c.layout.services().values()) == kinds
    assert len(c.redis) == 3 and len(c.sentinels) == 3 and c.haproxy is not None


def test_same_haproxy_frontends_backends_and_health_checks(tmp_path: Path) -> None:
    c = local(tmp_path)
    docker = (DOCKER / "haproxy" / "haproxy.cfg").read_text()
    assert normalise_haproxy(docker) == normalise_haproxy(haproxy_cfg(c.layout))
    for text in (docker, haproxy_cfg(c.layout)):
        assert "http-check send meth GET uri /v1/sys/health\n" in text
        assert "http-check send meth GET uri /v1/sys/health?perfstandbyok=true\n" in text
    f, d = c.layout.frontends, compose_layout().frontends
    assert (f.read - f.write, f.stats - f.write) == (1, 2)  # local: consecutive
    assert {d.write, d.read, d.stats} == {8200, 8300, 8404}


def test_same_redis_persistence_and_sentinel_settings(tmp_path: Path) -> None:
    c = local(tmp_path)
    want = dict(REDIS_PERSISTENCE)
    for r in compose_layout().redis:
        settings = conf((DOCKER / "redis" / f"{r.name}.conf").read_text())
        assert {k: settings[k] for k in want} == want, r.name
    for r in c.redis:  # the local servers' command lines
        args = r.args("redis-server")
        given = {args[i][2:]: args[i + 1] for i in range(1, len(args) - 1, 2)
                 if args[i].startswith("--")}
        assert {k: given[k] for k in want} == want, args
    for j in range(3):
        docker = (DOCKER / "sentinel" / f"sentinel-{j + 1}.conf").read_text()
        assert sentinel_settings(docker) == sentinel_settings(
            sentinel_conf(c.layout, j, directory="/x"))


def sentinel_settings(text: str) -> dict[str, str]:
    """`sentinel <setting> transit ... <value>` lines: the master name and quorum of
    `monitor`, the timings; not where the primary is nor how hosts are announced."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["sentinel"] and parts[1] not in ("resolve-hostnames",
                                                          "announce-hostnames", "announce-ip"):
            out[parts[1]] = f"{parts[2]} {parts[-1]}"
    assert out["monitor"].startswith("transit ") and len(out) == 4, out
    return out


def test_same_node_configuration(tmp_path: Path) -> None:
    """Both read by the server's own configuration loader."""
    c = local(tmp_path)
    for i, n in enumerate(compose_layout().nodes):
        docker = load_config(str(DOCKER / "transit" / f"{n.name}.hcl"))
        path = tmp_path / f"node-{i}.hcl"
        path.write_text(c.node_config(c.nodes[i]))
        mine = load_config(str(path))
        ds, ms = docker.storage.options, mine.storage.options
        assert docker.storage.type == mine.storage.type == "redis"
        assert set(ds) == set(ms)
        assert ds["sentinel_master"] == ms["sentinel_master"]
        assert ds["lock_ttl"] == ms["lock_ttl"] == "10s"
        assert len(ds["sentinel_addresses"].split(",")) == len(ms["sentinel_addresses"].split(","))
        # node i reads from Redis server i in both
        assert ds["read_address"] == f"redis-{i + 1}:6379"
        assert ms["read_address"] == c.redis[i].address
        assert docker.telemetry == mine.telemetry
        assert docker.telemetry.unauthenticated_metrics_access  # Prometheus scrapes it
        assert docker.disable_performance_standby is mine.disable_performance_standby is False
        for cfg in (docker, mine):
            api = int(cfg.listeners[0].address.rsplit(":", 1)[1])
            assert cfg.listeners[0].cluster_address.endswith(f":{api + 1}")
            assert cfg.api_addr.endswith(f":{api}") and cfg.cluster_addr.endswith(f":{api + 1}")
        assert "seal" not in docker.raw and "seal" in mine.raw  # Shamir in docker/, static here
