"""Issue 13: server-config keys that work or are refused (logging, lease TTLs, pid_file,
declarative audit devices, Vault keys transit does not implement), hclog lines, the log
file, declarative audit reconciliation and `sys/internal/ui/mounts` mount access."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
from pathlib import Path

import orjson
import pytest

from transit.acl import ACL, parse_policy
from transit.audit import AuditBroker
from transit.audit.broker import AUDIT_TABLE_KEY, check_declared
from transit.config import DEFAULT_LEASE_TTL, AuditDeviceConfig, parse_config, resolve_logging
from transit.engines.system.internal import has_mount_access
from transit.errors import ConfigError, UserError
from transit.logs import HclogFormatter, HclogStreamHandler, LogFile, resolve_log_file
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend

MINIMAL = 'storage "inmem" {}\nlistener "tcp" { tls_disable = true }\n'
REDIS = 'storage "redis" { address = "127.0.0.1:6379" }\nlistener "tcp" { tls_disable = true }\n'


def cfg(extra: str = "", env: dict[str, str] | None = None, base: str = MINIMAL):
    return parse_config(base + extra, env=env or {})


# -- logging keys, flags and environment -----------------------------------------------------


def test_logging_defaults_and_keys() -> None:
    c = cfg()
    assert (c.log_level, c.log_format, c.log_file) == ("info", "standard", "")
    assert (c.log_rotate_duration, c.log_rotate_bytes, c.log_rotate_max_files) == (86400, 0, 0)
    c = cfg('log_level = "WARNING"\nlog_format = "JSON"\nlog_file = "/var/log/t/"\n'
            'log_rotate_duration = "1h"\nlog_rotate_bytes = 1024\nlog_rotate_max_files = -1\n')
    assert (c.log_level, c.log_format, c.log_file) == ("warn", "json", "/var/log/t/")
    assert (c.log_rotate_duration, c.log_rotate_bytes, c.log_rotate_max_files) == (3600, 1024, -1)
    assert cfg('log_level = "err"\n').log_level == "error"
    assert cfg('log_level = "trace"\n').log_level == "trace"


@pytest.mark.parametrize("extra, message", [
    ('log_level = "loud"\n', 'unknown log level "loud"'),
    ('log_format = "xml"\n', 'unknown log format "xml"'),
    ("log_rotate_max_files = -2\n", "log_rotate_max_files"),
    ('log_rotate_bytes = "-5"\n', "must not be negative"),
])
def test_bad_logging_values(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg(extra)


def test_logging_precedence_flag_env_config() -> None:
    c = cfg('log_level = "debug"\nlog_format = "standard"\n')
    env = {"VAULT_LOG_LEVEL": "error", "VAULT_LOG_FORMAT": "json"}
    assert resolve_logging(c, env={}).log_level == "debug"  # the file
    r = resolve_logging(c, env=env)
    assert (r.log_level, r.log_format) == ("error", "json")  # env beats the file
    r = resolve_logging(c, level="warn", fmt="standard", env=env)
    assert (r.log_level, r.log_format) == ("warn", "standard")  # the flag beats env
    r = resolve_logging(c, env={"BAO_LOG_LEVEL": "trace"})  # OpenBao's names
    assert r.log_level == "trace"
    r = resolve_logging(c, log_file="/tmp/x.log", rotate_bytes=10, rotate_max_files=2,
                        rotate_duration="5m", env={})
    assert (r.log_file, r.log_rotate_bytes, r.log_rotate_max_files,
            r.log_rotate_duration) == ("/tmp/x.log", 10, 2, 300)
    with pytest.raises(ConfigError, match="VAULT_LOG_LEVEL: unknown log level"):
        resolve_logging(c, env={"VAULT_LOG_LEVEL": "chatty"})
    with pytest.raises(ConfigError, match="-log-format: unknown log format"):
        resolve_logging(c, fmt="yaml", env={})


# -- lease TTLs, pid_file, ui ------------------------------------------------------------------


def test_lease_ttls() -> None:
    c = cfg()
    assert c.default_lease_ttl == c.max_lease_ttl == DEFAULT_LEASE_TTL == 768 * 3600
    c = cfg('default_lease_ttl = "1h"\nmax_lease_ttl = "2h"\n')
    assert (c.default_lease_ttl, c.max_lease_ttl) == (3600, 7200)
    assert cfg("default_lease_ttl = 0\nmax_lease_ttl = 0\n").max_lease_ttl == DEFAULT_LEASE_TTL
    # as Vault: the default may not exceed the max (and both default to 768h)
    with pytest.raises(ConfigError, match="default_lease_ttl .* cannot be larger than "
                                          "max_lease_ttl"):
        cfg('max_lease_ttl = "1h"\n')
    with pytest.raises(ConfigError, match="must not be negative"):
        cfg('default_lease_ttl = "-1h"\n')
    with pytest.raises(ConfigError, match="invalid duration"):
        cfg('max_lease_ttl = "forever"\n')


def test_pid_file_and_ui() -> None:
    assert cfg('pid_file = "/run/transit.pid"\n').pid_file == "/run/transit.pid"
    assert cfg().ui is False and cfg().warnings == ()
    c = cfg("ui = true\n")
    assert c.ui is True and c.warnings == ()  # the web UI (transit/ui) is served
    assert cfg(env={"VAULT_UI": "true"}).ui is True
    assert cfg("ui = true\n", env={"VAULT_UI": "false"}).ui is False


# -- Vault keys transit does not implement ----------------------------------------------------


@pytest.mark.parametrize("extra, key", [
    ('ha_storage "redis" { address = "x" }\n', "ha_storage"),
    ('plugin_directory = "/plugins"\n', "plugin_directory"),
    ("cache_size = 1000\n", "cache_size"),
    ('service_registration "consul" {}\n', "service_registration"),
    ('log_requests_level = "info"\n', "log_requests_level"),
    ('license_path = "/l"\n', "license_path"),
    ("raw_storage_endpoint = true\n", "raw_storage_endpoint"),
    ('disable_cache = "true"\n', "disable_cache"),
    ("introspection_endpoint = 1\n", "introspection_endpoint"),
    ("enable_response_header_hostname = true\n", "enable_response_header_hostname"),
    ("disable_printable_check = true\n", "disable_printable_check"),
    ('experiments = ["events.alpha1"]\n', "experiments"),
    ('detect_deadlocks = "statelock"\n', "detect_deadlocks"),
])
def test_unimplemented_keys_are_startup_errors(extra: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f'"{key}" in <string> is not supported: .*remove it'):
        cfg(extra)


def test_keys_set_to_what_transit_does_are_accepted() -> None:
    c = cfg("raw_storage_endpoint = false\ndisable_cache = false\nexperiments = []\n"
            'detect_deadlocks = ""\nintrospection_endpoint = false\ndisable_sealwrap = true\n'
            "disable_indexing = true\ndisable_sentinel_trace = true\n"
            "disable_clustering = true\n")  # no cluster without redis: nothing to disable
    assert c.warnings == () and c.disable_clustering is True
    with pytest.raises(ConfigError, match='"disable_clustering" = true is not supported'):
        cfg("disable_clustering = true\n", base=REDIS)


def test_refused_environment_variables() -> None:
    with pytest.raises(ConfigError, match="VAULT_EXPERIMENTS is not supported"):
        cfg(env={"VAULT_EXPERIMENTS": "events.alpha1"})
    with pytest.raises(ConfigError, match="VAULT_SEAL_TYPE is not supported"):
        cfg(env={"VAULT_SEAL_TYPE": "awskms"})
    assert cfg(env={"VAULT_REDIRECT_ADDR": "http://r:8200"}).api_addr == "http://r:8200"


# -- declarative audit stanzas ----------------------------------------------------------------


def test_audit_stanzas_hcl_and_json() -> None:
    c = cfg('audit "file" "file-audit" {\n  description = "declarative"\n'
            '  options {\n    file_path = "/var/log/a.log"\n    mode = "0600"\n'
            "    log_raw = false\n  }\n}\n"
            'audit "file" "second/" { options = { file_path = "stdout" } }\n')
    assert c.audit == (
        AuditDeviceConfig("file", "file-audit/", "declarative", False,
                          {"file_path": "/var/log/a.log", "mode": "0600", "log_raw": "false"}),
        AuditDeviceConfig("file", "second/", "", False, {"file_path": "stdout"}),
    )
    j = parse_config(json.dumps({
        "storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": True}},
        "audit": [{"file": {"j": {"options": {"file_path": "/a"}, "local": True}}}],
    }), env={})
    assert j.audit == (AuditDeviceConfig("file", "j/", "", True, {"file_path": "/a"}),)
    check_declared(c.audit)  # valid as sys/audit would see them


@pytest.mark.parametrize("stanza, message", [
    ('audit "socket" "s" { options { address = "x" } }', 'unsupported audit device type "socket"'),
    ('audit "file" "a" { options { mode = "0600" } }', 'options must set "file_path"'),
    ('audit "file" { options { file_path = "/a" } }', "expected two labels"),
    ('audit "file" "a" { options { file_path = "/a" } }\n'
     'audit "file" "a/b" { options { file_path = "/b" } }', "overlaps"),
    ('audit "file" "a" { path = "/a" }', "unknown key(s) path"),
    ('allow_audit_log_prefixing = false\n'
     'audit "file" "a" { options { file_path = "/a"\n prefix = "x" } }', "allow_audit_log_prefixing"),
])
def test_bad_audit_stanzas(stanza: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg(stanza + "\n")


def test_check_declared_validates_options_like_the_api() -> None:
    bad = (AuditDeviceConfig("file", "a/", options={"file_path": "/a", "format": "jsonx"}),)
    with pytest.raises(ConfigError, match='audit "file" "a": unsupported "format"'):
        check_declared(bad)
    bad = (AuditDeviceConfig("file", "a/", options={"file_path": "/a", "mode": "rw"}),)
    with pytest.raises(ConfigError, match="octal file mode"):
        check_declared(bad)


def _decl(path: str, file_path: Path, **extra: str) -> AuditDeviceConfig:
    return AuditDeviceConfig("file", path, "d", False, {"file_path": str(file_path), **extra})


def test_declared_devices_are_reconciled_on_the_active_node(tmp_path: Path) -> None:
    async def go() -> None:
        storage = StorageView(InmemBackend(), "")
        broker = AuditBroker(storage)
        broker.declared = (_decl("conf/", tmp_path / "a.log"),)
        await broker.setup(create=False)  # a standby: never writes
        assert await storage.get(AUDIT_TABLE_KEY) is None and not broker.enabled
        await broker.setup()
        (entry,) = broker.entries()
        assert (entry.path, entry.declared, entry.description) == ("conf/", True, "d")
        assert entry.describe() == {"type": "file", "description": "d", "local": False,
                                    "options": {"file_path": str(tmp_path / "a.log")},
                                    "path": "conf/"}
        table = await storage.get(AUDIT_TABLE_KEY)
        await broker.setup()  # unchanged: no write
        assert await storage.get(AUDIT_TABLE_KEY) == table
        # the API: cannot disable it, cannot enable over it; other devices work beside it
        with pytest.raises(UserError, match="configuration-managed"):
            await broker.disable("conf")
        with pytest.raises(UserError, match="path already in use"):
            await broker.enable("conf", "file", {"file_path": str(tmp_path / "x.log")})
        await broker.enable("api", "file", {"file_path": str(tmp_path / "api.log")})
        # a changed stanza updates in place (same uuid, so the same salt and HMACs)
        broker.declared = (_decl("conf/", tmp_path / "b.log", hmac_accessor="false"),)
        await broker.setup()
        conf = next(e for e in broker.entries() if e.path == "conf/")
        assert conf.uuid == entry.uuid and conf.options["file_path"].endswith("b.log")
        # a stanza on a path the API owns is skipped (error logged), never taken over
        broker.declared = (_decl("conf/", tmp_path / "b.log", hmac_accessor="false"),
                           _decl("api/", tmp_path / "c.log"))
        await broker.setup()
        api = next(e for e in broker.entries() if e.path == "api/")
        assert not api.declared and api.options["file_path"].endswith("api.log")
        # a removed stanza disables its device (and only it)
        broker.declared = ()
        await broker.setup()
        assert [e.path for e in broker.entries()] == ["api/"]
        assert await storage.get(f"audit/{entry.uuid}/salt") is None
        stored = orjson.loads(await storage.get(AUDIT_TABLE_KEY))
        assert [e["path"] for e in stored["entries"]] == ["api/"]
        broker.allow_api_creation = False  # OpenBao's default
        with pytest.raises(UserError, match="cannot enable audit device via API"):
            await broker.enable("api2", "file", {"file_path": str(tmp_path / "d.log")})
        broker.teardown()

    asyncio.run(go())


# -- hclog lines and the log file ---------------------------------------------------------------


def _record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


STANDARD = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4}) \[(INFO|WARN|ERROR|DEBUG|TRACE)\]"
                      r" {1,3}\S+: ")


def test_standard_lines() -> None:
    f = HclogFormatter("standard")
    line = f.format(_record("transit.core", logging.INFO, "node %s is active", "n1"))
    assert STANDARD.match(line) and line.endswith("[INFO]  core: node n1 is active")
    assert "[WARN]  cluster.ha: x" in f.format(_record("transit.cluster.ha", logging.WARNING, "x"))
    assert "[ERROR] uvicorn: y" in f.format(_record("uvicorn.error", logging.ERROR, "y"))
    assert "[DEBUG] httpx: z" in f.format(_record("httpx", logging.DEBUG, "z"))
    assert "[TRACE] core: t" in f.format(_record("transit.core", 5, "t"))
    kv = HclogFormatter("standard", {"worker": 1, "path": "a b"})
    assert kv.format(_record("transit.core", logging.INFO, "m")).endswith(
        'core: m: worker=1 path="a b"')


def test_json_lines() -> None:
    f = HclogFormatter("json", {"worker": 2})
    obj = json.loads(f.format(_record("transit.core", logging.WARNING, "careful: %d", 3)))
    assert list(obj) == sorted(obj)
    assert obj["@level"] == "warn" and obj["@message"] == "careful: 3"
    assert obj["@module"] == "core" and obj["worker"] == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)", obj["@timestamp"])
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("transit.x", logging.ERROR, __file__, 1, "failed", (),
                                __import__("sys").exc_info())
    obj = json.loads(f.format(rec))
    assert "ValueError: boom" in obj["stacktrace"]


def test_worker_tagging_keeps_the_hclog_format() -> None:
    """transit/workers.py swaps every handler's formatter for `[w<i>] <old format>`."""
    out = io.StringIO()
    handler = HclogStreamHandler(out)
    handler.setFormatter(HclogFormatter("json"))
    handler.setFormatter(logging.Formatter("[w3] %(message)s"))
    handler.emit(_record("transit.core", logging.INFO, "hi"))
    obj = json.loads(out.getvalue())
    assert obj["worker"] == 3 and obj["@message"] == "hi"


def test_log_file_naming(tmp_path: Path) -> None:
    assert resolve_log_file(str(tmp_path) + "/") == str(tmp_path / "vault.log")
    assert resolve_log_file(str(tmp_path)) == str(tmp_path / "vault.log")
    assert resolve_log_file(str(tmp_path / "transit")) == str(tmp_path / "transit.log")
    assert resolve_log_file(str(tmp_path / "t.txt")) == str(tmp_path / "t.txt")
    with pytest.raises(ConfigError, match="log_file"):
        LogFile("/proc/no/such/dir/x.log")


def test_log_file_rotation_by_size_keeps_max_files(tmp_path: Path) -> None:
    handler = LogFile(str(tmp_path / "t.log"), rotate_bytes=300, rotate_max_files=2)
    handler.setFormatter(HclogFormatter("standard"))
    assert os.stat(tmp_path / "t.log").st_mode & 0o777 == 0o640
    for i in range(40):
        handler.emit(_record("transit.core", logging.INFO, "line %d %s", i, "x" * 40))
    handler.close()
    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name != "t.log")
    assert len(rotated) == 2 and all(re.fullmatch(r"t-\d+\.log", n) for n in rotated)
    assert os.path.getsize(tmp_path / "t.log") <= 300
    assert "line 39" in (tmp_path / "t.log").read_text()


# -- sys/internal/ui/mounts: Vault's hasMountAccess ------------------------------------------


def _acl(text: str) -> ACL:
    return ACL([parse_policy("p", text)])


@pytest.mark.parametrize("policy, mount, allowed", [
    ('path "secret/data/app/*" { capabilities = ["read"] }', "secret/", True),
    ('path "secret/data/app/*" { capabilities = ["read"] }', "other/", False),
    ('path "secret/data/app" { capabilities = ["read"] }', "secret/", True),
    ('path "secret/*" { capabilities = ["deny"] }', "secret/", False),
    ('path "secret/+/app" { capabilities = ["read"] }', "secret/", True),
    ('path "+/data/*" { capabilities = ["list"] }', "kv/", True),
    ('path "other/+/x" { capabilities = ["read"] }', "secret/", False),
    ('path "sec*" { capabilities = ["read"] }', "secret/", True),
    ('path "transit/encrypt/k" { capabilities = ["update"] }', "transit/", True),
    ('path "auth/token/lookup-self" { capabilities = ["read"] }', "auth/token/", True),
])
def test_has_mount_access(policy: str, mount: str, allowed: bool) -> None:
    assert has_mount_access(_acl(policy), mount) is allowed


def test_root_has_access_everywhere() -> None:
    assert has_mount_access(ACL([parse_policy("root", "")]), "anything/")
    assert not has_mount_access(ACL([]), "anything/")
