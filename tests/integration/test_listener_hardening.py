"""Listener hardening against real `transit server` processes over real sockets: the `http_*`
timeouts, the header-size cap (431), the connection cap, max_request_duration, and TLS
(versions, cipher suites, client certificates)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import ROOT, ServerProcess, free_port, init_and_unseal

# -- helpers -------------------------------------------------------------------------------


def _start(tmp: Path, name: str, text: str, port: int) -> ServerProcess:
    cfg = tmp / f"{name}.hcl"
    cfg.write_text(text)
    return ServerProcess(["server", f"-config={cfg}"], port, log=tmp / f"{name}.log").start()


def _plain(port: int, extra: str = "") -> str:
    return (f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n'
            f"{extra}}}\n")


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _request(path: str, token: str = "", body: bytes = b"", method: str = "GET") -> bytes:
    head = f"{method} /v1/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if token:
        head += f"X-Vault-Token: {token}\r\n"
    if body or method in ("POST", "PUT"):
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response, Content-Length or chunked: (status, body)."""
    data = b""

    def more() -> None:
        nonlocal data
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data[:300]!r}"
        data += chunk

    while b"\r\n\r\n" not in data:
        more()
    head, _, data = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if "content-length" in headers:
        while len(data) < int(headers["content-length"]):
            more()
        return int(lines[0].split()[1]), data
    body = b""
    while True:  # chunked
        while b"\r\n" not in data:
            more()
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        while len(data) < size + 2:
            more()
        body, data = body + data[:size], data[size + 2:]
        if size == 0:
            return int(lines[0].split()[1]), body


def _until_closed(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Read until the peer closes (EOF or reset); (seconds it took, bytes read). Fails if the
    socket is still open after `limit` seconds."""
    start = time.monotonic()
    data = b""
    sock.settimeout(limit)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"connection still open after {limit}s")
    return time.monotonic() - start, data


def _closed_while_trickling(sock: socket.socket, pieces: list[bytes], every: float) -> tuple[
        float, bytes]:
    """Send `pieces` one per `every` seconds until the server closes the connection; (seconds
    until it did, what it answered). Fails if every piece went through and it is still open."""
    start = time.monotonic()
    data = b""
    for piece in pieces:
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start, data
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic() - start, data
            if not chunk:
                return time.monotonic() - start, data
            data += chunk
            _, rest = _until_closed(sock, 5)
            return time.monotonic() - start, data + rest
    pytest.fail(f"still open after {len(pieces)} pieces over {len(pieces) * every:.0f}s")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- timeouts, header cap, request duration -----------------------------------------------


class Tight:
    def __init__(self, srv: ServerProcess, ports: list[int], token: str) -> None:
        self.srv, self.token = srv, token
        self.port, self.deadline_port, self.write_port = ports


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tight]:
    """A server with default_max_request_duration = 1s and four listeners: setup (defaults,
    but max_request_duration = 60s), `port` (short read and idle timeouts, 60 s too),
    `deadline_port` (the 1 s default) and `write_port` (a 1 s write timeout, 60 s)."""
    tmp = tmp_path_factory.mktemp("tight")
    setup, *ports = (free_port() for _ in range(4))
    port, deadline, write = ports
    srv = _start(tmp, "tight", 'storage "inmem" {}\ndefault_max_request_duration = "1s"\n'
                 + _plain(setup, '  max_request_duration = "60s"\n')
                 + _plain(port, '  http_idle_timeout = "1s"\n  http_read_header_timeout = 1\n'
                                '  http_read_timeout = "2s"\n  max_request_duration = 60\n')
                 + _plain(deadline)
                 + _plain(write, '  http_write_timeout = "1s"\n  max_request_duration = 60\n'),
                 setup)
    try:
        token = init_and_unseal(srv)["root_token"]
        assert srv.request("POST", "sys/mounts/transit", json={"type": "transit"}).status_code == 204
        yield Tight(srv, ports, token)
    finally:
        srv.stop()


def test_idle_connections_are_closed(tight: Tight) -> None:
    # a keep-alive connection, idle after its answer: closed after http_idle_timeout (1 s).
    # Not closed at once: a second request is served on it (an ordering proof, where a
    # measured lower bound would shrink whenever this client is descheduled). Closed by the
    # server: _until_closed fails if it is still open at its polling limit.
    with _connect(tight.port) as sock:
        sock.sendall(_request("sys/health"))
        assert _read_response(sock)[0] == 200
        sock.sendall(_request("sys/health"))
        assert _read_response(sock)[0] == 200
        _, data = _until_closed(sock, 15)
        assert data == b""
    # a connection that never sends a byte: closed after http_read_header_timeout (1 s)
    with _connect(tight.port) as sock:
        _, data = _until_closed(sock, 15)
        assert data == b""


def test_slowloris_headers_are_cut_off(tight: Tight) -> None:
    """Headers trickled in: closed after http_read_header_timeout, without an answer (Go)."""
    # Timed from before the connection exists, the server's 1 s timer starts later and the
    # close is seen later still: a causal lower bound that load cannot break. Cut off at all:
    # the helper fails if the 50 pieces (10 s) all went through.
    started = time.monotonic()
    with _connect(tight.port) as sock:
        pieces = [b"GET /v1/sys/health HTTP/1.1\r\n"] + [b"X-Slow-%d: x\r\n" % i for i in range(50)]
        _, data = _closed_while_trickling(sock, pieces, 0.2)
    assert data == b""
    assert time.monotonic() - started > 0.5
    with _connect(tight.port) as sock:  # the server goes on serving
        sock.sendall(_request("sys/health"))
        assert _read_response(sock)[0] == 200


def test_slow_body_is_cut_off_and_never_handled(tight: Tight) -> None:
    """A body trickled in: cut off after http_read_timeout (2 s from the request's start),
    answered 408 when the answer gets through; the truncated request is never handled."""
    body = json.dumps({"plaintext": "aGVsbG8=" * 20}).encode()
    # Causal lower bound as above (timed from before the connection, the 2 s count starts
    # later); cut off at all: the helper fails if the whole body (~35 s) went through, well
    # short of this listener's 60 s max_request_duration.
    started = time.monotonic()
    with _connect(tight.port) as sock:
        sock.sendall(_request("transit/encrypt/slowbody", tight.token, body, "POST")[:-len(body)])
        pieces = [body[i:i + 1] for i in range(len(body) - 1)]  # never the last byte
        _, data = _closed_while_trickling(sock, pieces, 0.2)
    assert time.monotonic() - started > 1
    if data:  # the client may see a reset instead: it was still sending
        assert data.startswith(b"HTTP/1.1 408 "), data
        assert b'{"errors":["timed out reading the request body"]}' in data
    r = tight.srv.request("GET", "transit/keys/slowbody")
    assert r.status_code == 404, r.text  # encrypt would have created the key


def test_oversized_headers_get_431(tight: Tight) -> None:
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(2100))  # > 2 MiB
    with _connect(tight.port) as sock:
        try:
            sock.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n" + pad + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        _, data = _until_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 431 "), data[:200]
    assert data.endswith(b'{"errors":["request header fields too large"]}')
    # headers well under the cap (1 MiB + 4 KiB) are fine, and a fresh connection works
    half = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(500))
    with _connect(tight.port) as sock:
        sock.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n" + half + b"\r\n")
        assert _read_response(sock)[0] == 200
    with _connect(tight.port) as sock:
        sock.sendall(_request("sys/health"))
        assert _read_response(sock)[0] == 200


def test_a_pipelined_refusal_follows_the_answer_before_it(tight: Tight) -> None:
    # Requests read before a refused one on the same connection (pipelined), one still being
    # handled and one queued: their answers go out first, in order, then the 431, then the
    # close (Go answers in order; the refusal used to take the earlier answer's place).
    srv = tight.srv
    assert srv.request("POST", "transit/keys/pipe", json={"type": "rsa-2048"}).status_code in (
        200, 204)
    first = _request("transit/sign/pipe", tight.token, _sign_batch(600), "POST")  # ~0.4 s
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(2100))  # > 2 MiB
    second = _request("sys/health")  # read (and queued) before the oversized one
    with _connect(tight.port) as sock:
        try:
            sock.sendall(first + second + b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n" + pad
                         + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        _, data = _until_closed(sock, 20)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    answers, sep, refusal = data.partition(b"HTTP/1.1 431 ")
    assert sep, data[:300]
    signed, health = answers.split(b"HTTP/1.1 200 ")[1:]  # both answered, in order
    assert b'"batch_results"' in signed and b'"initialized"' in health
    assert refusal.endswith(b'{"errors":["request header fields too large"]}')


def _sign_batch(items: int) -> bytes:
    return json.dumps({"batch_input": [{"input": "aGVsbG8="}] * items}).encode()


def test_request_over_max_request_duration_is_answered_500_and_cancelled(tight: Tight) -> None:
    srv = tight.srv
    assert srv.request("POST", "transit/keys/slow", json={"type": "rsa-2048"}).status_code in (
        200, 204)
    body = _sign_batch(8000)  # ~0.7 ms of CPU each: several seconds of work
    with _connect(tight.deadline_port) as sock:
        sock.settimeout(30)
        sock.sendall(_request("transit/sign/slow", tight.token, body, "POST"))
        status, answer = _read_response(sock)
        # the deadline's own answer (only its timer writes it), not a stopwatch
        assert (status, answer) == (500, b'{"errors":["context deadline exceeded"]}')
        # the handler was cancelled: the server stops working on the batch
        assert srv.proc is not None
        before = _cpu_seconds(srv.proc.pid)
        time.sleep(1.5)
        assert _cpu_seconds(srv.proc.pid) - before < 0.5
        # and the connection stays usable
        sock.sendall(_request("sys/health"))
        assert _read_response(sock)[0] == 200


def test_listener_max_request_duration_overrides_the_default(tight: Tight) -> None:
    srv = tight.srv
    assert srv.request("POST", "transit/keys/slow2", json={"type": "rsa-2048"}).status_code in (
        200, 204)
    started = time.monotonic()
    r = srv.request("POST", "transit/sign/slow2", data=_sign_batch(6000))  # the 60 s listener
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]["batch_results"]) == 6000
    if time.monotonic() - started < 1.2:
        pytest.fail("the batch was too quick to show the 60 s override of the 1 s default")


def test_answer_not_written_within_the_write_timeout_closes_the_connection(
        tight: Tight) -> None:
    """http_write_timeout counts from the end of the headers to the end of the answer; a
    request that takes longer loses its connection without an answer (Go)."""
    assert tight.srv.request("POST", "transit/keys/slow3",
                             json={"type": "rsa-2048"}).status_code in (200, 204)
    with _connect(tight.write_port) as sock:
        sock.sendall(_request("transit/sign/slow3", tight.token, _sign_batch(6000), "POST"))
        # closed without an answer by the write timeout: _until_closed fails at its polling
        # limit, well short of this listener's 60 s max_request_duration
        _, data = _until_closed(sock, 15)
    assert data == b""
    with _connect(tight.write_port) as sock:  # quick answers are not affected
        sock.sendall(_request("sys/health"))
        assert _read_response(sock)[0] == 200


# -- connection cap ------------------------------------------------------------------------


def test_connections_over_the_cap_get_503(tmp_path: Path) -> None:
    port = free_port()
    srv = _start(tmp_path, "cap", 'storage "inmem" {}\n' + _plain(port, "  max_connections = 8\n"),
                 port)
    held: list[socket.socket] = []
    extra: list[socket.socket] = []
    try:
        for _ in range(8):  # 8 kept-alive connections, each known to the server
            sock = _connect(port)
            held.append(sock)
            sock.sendall(_request("sys/health"))
            assert _read_response(sock)[0] == 501  # not initialised: answered all the same
        with _connect(port) as ninth:
            ninth.sendall(_request("sys/health"))
            _, data = _until_closed(ninth, 10)
        assert data.startswith(b"HTTP/1.1 503 "), data
        assert data.endswith(b'{"errors":["too many open connections"]}')
        # a burst far over the cap: answered 503 or reset, and the server stays up
        for _ in range(60):
            extra.append(_connect(port))
        for sock in extra:
            try:
                sock.sendall(_request("sys/health"))
                _, data = _until_closed(sock, 10)
            except (BrokenPipeError, ConnectionResetError):
                data = b""
            assert data == b"" or data.startswith(b"HTTP/1.1 503 "), data
            sock.close()
        held[0].sendall(_request("sys/health"))
        assert _read_response(held[0])[0] == 501
        # one connection closed: a new one is served (once the server has seen the close)
        held.pop().close()
        for _ in range(50):
            with _connect(port) as sock:
                sock.sendall(_request("sys/health"))
                status, _ = _read_response(sock)
            if status != 503:
                break
            time.sleep(0.1)
        assert status == 501
        assert srv.proc is not None and srv.proc.poll() is None
    finally:
        for sock in held + extra:
            sock.close()
        srv.stop()


# -- TLS -----------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(tmp: Path, stem: str, cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
          | None = None, ca: bool = False) -> tuple[Path, Path, x509.Certificate,
                                                   ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder().subject_name(_name(cn))
        .issuer_name(signer_cert.subject if signer_cert else _name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    cert_path, key_path = tmp / f"{stem}.crt", tmp / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert, key


class TLSServer:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.server_cert, self.server_key, _, _ = _cert(tmp, "server", "localhost")
        _, _, ca_cert, ca_key = _cert(tmp, "client-ca", "client CA", ca=True)
        self.client_ca = tmp / "client-ca.crt"
        self.client_cert, self.client_key, _, _ = _cert(tmp, "client", "client",
                                                        issuer=(ca_cert, ca_key))
        self.rogue_cert, self.rogue_key, _, _ = _cert(tmp, "rogue", "client")
        self.plain, self.tls13, self.tls12_cipher, self.mtls = (free_port() for _ in range(4))

    def config(self) -> str:
        tls = f'  tls_cert_file = "{self.server_cert}"\n  tls_key_file = "{self.server_key}"\n'
        return ('storage "inmem" {}\n' + _plain(self.plain)
                + f'listener "tcp" {{\n  address = "127.0.0.1:{self.tls13}"\n{tls}'
                  '  tls_min_version = "tls13"\n}\n'
                + f'listener "tcp" {{\n  address = "127.0.0.1:{self.tls12_cipher}"\n{tls}'
                  '  tls_max_version = "tls12"\n'
                  '  tls_cipher_suites = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"\n}\n'
                + f'listener "tcp" {{\n  address = "127.0.0.1:{self.mtls}"\n{tls}'
                  '  tls_require_and_verify_client_cert = true\n'
                  f'  tls_client_ca_file = "{self.client_ca}"\n}}\n')

    def client(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.server_cert))
        if cert is not None:
            ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def get(self, port: int, ctx: ssl.SSLContext) -> tuple[str, str, str]:
        """(status line, TLS version, cipher) of GET sys/seal-status; raises on a refusal."""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(_request("sys/seal-status"))
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("closed without an answer")
                data += chunk
            return data.split(b"\r\n")[0].decode(), str(sock.version()), sock.cipher()[0]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    tmp = tmp_path_factory.mktemp("tls")
    t = TLSServer(tmp)
    srv = _start(tmp, "tls", t.config(), t.plain)
    try:
        yield t
    finally:
        srv.stop()


def test_tls_min_version(tls_server: TLSServer) -> None:
    status, version, _ = tls_server.get(tls_server.tls13, tls_server.client())
    assert status.startswith("HTTP/1.1 200") and version == "TLSv1.3"
    old = tls_server.client()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        tls_server.get(tls_server.tls13, old)


def test_tls_max_version_and_cipher_suites(tls_server: TLSServer) -> None:
    status, version, cipher = tls_server.get(tls_server.tls12_cipher, tls_server.client())
    assert status.startswith("HTTP/1.1 200")
    assert (version, cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
    other = tls_server.client()
    other.maximum_version = ssl.TLSVersion.TLSv1_2
    other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305")
    with pytest.raises(ssl.SSLError):
        tls_server.get(tls_server.tls12_cipher, other)


def test_mutual_tls(tls_server: TLSServer) -> None:
    t = tls_server
    status, _, _ = t.get(t.mtls, t.client(t.client_cert, t.client_key))
    assert status.startswith("HTTP/1.1 200")
    for ctx in (t.client(), t.client(t.rogue_cert, t.rogue_key)):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            t.get(t.mtls, ctx)
    # TLS 1.2 as well, where the refusal comes during the handshake
    old = t.client()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError)):
        t.get(t.mtls, old)


@pytest.mark.parametrize(("lines", "message"), [
    ('  tls_require_and_verify_client_cert = true\n  tls_client_ca_file = "/nonexistent/ca.pem"\n',
     "tls_client_ca_file"),
    ('  tls_require_and_verify_client_cert = true\n  tls_disable_client_certs = true\n',
     "mutually exclusive"),
    ('  x_forwarded_for_authorized_addrs = "10.0.0.0/8"\n', "x_forwarded_for_authorized_addrs"),
])
def test_tls_misconfiguration_stops_the_server(tmp_path: Path, lines: str, message: str) -> None:
    cert, key, _, _ = _cert(tmp_path, "server", "localhost")
    cfg = tmp_path / "bad.hcl"
    cfg.write_text(f'storage "inmem" {{}}\nlistener "tcp" {{\n  address = "127.0.0.1:{free_port()}"\n'
                   f'  tls_cert_file = "{cert}"\n  tls_key_file = "{key}"\n{lines}}}\n')
    out = subprocess.run([sys.executable, "-m", "transit", "server", f"-config={cfg}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert message in out.stderr
