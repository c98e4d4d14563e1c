"""docker/: the Dockerfile lints clean and keeps its promises, and compose.yml with its
configuration files is exactly what transit/deploy renders (so it cannot drift from the local
topology the other tests run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from transit.deploy import compose
from transit.deploy.topology import HEALTH_UNSEALED, compose_layout

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_dockerfile_lints_clean_with_hadolint() -> None:
    assert HADOLINT.exists(), "hadolint is missing: .venv/bin/pip install -e .[dev]"
    r = subprocess.run([str(HADOLINT), "--failure-threshold", "info",
                        str(DOCKER / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr
    text = (DOCKER / "Dockerfile").read_text()
    # each inline ignore carries its reason on the line above
    for m in re.finditer(r"^# hadolint ignore=.*$", text, re.M):
        above = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        assert above.startswith("#") and len(above) > 20, f"unjustified: {m.group(0)}"


def test_dockerfile_promises() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    code = [line for line in text.splitlines() if line and not line.startswith("#")]
    froms = [line for line in code if line.startswith("FROM ")]
    assert len(froms) == 2 and " AS build" in froms[0], froms  # multi-stage
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in code
    assert "-c constraints.txt" in text  # pinned dependencies
    user = next(line for line in code if line.startswith("USER "))
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user
    assert f"http://127.0.0.1:8200{HEALTH_UNSEALED}" in text and "HEALTHCHECK" in text
    assert 'ENTRYPOINT ["transit"]' in code
    assert 'CMD ["server", "-config", "/etc/transit/transit.hcl"]' in code
    # no secret baked in: no token, key or password in ENV/ARG, no seal key copied
    for line in code:
        if line.startswith(("ENV", "ARG")):
            assert not re.search(r"TOKEN|SECRET|PASSWORD|KEY", line, re.I), line
    assert not re.search(r"seal\.key|root-token", " ".join(code))
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*")] == "*" and "!transit/" in ignore


def test_docker_dir_is_what_transit_deploy_renders() -> None:
    rendered = compose.render()
    for rel, text in rendered.items():
        path = DOCKER / rel
        assert path.exists(), f"docker/{rel} missing: python -m transit.deploy.compose docker"
        assert path.read_text() == text, (
            f"docker/{rel} differs from transit/deploy's rendering: edit transit/deploy/ and "
            "run `python -m transit.deploy.compose docker`")
    generated = {str(p.relative_to(DOCKER)) for p in DOCKER.rglob("*") if p.is_file()
                 and p.name not in ("Dockerfile", "Dockerfile.dockerignore")}
    assert generated == set(rendered), generated ^ set(rendered)


def test_compose_file_describes_the_deployment() -> None:
    doc = yaml.safe_load((DOCKER / "compose.yml").read_text())
    services = doc["services"]
    layout = compose_layout()
    assert set(layout.services()) <= set(services)
    for r in layout.redis:  # AOF on a named volume, the conf mounted
        vols = services[r.name]["volumes"]
        assert f"{r.name}-data:/data" in vols and any(r.name + ".conf" in v for v in vols)
    for n in layout.nodes:
        node = services[n.name]
        assert node["image"] == compose.TRANSIT_IMAGE and node["build"]["dockerfile"]
        assert node["healthcheck"]["test"][-1].endswith(HEALTH_UNSEALED)
        assert "environment" not in node  # no secret passed in
    assert services["haproxy"]["ports"] == ["8200:8200", "8300:8300", "8404:8404"]
    assert services["init"]["profiles"] == ["init"] and services["unseal"]["profiles"] == ["init"]
    assert services["prometheus"]["profiles"] == ["metrics"]
    prom = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    assert job["metrics_path"] == "/v1/sys/metrics" and job["params"] == {"format": ["prometheus"]}
    assert job["static_configs"][0]["targets"] == [f"{n.name}:8200" for n in layout.nodes]


def test_haproxy_accepts_the_compose_configuration() -> None:
    """`haproxy -c` (Debian's, the same 2.6 branch as the image): valid; the only warnings are
    the service names that resolve only inside the compose network (init-addr none)."""
    from transit.deploy.local import find_haproxy

    haproxy = find_haproxy()
    assert haproxy is not None, "haproxy is not installed (run `make deps`)"
    r = subprocess.run([haproxy, "-c", "-f", str(DOCKER / "haproxy" / "haproxy.cfg")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    warnings = [line for line in (r.stdout + r.stderr).splitlines() if "[WARNING]" in line]
    assert all("could not resolve address 'transit-" in w for w in warnings), warnings
