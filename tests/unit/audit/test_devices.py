"""Audit devices (transit/audit/devices.py): the file and stdout devices, options and errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transit.audit.devices import FileDevice, create_device
from transit.errors import UserError


def test_file_device_options_and_errors(tmp_path: Path) -> None:
    dev, fmt = create_device("file", {"file_path": str(tmp_path / "sub" / "a.log"),
                                      "mode": "0640", "prefix": "AUDIT:"})
    assert isinstance(dev, FileDevice) and fmt.prefix == b"AUDIT:" and fmt.hmac_accessor
    assert (os.stat(tmp_path / "sub" / "a.log").st_mode & 0o777) == 0o640
    dev.write(b"one\n")
    dev.write(b"two\n")
    assert (tmp_path / "sub" / "a.log").read_bytes() == b"one\ntwo\n"
    dev.close()
    create_device("file", {"file_path": "discard"})[0].write(b"x")
    with pytest.raises(UserError, match='unknown backend type: "syslog"'):
        create_device("syslog", {})
    with pytest.raises(UserError, match='"file_path" is required'):
        create_device("file", {})
    with pytest.raises(UserError, match="unable to parse 'log_raw'"):
        create_device("file", {"file_path": "discard", "log_raw": "maybe"})
    with pytest.raises(UserError, match="mode"):
        create_device("file", {"file_path": "discard", "mode": "rw"})
    with pytest.raises(UserError, match="format"):
        create_device("file", {"file_path": "discard", "format": "xml"})
    with pytest.raises(UserError, match="file sink creation failed .*is a directory"):
        create_device("file", {"file_path": str(tmp_path)})


def test_stdout_device(capfd: pytest.CaptureFixture[str]) -> None:
    dev, _ = create_device("file", {"file_path": "STDOUT"})
    dev.write(b'{"a":1}\n')
    assert capfd.readouterr().out == '{"a":1}\n'


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_file_device_write_failure_raises() -> None:
    dev, _ = create_device("file", {"file_path": "/dev/full"})
    with pytest.raises(OSError):
        dev.write(b"x" * 100 + b"\n")
