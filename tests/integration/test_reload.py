"""SIGHUP on a real `transit server` (transit/reload.py): the TLS listener serves the new
certificate, the file's new log_level applies, and a file that no longer parses changes
nothing."""

from __future__ import annotations

import signal
import socket
import ssl
import time
from pathlib import Path

from cryptography import x509

from tests.helpers import ServerProcess, free_port, init_and_unseal
from tests.integration.test_listener_hardening import _cert


def _config(plain: int, tls: int, cert: Path, key: Path, level: str) -> str:
    return ('storage "inmem" {}\n'
            f'log_level = "{level}"\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{plain}"\n  tls_disable = true\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{tls}"\n'
            f'  tls_cert_file = "{cert}"\n  tls_key_file = "{key}"\n}}\n')


def _served_serial(port: int) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw) as sock:
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _wait_log(srv: ServerProcess, text: str, count: int = 1, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while srv.log().count(text) < count:
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{srv.log()[-3000:]}"
        time.sleep(0.05)


def test_sighup_reloads_certificate_and_log_level(tmp_path: Path) -> None:
    plain, tls = free_port(), free_port()
    cert, key, first, _ = _cert(tmp_path, "server", "localhost")
    cfg = tmp_path / "server.hcl"
    cfg.write_text(_config(plain, tls, cert, key, "info"))
    srv = ServerProcess(["server", f"-config={cfg}"], plain, log=tmp_path / "server.log").start()
    try:
        init_and_unseal(srv)
        assert srv.proc is not None
        assert _served_serial(tls) == first.serial_number

        # a new certificate at the same paths, and a new level
        _, _, second, _ = _cert(tmp_path, "server", "localhost")
        cfg.write_text(_config(plain, tls, cert, key, "debug"))
        srv.proc.send_signal(signal.SIGHUP)
        _wait_log(srv, "configuration reloaded")
        assert _served_serial(tls) == second.serial_number
        assert "log level set to debug" in srv.log() and "debug lines are on" in srv.log()
        assert srv.request("GET", "sys/health").status_code == 200

        # a broken file changes nothing and is said so
        good = cfg.read_text()
        cfg.write_text(good + 'listener "tcp" {\n')
        srv.proc.send_signal(signal.SIGHUP)
        _wait_log(srv, "configuration not reloaded")
        assert _served_serial(tls) == second.serial_number

        # a broken certificate neither: the old one stays in service
        cfg.write_text(good)
        cert.write_text("not a certificate")
        srv.proc.send_signal(signal.SIGHUP)
        _wait_log(srv, "certificate not reloaded")
        assert _served_serial(tls) == second.serial_number

        # back to warn: that reload's closing info line is no longer logged
        cfg.write_text(_config(plain, tls, cert, key, "warn"))
        srv.proc.send_signal(signal.SIGHUP)
        _wait_log(srv, "certificate not reloaded", count=2)  # still broken: an error line
        # answered on the event loop, so after the whole handler ran
        assert srv.request("GET", "sys/health").status_code == 200
        assert srv.log().count("reloading configuration from") == 4
        assert srv.log().count("configuration reloaded") == 2  # the 1st and 3rd reloads
    finally:
        srv.stop()
    assert "Traceback" not in srv.log()
