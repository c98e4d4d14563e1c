"""The `workers` config key and `-workers` flag (transit/config/serverconfig.py resolve_workers)."""

from __future__ import annotations

import pytest

from transit.cli import main
from transit.config import default_workers, parse_config, resolve_workers
from transit.errors import ConfigError

LISTENER = 'listener "tcp" {\n  address = "127.0.0.1:8200"\n  tls_disable = true\n}\n'
REDIS = 'storage "redis" {\n  address = "127.0.0.1:6379"\n}\n'
FILE = 'storage "file" {\n  path = "/tmp/x"\n}\n'


def test_workers_key_with_redis() -> None:
    config = parse_config(REDIS + LISTENER + "workers = 3\n", env={})
    assert config.workers == 3 and not config.warnings
    assert resolve_workers(config) == 3
    assert resolve_workers(config, 1) == 1  # the flag wins
    assert parse_config(REDIS + LISTENER + 'workers = "2"\n', env={}).workers == 2


def test_default_is_the_cpu_count_with_redis_and_1_otherwise() -> None:
    assert resolve_workers(parse_config(REDIS + LISTENER, env={})) == default_workers() >= 1
    assert resolve_workers(parse_config(FILE + LISTENER, env={})) == 1


@pytest.mark.parametrize("text", [FILE + LISTENER + "workers = 2\n",
                                  'storage "inmem" {}\n' + LISTENER + "workers = 4\n"])
def test_more_than_one_needs_redis(text: str) -> None:
    with pytest.raises(ConfigError, match='workers > 1 needs storage "redis"'):
        parse_config(text, env={})


def test_flag_checked_too_and_bad_values() -> None:
    with pytest.raises(ConfigError, match='needs storage "redis"'):
        resolve_workers(parse_config(FILE + LISTENER, env={}), 2)
    assert resolve_workers(parse_config(FILE + LISTENER + "workers = 1\n", env={})) == 1
    for bad in ("0", '"many"', "-1"):
        with pytest.raises(ConfigError, match="workers"):
            parse_config(REDIS + LISTENER + f"workers = {bad}\n", env={})


def test_dev_runs_one_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "-dev", "-workers", "2"]) == 1
    assert 'needs storage "redis"' in capsys.readouterr().err
