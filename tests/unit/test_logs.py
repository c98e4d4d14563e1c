"""hclog lines (standard and JSON, worker tagging) and the log file: naming and rotation
(transit/logs.py; server-config keys of issue 13)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path

import pytest

from transit.errors import ConfigError
from transit.logs import HclogFormatter, HclogStreamHandler, LogFile, resolve_log_file

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
