"""Issue 13: server-config keys that work or are refused (logging, lease TTLs, pid_file,
declarative audit stanzas, Vault keys transit does not implement). Their effects live beside
their modules: tests/unit/audit/test_broker_declared.py, tests/unit/test_logs.py,
tests/unit/engines/system/test_internal.py."""

from __future__ import annotations

import json
import re

import pytest

from transit.audit.broker import check_declared
from transit.config import DEFAULT_LEASE_TTL, AuditDeviceConfig, parse_config, resolve_logging
from transit.errors import ConfigError

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
