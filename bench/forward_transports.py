"""Forwarding transport candidates, measured alone: CPU per request on the client (the
standby's side) and on the server (the active's side), over the cluster's mutual TLS.

    .venv/bin/pip install --target /tmp/fwlib h2==4.4.1 hypercorn==0.18.0 grpcio==1.85.4
    (aiohttp comes with the `bench` extra)
    PYTHONPATH=/tmp/fwlib .venv/bin/python bench/forward_transports.py [--requests 20000]
        [--conc 32] [--only aiohttp,httpx1,...]

For each candidate a server process and a client process (uvloop where the library allows)
on loopback; the client keeps `--conc` requests in flight (a 64 B encrypt-sized body and a
Vault-sized JSON answer, four request headers) and reports req/s and the CPU seconds
(getrusage, every thread) per request of both processes. The server answers from a trivial
ASGI app (or gRPC handler), so the server column is the transport's own cost.

| candidate | client | server |
| --- | --- | --- |
| `httpx1` | httpx AsyncClient, HTTP/1.1 pool (the transport before 2026-12-07) | uvicorn + httptools (our cluster listener) |
| `httpcore` | httpcore AsyncConnectionPool directly (no httpx layer) | uvicorn + httptools |
| `httpx2` | httpx AsyncClient with http2=True (h2) | hypercorn (h2) |
| `grpc` | grpcio aio unary call, request fields in metadata, body as bytes | grpc.aio server |
| `aiohttp` | aiohttp ClientSession (HTTP/1.1 pool) | uvicorn + httptools |
| `forwarder` | transit.cluster.forward.Forwarder as committed (transit.cluster.h1client since 2026-12-07 night; aiohttp before) | uvicorn + httptools |

The TLS identity is a `LeaderRecord` (P-521 ECDSA, as advertised by an active node), except
for grpc: gRPC's BoringSSL refuses the P-521 signature algorithms (handshake error
NO_COMMON_SIGNATURE_ALGORITHMS), so it runs with a P-256 certificate made the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transit.cluster.advert import (  # noqa: E402
    LeaderRecord,
    ssl_client_context,
    ssl_server_context,
)

ANSWER = (b'{"request_id":"9c2b0b0e-2b4a-4c1f-9f3e-000000000000","lease_id":"","renewable":false,'
          b'"lease_duration":0,"data":{"ciphertext":"vault:v1:' + b"A" * 120 +
          b'","key_version":1},"wrap_info":null,"warnings":null,"auth":null}')
BODY = b'{"plaintext":"' + b"QUFB" * 21 + b'QQ=="}'
HEADERS = [(b"x-vault-token", b"hvs." + b"x" * 92), (b"content-type", b"application/json"),
           (b"user-agent", b"wrk"), (b"x-vault-forwarded-by", b"node-1")]
PATH = "/v1/transit/encrypt/bench"
SERVER_OF = {"httpx1": "uvicorn", "httpcore": "uvicorn", "httpx2": "hypercorn", "grpc": "grpc",
             "aiohttp": "uvicorn", "forwarder": "uvicorn"}


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": ANSWER})


async def _report_cpu(path: Path) -> None:
    while True:
        path.write_text(f"{cpu():.6f}")
        await asyncio.sleep(0.1)


async def serve(kind: str, rec: LeaderRecord, port: int, cpu_file: Path) -> None:
    asyncio.ensure_future(_report_cpu(cpu_file))
    if kind == "uvicorn":
        import uvicorn

        from transit.api.protocol import VaultHttpToolsProtocol
        cfg = uvicorn.Config(app, host="127.0.0.1", port=port, loop="none",
                             http=VaultHttpToolsProtocol, lifespan="off", access_log=False,
                             log_level="warning",
                             ssl_context_factory=lambda _c, _d: ssl_server_context(rec))
        await uvicorn.Server(cfg).serve()
    elif kind == "hypercorn":
        from hypercorn.asyncio import serve as hserve
        from hypercorn.config import Config
        d = Path(tempfile.mkdtemp())
        (d / "c.pem").write_text(rec.cert_pem)
        (d / "k.pem").write_text(rec.key_pem)
        c = Config()
        c.certfile, c.keyfile, c.ca_certs = str(d / "c.pem"), str(d / "k.pem"), str(d / "c.pem")
        c.verify_mode = ssl.CERT_REQUIRED
        c.bind = [f"127.0.0.1:{port}"]
        c.keep_alive_max_requests = 10**9  # default 1,000 streams, then GOAWAY
        c.h2_max_concurrent_streams = 1000
        c.accesslog = None
        await hserve(app, c)  # type: ignore[arg-type]
    else:
        import grpc

        creds = grpc.ssl_server_credentials(
            [(rec.key_pem.encode(), rec.cert_pem.encode())],
            root_certificates=rec.cert_pem.encode(), require_client_auth=True)

        async def handle(body: bytes, context: Any) -> bytes:
            dict(context.invocation_metadata())
            context.set_trailing_metadata((("status", "200"),
                                           ("x-content-type", "application/json")))
            return ANSWER

        handler = grpc.method_handlers_generic_handler("transit.Forwarding", {
            "Forward": grpc.unary_unary_rpc_method_handler(handle)})
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        server.add_secure_port(f"127.0.0.1:{port}", creds)
        await server.start()
        await server.wait_for_termination()


def client_call(kind: str, rec: LeaderRecord, port: int) -> Any:
    """An async function sending one request with `kind`."""
    url = f"https://127.0.0.1:{port}{PATH}"
    if kind in ("httpx1", "httpx2"):
        import httpx
        cl = httpx.AsyncClient(verify=ssl_client_context(rec), http1=kind == "httpx1",
                               http2=kind == "httpx2", trust_env=False,
                               limits=httpx.Limits(max_connections=100,
                                                   max_keepalive_connections=100))

        async def one_httpx() -> None:
            r = await cl.send(cl.build_request("POST", url, headers=HEADERS, content=BODY,
                                               extensions={"sni_hostname": rec.tls_name}),
                              stream=True)
            [c async for c in r.aiter_raw()]
            await r.aclose()
            assert r.status_code == 200
        return one_httpx
    if kind == "httpcore":
        import httpcore
        pool = httpcore.AsyncConnectionPool(ssl_context=ssl_client_context(rec),
                                            max_connections=100)

        async def one_httpcore() -> None:
            r = await pool.request("POST", url, headers=HEADERS, content=BODY,
                                   extensions={"sni_hostname": rec.tls_name})
            assert r.status == 200
        return one_httpcore
    if kind == "aiohttp":
        import aiohttp
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_client_context(rec), limit=100),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))
        hd = [(k.decode(), v.decode()) for k, v in HEADERS]

        async def one_aiohttp() -> None:
            async with session.request("POST", url, headers=hd, data=BODY,
                                       server_hostname=rec.tls_name) as r:
                await r.read()
                assert r.status == 200
        return one_aiohttp
    if kind == "forwarder":
        from transit.cluster.forward import Forwarder
        fwd = Forwarder("node-1")
        live = LeaderRecord(rec.node_id, rec.api_addr, f"127.0.0.1:{port}", rec.cert_pem,
                            rec.key_pem)

        async def one_forwarder() -> None:
            status, _h, _b = await fwd.forward(live, "POST", PATH, list(HEADERS[:3]), BODY)
            assert status == 200
        return one_forwarder
    import grpc
    creds = grpc.ssl_channel_credentials(
        root_certificates=rec.cert_pem.encode(), private_key=rec.key_pem.encode(),
        certificate_chain=rec.cert_pem.encode())
    channel = grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=(
        ("grpc.ssl_target_name_override", rec.tls_name),))
    call = channel.unary_unary("/transit.Forwarding/Forward")
    md = [("x-path", PATH)] + [(k.decode(), v.decode()) for k, v in HEADERS
                               if k != b"content-type"]

    async def one_grpc() -> None:
        c = call(BODY, metadata=md)
        await c
        await c.trailing_metadata()
    return one_grpc


async def drive(kind: str, rec: LeaderRecord, port: int, conc: int, total: int,
                cpu_file: Path) -> dict[str, Any]:
    one = client_call(kind, rec, port)

    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    await asyncio.gather(*(worker(50) for _ in range(conc)))  # warm-up, connections open
    s0, c0, t0 = float(cpu_file.read_text()), cpu(), time.perf_counter()
    await asyncio.gather(*(worker(total // conc) for _ in range(conc)))
    t1, c1 = time.perf_counter(), cpu()
    await asyncio.sleep(0.3)
    s1, n = float(cpu_file.read_text()), (total // conc) * conc
    return {"kind": kind, "server": SERVER_OF[kind], "rps": round(n / (t1 - t0)),
            "client_us": round((c1 - c0) / n * 1e6, 1),
            "server_us": round((s1 - s0) / n * 1e6, 1)}


def run_loop(coro: Any, kind: str) -> Any:
    if kind == "grpc":  # grpc.aio runs on asyncio's own loop
        return asyncio.run(coro)
    import uvloop
    return uvloop.run(coro)


def record_for(kind: str) -> LeaderRecord:
    if kind != "grpc":
        return LeaderRecord.create("n0", "https://a:8200", "")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    import transit.cluster.advert as advert
    p521, sha512 = advert.ec.SECP521R1, advert.hashes.SHA512
    advert.ec.SECP521R1, advert.hashes.SHA512 = ec.SECP256R1, hashes.SHA256  # type: ignore
    try:
        return LeaderRecord.create("n0", "https://a:8200", "")
    finally:
        advert.ec.SECP521R1, advert.hashes.SHA512 = p521, sha512  # type: ignore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--conc", type=int, default=32)
    ap.add_argument("--only", default=",".join(SERVER_OF))
    ap.add_argument("--role", default="", help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--work", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        work = Path(args.work)
        rec = LeaderRecord.from_json((work / "record.json").read_bytes())
        if args.role == "server":
            run_loop(serve(SERVER_OF[args.kind], rec, args.port, work / "server.cpu"),
                     args.kind)
        else:
            out = run_loop(drive(args.kind, rec, args.port, args.conc, args.requests,
                                 work / "server.cpu"), args.kind)
            print(json.dumps(out))
        return
    print("| candidate | server | req/s | client CPU µs/req | server CPU µs/req |")
    print("| --- | --- | --- | --- | --- |")
    for kind in args.only.split(","):
        work = Path(tempfile.mkdtemp(prefix="fwt-"))
        (work / "record.json").write_bytes(record_for(kind).to_json())
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        me = [sys.executable, __file__, "--kind", kind, "--port", str(port), "--work",
              str(work), "--conc", str(args.conc), "--requests", str(args.requests)]
        env = {**os.environ, "GRPC_VERBOSITY": "NONE"}
        server = subprocess.Popen([*me, "--role", "server"], env=env,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not (work / "server.cpu").exists() or time.monotonic() < deadline - 18:
                time.sleep(0.1)
            time.sleep(1.0)
            res = subprocess.run([*me, "--role", "client"], env=env, capture_output=True,
                                 text=True, timeout=600)
            line = res.stdout.strip().splitlines()[-1:] or ["{}"]
            try:
                r = json.loads(line[0])
                print(f"| {kind} | {r['server']} | {r['rps']:,} | {r['client_us']} | "
                      f"{r['server_us']} |")
            except (ValueError, KeyError):
                print(f"| {kind} | {SERVER_OF[kind]} | failed: {res.stderr.strip()[-200:]} | | |")
            sys.stdout.flush()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
