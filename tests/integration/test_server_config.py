"""Issue 13 with real `transit server` processes: logging keys, flags and environment
variables, pid_file, default/max lease TTLs for tokens, declarative audit devices, dev-mode
environment variables, refused keys, and `sys/internal/ui/mounts` for least-privilege
tokens (what `vault kv` / `bao kv` do first)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from tests.helpers import ROOT, ServerProcess, free_port, init_and_unseal


def _config(port: int, extra: str) -> str:
    return (f'storage "inmem" {{}}\nlistener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
            f"  tls_disable = true\n}}\n{extra}")


def _start(tmp: Path, name: str, extra: str, args: list[str] | None = None) -> ServerProcess:
    port = free_port()
    cfg = tmp / f"{name}.hcl"
    cfg.write_text(_config(port, extra))
    srv = ServerProcess(["server", f"-config={cfg}", *(args or [])], port,
                        log=tmp / f"{name}.out")
    return srv.start()


def _log_lines(text: str) -> list[str]:
    """The lines after the banner (which stays plain text, as in Vault)."""
    return text.split("Log data will stream in below:\n", 1)[1].strip().splitlines()


def _wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """json logs (config key) also written to a log folder, 1h/2h lease TTLs, a declarative
    audit device, ui = true."""
    tmp = tmp_path_factory.mktemp("cfg")
    (tmp / "logs").mkdir()
    srv = _start(tmp, "a", f'log_format = "json"\nlog_file = "{tmp}/logs/"\n'
                 'default_lease_ttl = "1h"\nmax_lease_ttl = "2h"\nui = true\n'
                 f'audit "file" "declared" {{\n  description = "from the config"\n'
                 f'  options {{\n    file_path = "{tmp}/audit.log"\n  }}\n}}\n')
    init_and_unseal(srv)
    yield srv, tmp
    srv.stop()


def test_json_log_lines_with_hclog_keys(configured: tuple[ServerProcess, Path]) -> None:
    srv, tmp = configured
    _wait_for(lambda: "vault is unsealed" in srv.log())
    lines = _log_lines(srv.log_path.read_text())  # type: ignore[union-attr]
    objs = [json.loads(line) for line in lines]  # every line is one JSON object
    for obj in objs:
        assert {"@level", "@message", "@module", "@timestamp"} <= set(obj)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)",
                            obj["@timestamp"])
    by_message = {o["@message"]: o for o in objs}
    assert by_message["security barrier initialized: shares=1 threshold=1"]["@module"] == "core"
    assert "vault is unsealed (key shares)" in by_message
    assert any(o["@module"] == "uvicorn" for o in objs)  # uvicorn's lines, same format
    assert not any("Traceback" in line for line in lines)
    # log_file: a folder gets vault.log (mode 0640) with the same lines
    log_file = tmp / "logs" / "vault.log"
    assert os.stat(log_file).st_mode & 0o777 == 0o640
    file_messages = [json.loads(x)["@message"] for x in log_file.read_text().splitlines()]
    assert "security barrier initialized: shares=1 threshold=1" in file_messages
    assert srv.token not in log_file.read_text()  # never a secret


def test_ui_true_serves_the_ui(configured: tuple[ServerProcess, Path]) -> None:
    """`ui = true` in a config file (not only -dev) serves the web UI at /ui/."""
    srv, _ = configured
    r = srv.session.get(srv.addr + "/ui/", timeout=5)
    assert r.status_code == 200 and r.headers["x-frame-options"] == "DENY"
    assert not any("web UI" in line for line in srv.log().splitlines())


def test_token_ttls_follow_default_and_max_lease_ttl(
        configured: tuple[ServerProcess, Path]) -> None:
    srv, _ = configured
    client = srv.client()
    plain = client.auth.token.create(policies=["default"])
    assert plain["auth"]["lease_duration"] == 3600  # default_lease_ttl
    long = client.auth.token.create(policies=["default"], ttl="5h")
    assert long["auth"]["lease_duration"] == 7200  # capped at max_lease_ttl
    assert long["warnings"] == ['TTL of "5h" exceeded the effective max_ttl of "2h"; '
                                "TTL value is capped accordingly"]
    short = client.auth.token.create(policies=["default"], ttl="30m")
    assert short["auth"]["lease_duration"] == 1800
    renewed = hvac.Client(url=srv.addr, token=plain["auth"]["client_token"]).auth.token \
        .renew_self(increment="10h")
    assert 7100 <= renewed["auth"]["lease_duration"] <= 7200  # never past max_lease_ttl
    root_child = client.auth.token.create(policies=["root"])  # root tokens never expire
    assert root_child["auth"]["lease_duration"] == 0


def test_mount_views_and_kv_leases_follow_the_server_ttls(
        configured: tuple[ServerProcess, Path]) -> None:
    """The server's default/max_lease_ttl are what a mount without its own shows (tune
    view) and the lease a KV v1 read reports; a tuned mount's own value wins."""
    srv, _ = configured
    client = srv.client()
    client.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    tune = client.sys.read_mount_configuration("kv1")["data"]
    assert (tune["default_lease_ttl"], tune["max_lease_ttl"]) == (3600, 7200)
    sys_tune = srv.request("GET", "sys/mounts/sys/tune").json()["data"]
    assert (sys_tune["default_lease_ttl"], sys_tune["max_lease_ttl"]) == (3600, 7200)
    client.secrets.kv.v1.create_or_update_secret("a", {"x": "1"}, mount_point="kv1")
    assert client.secrets.kv.v1.read_secret("a", mount_point="kv1")["lease_duration"] == 3600
    client.secrets.kv.v1.create_or_update_secret("b", {"x": "1", "ttl": "5m"},
                                                 mount_point="kv1")
    assert client.secrets.kv.v1.read_secret("b", mount_point="kv1")["lease_duration"] == 300
    client.sys.tune_mount_configuration("kv1", default_lease_ttl="30m")
    assert client.secrets.kv.v1.read_secret("a", mount_point="kv1")["lease_duration"] == 1800
    assert client.sys.read_mount_configuration("kv1")["data"]["default_lease_ttl"] == 1800


def test_declarative_audit_device(configured: tuple[ServerProcess, Path]) -> None:
    srv, tmp = configured
    devices = srv.request("GET", "sys/audit").json()["data"]
    assert devices["declared/"] == {"type": "file", "description": "from the config",
                                    "local": False, "path": "declared/",
                                    "options": {"file_path": f"{tmp}/audit.log"}}
    assert srv.request("GET", "sys/mounts").status_code == 200
    entries = [json.loads(x) for x in (tmp / "audit.log").read_text().splitlines()]
    assert any(e["type"] == "response" and e["request"]["path"] == "sys/mounts"
               for e in entries)
    r = srv.request("DELETE", "sys/audit/declared")
    assert r.status_code == 400
    assert r.json()["errors"] == ["cannot disable configuration-managed audit device"]
    # beside the API (Vault's behaviour): API devices still work
    api_path = f"{tmp}/api.log"
    assert srv.request("PUT", "sys/audit/api", json={
        "type": "file", "options": {"file_path": api_path}}).status_code == 204
    assert set(srv.request("GET", "sys/audit").json()["data"]) == {"declared/", "api/"}
    assert srv.request("DELETE", "sys/audit/api").status_code == 204


def test_env_and_flags_pid_file_and_standard_lines(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "transit.pid"
    monkeypatch.setenv("VAULT_LOG_LEVEL", "debug")
    monkeypatch.setenv("VAULT_LOG_FORMAT", "json")
    # the flag beats VAULT_LOG_FORMAT; VAULT_LOG_LEVEL beats the file's log_level
    srv = _start(tmp_path, "b", f'pid_file = "{pid_file}"\nlog_level = "error"\n',
                 ["-log-format=standard"])
    try:
        assert srv.proc is not None
        _wait_for(pid_file.exists)
        assert pid_file.read_text() == str(srv.proc.pid)
        init_and_unseal(srv)
        _wait_for(lambda: "[DEBUG]" in srv.log())
        lines = _log_lines(srv.log_path.read_text())  # type: ignore[union-attr]
        line = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4}) "
                          r"\[(TRACE|DEBUG|INFO|WARN|ERROR)\] {1,3}[\w.-]+: ")
        assert all(line.match(x) for x in lines), lines
        assert any(x.endswith("[INFO]  core: vault is unsealed (key shares)") for x in lines)
    finally:
        srv.stop()
    assert srv.proc.returncode == 0
    assert not pid_file.exists()  # removed at a clean exit


def test_dev_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("VAULT_DEV_ROOT_TOKEN_ID", "from-env")
    monkeypatch.setenv("VAULT_DEV_LISTEN_ADDRESS", f"127.0.0.1:{port}")
    srv = ServerProcess(["server", "-dev"], port, token="from-env",
                        log=tmp_path / "dev.out").start()
    try:
        assert srv.request("GET", "auth/token/lookup-self").json()["data"]["id"] == "from-env"
    finally:
        srv.stop()
    # flags win over the environment
    srv = ServerProcess.dev(tmp_path, token="from-flag").start()
    try:
        assert srv.request("GET", "auth/token/lookup-self").status_code == 200
        assert srv.request("GET", "auth/token/lookup-self", token="from-env").status_code == 403
    finally:
        srv.stop()


@pytest.mark.parametrize("extra, message", [
    ('plugin_directory = "/p"\n', '"plugin_directory" in .* is not supported'),
    ("raw_storage_endpoint = true\n", '"raw_storage_endpoint" in .* is not supported'),
    ('log_format = "xml"\n', 'log_format: unknown log format "xml"'),
    ('max_lease_ttl = "1h"\n', "default_lease_ttl .* cannot be larger than max_lease_ttl"),
    ('audit "file" "a" { options { file_path = "/x"\n format = "jsonx" } }\n',
     'audit "file" "a": unsupported "format"'),
])
def test_unsupported_keys_stop_the_server(tmp_path: Path, extra: str, message: str) -> None:
    cfg = tmp_path / "bad.hcl"
    cfg.write_text(_config(free_port(), extra))
    out = subprocess.run([sys.executable, "-m", "transit", "server", f"-config={cfg}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert re.search("error loading configuration: " + message, out.stderr), out.stderr
    assert "Traceback" not in out.stderr


def test_kv_preflight_for_a_least_privilege_token(server: ServerProcess) -> None:
    """`vault kv get/put secret/app/x` with only `secret/data/app/*`: the CLI first GETs
    sys/internal/ui/mounts/secret/app/x, then reads/writes secret/data/app/x."""
    assert server.request("PUT", "sys/policies/acl/kv-app", json={"policy": (
        'path "secret/data/app/*" { capabilities = ["create", "read", "update"] }')}
    ).status_code == 204
    token = server.client().auth.token.create(policies=["kv-app"])["auth"]["client_token"]
    r = server.request("GET", "sys/internal/ui/mounts/secret/app/x", token=token)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["path"] == "secret/"
    assert r.json()["data"]["options"] == {"version": "2"}
    r = server.request("PUT", "secret/data/app/x", json={"data": {"k": "v"}}, token=token)
    assert r.status_code == 200, r.text
    r = server.request("GET", "secret/data/app/x", token=token)
    assert r.status_code == 200 and r.json()["data"]["data"] == {"k": "v"}
    # some capability under the mount is enough, not on the path itself (as Vault)
    assert server.request("GET", "sys/internal/ui/mounts/secret/other",
                          token=token).status_code == 200
    # no access under the mount, or no such mount: the same 403 (no enumeration)
    for path in ("transit", "no-such-mount"):
        r = server.request("GET", f"sys/internal/ui/mounts/{path}", token=token)
        assert r.status_code == 403
        assert r.json()["errors"] == [
            "preflight capability check returned 403, please ensure client's policies "
            f'grant access to path "{path}/"']
    for bad in ("", "not-a-token"):
        r = server.request("GET", "sys/internal/ui/mounts/secret", token=bad)
        assert r.status_code == 403 and r.json()["errors"] == ["permission denied"]
    # the listing shows what the token can reach (the default policy gives sys/ and token/)
    data = server.request("GET", "sys/internal/ui/mounts", token=token).json()["data"]
    assert set(data["secret"]) == {"secret/", "sys/"} and set(data["auth"]) == {"token/"}
    assert server.request("GET", "sys/internal/ui/mounts", token="").json()["data"] == {
        "auth": {}, "secret": {}}
    assert server.request("GET", "sys/internal/ui/mounts", token="nope").status_code == 403
