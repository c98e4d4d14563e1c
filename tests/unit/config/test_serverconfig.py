"""Server config parsing: HCL and JSON, defaults, lenient values, env overrides, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transit.config import (
    DEFAULT_MAX_REQUEST_SIZE,
    ListenerConfig,
    ServerConfig,
    StorageConfig,
    load_config,
    parse_bool,
    parse_config,
    parse_duration,
)
from transit.errors import ConfigError

FULL_HCL = r"""
# a comment
storage "redis" {
  address    = "redis://r:6379/0"
  ha_enabled = "true"
  timeout    = 5
}
listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:9201"
  tls_disable     = "true"
  max_request_size = 1024
  telemetry { unauthenticated_metrics_access = true }
}
listener "tcp" {
  address       = "10.0.0.1:8300"
  tls_cert_file = "/etc/vault/tls.crt"
  tls_key_file  = "/etc/vault/tls.key"
  tls_min_version = "tls13"
}
api_addr      = "https://node-a:8200"
cluster_addr  = "https://node-a:8201"
cluster_name  = "transit-prod"
disable_mlock = true
ui            = "false"
log_level     = "DEBUG"
default_max_request_duration = "2m30s"
disable_clustering = 0
disable_performance_standby = false
"""

FULL_JSON = {
    "storage": {"redis": {"address": "redis://r:6379/0", "ha_enabled": "true", "timeout": 5}},
    "listener": [
        {
            "tcp": {
                "address": "0.0.0.0:8200",
                "cluster_address": "0.0.0.0:9201",
                "tls_disable": "true",
                "max_request_size": 1024,
                "telemetry": {"unauthenticated_metrics_access": True},
            }
        },
        {
            "tcp": {
                "address": "10.0.0.1:8300",
                "tls_cert_file": "/etc/vault/tls.crt",
                "tls_key_file": "/etc/vault/tls.key",
                "tls_min_version": "tls13",
            }
        },
    ],
    "api_addr": "https://node-a:8200",
    "cluster_addr": "https://node-a:8201",
    "cluster_name": "transit-prod",
    "disable_mlock": True,
    "ui": "false",
    "log_level": "DEBUG",
    "default_max_request_duration": "2m30s",
    "disable_clustering": 0,
    "disable_performance_standby": False,
}

MINIMAL = 'storage "inmem" {}\nlistener "tcp" { tls_disable = true }\n'


def _check_full(cfg: ServerConfig) -> None:
    assert cfg.storage == StorageConfig(
        "redis", {"address": "redis://r:6379/0", "ha_enabled": "true", "timeout": "5"}
    )
    assert cfg.storage.options == {
        "address": "redis://r:6379/0",
        "ha_enabled": "true",
        "timeout": "5",
    }
    a, b = cfg.listeners
    assert (a.type, a.address, a.cluster_address) == ("tcp", "0.0.0.0:8200", "0.0.0.0:9201")
    assert a.tls_disable is True and a.max_request_size == 1024
    assert b.address == "10.0.0.1:8300" and b.cluster_address == "10.0.0.1:8301"
    assert b.tls_disable is False and b.tls_min_version == "tls13"
    assert (b.tls_cert_file, b.tls_key_file) == ("/etc/vault/tls.crt", "/etc/vault/tls.key")
    assert cfg.api_addr == "https://node-a:8200"
    assert cfg.cluster_addr == "https://node-a:8201"
    assert cfg.cluster_name == "transit-prod"
    assert cfg.disable_mlock is True and cfg.ui is False
    assert cfg.log_level == "debug"
    assert cfg.default_max_request_duration == 150
    assert cfg.disable_clustering is False and cfg.disable_performance_standby is False
    assert cfg.warnings == ()


def test_full_hcl() -> None:
    cfg = parse_config(FULL_HCL, env={})
    _check_full(cfg)
    # hcl2 artifacts are gone: no quotes kept, no __is_block__ markers.
    assert "__is_block__" not in json.dumps(cfg.raw)
    assert cfg.listeners[0].raw["telemetry"] in (
        [{"unauthenticated_metrics_access": True}],
        {"unauthenticated_metrics_access": True},
    )


def test_full_json_matches_hcl(tmp_path: Path) -> None:
    path = tmp_path / "server.json"
    path.write_text(json.dumps(FULL_JSON))
    from_json = load_config(path, env={})
    _check_full(from_json)
    assert from_json.listeners == parse_config(FULL_HCL, env={}).listeners
    # JSON content is detected even without the extension, and fmt="json" works.
    assert parse_config(json.dumps(FULL_JSON), env={}).storage.type == "redis"
    assert parse_config(json.dumps(FULL_JSON), "json", env={}).cluster_name == "transit-prod"


def test_load_hcl_file(tmp_path: Path) -> None:
    path = tmp_path / "server.hcl"
    path.write_text(FULL_HCL)
    _check_full(load_config(str(path), env={}))


def test_defaults() -> None:
    cfg = parse_config(MINIMAL, env={})
    assert cfg.storage == StorageConfig("inmem", {})
    (lst,) = cfg.listeners
    assert lst == ListenerConfig(tls_disable=True, cluster_address="127.0.0.1:8201")
    assert lst.address == "127.0.0.1:8200"
    assert lst.max_request_size == DEFAULT_MAX_REQUEST_SIZE == 33554432
    assert lst.tls_min_version == "tls12"
    assert cfg.api_addr == cfg.cluster_addr == cfg.cluster_name == ""
    assert cfg.disable_mlock is False and cfg.ui is False
    assert cfg.log_level == "info"
    assert cfg.default_max_request_duration == 90
    assert cfg.disable_clustering is False and cfg.disable_performance_standby is False
    assert cfg.ha_storage is None


def test_file_storage_and_ha_storage() -> None:
    cfg = parse_config(
        'storage "file" { path = "/var/lib/transit" }\n'
        'listener "tcp" { address = "[::1]:8200"\n tls_disable = 1 }\n',
        env={},
    )
    assert cfg.storage == StorageConfig("file", {"path": "/var/lib/transit"})
    assert cfg.listeners[0].cluster_address == "[::1]:8201"
    # a separate HA backend was parsed and then ignored (a single node, silently): refused
    with pytest.raises(ConfigError, match='"ha_storage" .* not supported: .*storage "redis"'):
        parse_config('storage "file" { path = "/x" }\nha_storage "redis" { address = "x" }\n'
                     'listener "tcp" { tls_disable = 1 }\n', env={})


def test_legacy_backend_and_redirect_addr() -> None:
    cfg = parse_config(
        'backend "inmem" {}\nlistener "tcp" { tls_disable = "1" }\n'
        'redirect_addr = "http://old:8200"\n',
        env={},
    )
    assert cfg.storage.type == "inmem"
    assert cfg.api_addr == "http://old:8200"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("t", True),
        ("false", False),
        ("0", False),
        ("F", False),
    ],
)
def test_lenient_bools(value: object, expected: bool) -> None:
    assert parse_bool(value) is expected
    cfg = parse_config(
        json.dumps(
            {
                "storage": {"inmem": {}},
                "listener": {
                    "tcp": {"tls_disable": value, "tls_cert_file": "c", "tls_key_file": "k"}
                },
                "ui": value,
                "disable_mlock": value,
            }
        ),
        env={},
    )
    assert cfg.listeners[0].tls_disable is expected
    assert cfg.ui is expected and cfg.disable_mlock is expected


@pytest.mark.parametrize("value", ["yes", "", "maybe", 1.5, None])
def test_bad_bool(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_bool(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90),
        ("90", 90),
        ("90s", 90),
        ("1h", 3600),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("2d", 172800),
        (" 10s ", 10),
        ("0", 0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "s", "10x", "1h 2m", "abc", "inf", "nan", True, None])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(value)


def test_env_overrides_file() -> None:
    text = MINIMAL + 'api_addr = "https://file:8200"\ncluster_addr = "https://file:8201"\n'
    env = {"VAULT_API_ADDR": "https://env:8200", "VAULT_CLUSTER_ADDR": "https://env:8201"}
    cfg = parse_config(text, env=env)
    assert (cfg.api_addr, cfg.cluster_addr) == ("https://env:8200", "https://env:8201")
    assert parse_config(text, env={}).api_addr == "https://file:8200"
    cfg = parse_config(MINIMAL, env={"VAULT_DISABLE_MLOCK": "true", "VAULT_UI": "1"})
    assert cfg.disable_mlock is True and cfg.ui is True


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_API_ADDR", "http://from-env:8200")
    monkeypatch.delenv("VAULT_CLUSTER_ADDR", raising=False)
    assert parse_config(MINIMAL).api_addr == "http://from-env:8200"


def test_missing_storage() -> None:
    with pytest.raises(ConfigError, match="storage"):
        parse_config('listener "tcp" { tls_disable = true }', env={})


def test_missing_listener() -> None:
    with pytest.raises(ConfigError, match="listener"):
        parse_config('storage "inmem" {}', env={})


def test_two_storage_blocks() -> None:
    with pytest.raises(ConfigError, match="only one"):
        parse_config('storage "inmem" {}\nstorage "file" {}\n' + MINIMAL, env={})


@pytest.mark.parametrize(
    "body", ["", 'tls_cert_file = "/c.pem"', 'tls_key_file = "/k.pem"', "tls_disable = false"]
)
def test_tls_requires_cert_and_key(body: str) -> None:
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file"):
        parse_config(f'storage "inmem" {{}}\nlistener "tcp" {{\n{body}\n}}\n', env={})


@pytest.mark.parametrize(
    "listener",
    [
        'listener "tcp" { tls_disable = true\n tls_min_version = "ssl3" }',
        'listener "tcp" { tls_disable = true\n address = "nohost" }',
        'listener "tcp" { tls_disable = "perhaps" }',
        'listener "tcp" { tls_disable = true\n max_request_size = "big" }',
        'listener "tcp" { tls_disable = true\n max_json_depth = "deep" }',
        'listener "tcp" { tls_disable = true\n max_json_array_element_count = -1 }',
        'listener "unix" { address = "/tmp/s" }',
    ],
)
def test_bad_listener(listener: str) -> None:
    with pytest.raises(ConfigError):
        parse_config('storage "inmem" {}\n' + listener, env={})


@pytest.mark.parametrize(
    "text",
    [
        'storage "inmem" {',
        'storage "inmem" {}\nlistener "tcp" { tls_disable = }',
        "this is not hcl at all",
        '= "x"',
        'storage "inmem" {}}',
    ],
)
def test_malformed_hcl(text: str) -> None:
    with pytest.raises(ConfigError, match="error parsing config"):
        parse_config(text, env={})


def test_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"storage": ')
    with pytest.raises(ConfigError, match="error parsing config"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="top level"):
        parse_config("[1, 2]", "json", env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="error loading configuration"):
        load_config(tmp_path / "nope.hcl")


def test_unknown_keys_warn() -> None:
    cfg = parse_config(MINIMAL + 'bogus_key = 3\nseal "transit" { address = "x" }\n', env={})
    assert len(cfg.warnings) == 1 and "bogus_key" in cfg.warnings[0]
    assert cfg.raw["bogus_key"] == 3


def test_api_addr_must_be_url() -> None:
    with pytest.raises(ConfigError, match="full URL"):
        parse_config(MINIMAL + 'api_addr = "node-a:8200"\n', env={})


def test_hcl_string_escapes() -> None:
    cfg = parse_config(MINIMAL + 'cluster_name = "a\\"b\\\\c"\n', env={})
    assert cfg.cluster_name == 'a"b\\c'


def test_config_is_frozen_and_hashable() -> None:
    cfg = parse_config(MINIMAL, env={})
    with pytest.raises(AttributeError):
        cfg.api_addr = "x"  # type: ignore[misc]
    hash(cfg.listeners[0])
    hash(cfg.storage)


def test_plain_hcl2_output_is_cleaned_the_same() -> None:
    """The fallback for hcl2 versions without SerializationOptions (quotes kept, markers)."""
    import hcl2

    from transit.hcl import _clean
    from transit.hcl import loads as _load_hcl

    assert _clean(hcl2.loads(FULL_HCL), unquote=True) == _load_hcl(FULL_HCL)


def test_listener_json_limits() -> None:
    """Vault's listener keys: unset or 0 means Vault's default; each listener has its own."""
    cfg = parse_config(
        'storage "inmem" {}\n'
        'listener "tcp" { tls_disable = true\n max_json_depth = 10\n'
        ' max_json_string_value_length = "4096"\n max_json_object_entry_count = 5\n'
        ' max_json_array_element_count = 0 }\n'
        'listener "tcp" { tls_disable = true\n address = "127.0.0.1:9200" }\n', env={})
    a, b = cfg.listeners
    assert (a.max_json_depth, a.max_json_string_value_length, a.max_json_object_entry_count,
            a.max_json_array_element_count) == (10, 4096, 5, 10_000)
    assert (b.max_json_depth, b.max_json_string_value_length, b.max_json_object_entry_count,
            b.max_json_array_element_count) == (300, 1024 * 1024, 10_000, 10_000)
