"""The application shell over real HTTP: /ui headers, redirects, the static directory's
boundary, /v1 untouched, and `ui = false` (the default outside -dev) serving no UI."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import ServerProcess, free_port


@pytest.fixture(scope="module")
def no_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A config-file server without `ui` (sealed and uninitialised: the shell does not care)."""
    tmp = tmp_path_factory.mktemp("noui")
    port = free_port()
    cfg = tmp / "noui.hcl"
    cfg.write_text(f'storage "inmem" {{}}\nlistener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
                   "  tls_disable = true\n}\n")
    srv = ServerProcess(["server", f"-config={cfg}"], port, log=tmp / "noui.out").start()
    yield srv
    srv.stop()


def _raw_get(srv: ServerProcess, target: str) -> tuple[int, bytes]:
    """GET with the request target sent exactly as given (no client-side normalisation)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_ui_pages_carry_the_security_headers(server: ServerProcess) -> None:
    for path in ("/ui/", "/ui/index.html", "/ui/app.css", "/ui/js/app.js", "/ui/nope"):
        r = requests.get(server.addr + path, timeout=5)
        assert r.status_code == (404 if path == "/ui/nope" else 200), path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
    r = requests.get(server.addr + "/ui/", timeout=5)
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/app.js">' in r.text
    assert "<style" not in r.text and " style=" not in r.text  # nothing inline
    js = requests.get(server.addr + "/ui/js/app.js", timeout=5)
    assert js.headers["content-type"].startswith("text/javascript")


def test_refusals_in_vaults_error_body(server: ServerProcess) -> None:
    """No such file, a verb other than GET or HEAD, a control character: the same error
    bodies as the rest of the server."""
    r = requests.get(server.addr + "/ui/nope.js", timeout=5)
    assert r.status_code == 404 and r.json() == {"errors": []}
    r = requests.post(server.addr + "/ui/js/app.js", data=b"x", timeout=5)
    assert r.status_code == 405 and r.json() == {"errors": []}
    r = requests.head(server.addr + "/ui/nope", timeout=5)
    assert r.status_code == 404 and r.content == b""
    status, body = _raw_get(server, "/ui/%01x")
    assert status == 400 and b'{"errors":[]}' in body


def test_root_and_ui_without_slash_redirect_as_vault(server: ServerProcess) -> None:
    for path in ("/", "/ui"):
        for method in ("GET", "POST"):
            r = requests.request(method, server.addr + path, allow_redirects=False, timeout=5)
            assert r.status_code == 307 and r.headers["location"] == "/ui/", (method, path)


def test_v1_is_the_api_untouched(server: ServerProcess) -> None:
    r = requests.get(server.addr + "/v1/sys/health", timeout=5)
    assert r.status_code == 200 and "content-security-policy" not in r.headers
    r = requests.get(server.addr + "/v1/sys/mounts", timeout=5)  # no token
    assert r.status_code == 403 and r.json() == {"errors": ["permission denied"]}
    r = requests.get(server.addr + "/elsewhere", timeout=5)  # neither /v1 nor /ui: Vault's 404
    assert r.status_code == 404 and r.json() == {"errors": []}


@pytest.mark.parametrize("target", [
    "/ui/../../../../etc/passwd", "/ui/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/ui/..%2f..%2f..%2f..%2fetc%2fpasswd", "/ui/js/../../shell.py", "/ui/%2e%2e/shell.py",
    "/ui/..%5c..%5cshell.py", "/ui//etc/passwd",
])
def test_static_paths_do_not_escape_the_static_dir(server: ServerProcess, target: str) -> None:
    status, body = _raw_get(server, target)
    assert status in (400, 404), target
    assert b"root:" not in body and b"STATIC_DIR" not in body


def test_static_dir_holds_only_the_ui() -> None:
    static = Path(__file__).resolve().parents[2] / "transit" / "ui" / "static"
    suffixes = {p.suffix for p in static.rglob("*") if p.is_file()}
    assert suffixes <= {".html", ".css", ".js", ".svg"}


def test_ui_false_serves_no_ui(no_ui: ServerProcess) -> None:
    for path in ("/ui/", "/ui/js/app.js", "/ui", "/"):
        r = requests.get(no_ui.addr + path, allow_redirects=False, timeout=5)
        assert r.status_code == 404 and r.json() == {"errors": []}, path
        assert "content-security-policy" not in r.headers
    assert requests.get(no_ui.addr + "/v1/sys/seal-status", timeout=5).status_code == 200
