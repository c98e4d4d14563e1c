"""Where a batch encrypt/decrypt request spends its CPU, in process (no HTTP server, no load
generator): the ASGI app of a dev node is called directly with one batch body, so the figure is
the server's own cost per item, from the JSON body to the JSON answer.

    .venv/bin/python bench/batch_profile.py                 # µs per item, encrypt and decrypt
    .venv/bin/python bench/batch_profile.py --profile out   # + pyinstrument HTML per operation

Compare with `python -m timeit` of one AES-GCM call of 64 B (about 1 µs here): everything above
that is JSON, base64, field decoding and bookkeeping.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
from typing import Any

import orjson

from transit.api.app import VaultApp
from transit.config import StorageConfig
from transit.core import Core
from transit.storage.factory import create_backend


async def _dev_app() -> tuple[VaultApp, str]:
    core = Core(create_backend(StorageConfig(type="inmem")), storage_type="inmem")
    token, _ = await core.setup_dev("root")
    return VaultApp(core), token


def _caller(app: VaultApp, token: str) -> Any:
    async def call(path: str, body: bytes) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []
        done = False

        async def receive() -> dict[str, Any]:
            nonlocal done
            if done:
                await asyncio.sleep(3600)
            done = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
            "query_string": b"", "client": ("127.0.0.1", 1),
            "headers": [(b"x-vault-token", token.encode()),
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
        }
        await app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])
    return call


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=250)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--key-type", default="aes256-gcm96")
    ap.add_argument("--profile", metavar="DIR", help="write pyinstrument HTML here")
    args = ap.parse_args()
    app, token = await _dev_app()
    call = _caller(app, token)
    status, _ = await call("/v1/transit/keys/bench", orjson.dumps({"type": args.key_type}))
    assert status in (200, 204), status
    pt = base64.b64encode(os.urandom(args.size)).decode()
    enc_body = orjson.dumps({"batch_input": [{"plaintext": pt}] * args.items})
    status, out = await call("/v1/transit/encrypt/bench", enc_body)
    assert status == 200, out
    cts = [r["ciphertext"] for r in orjson.loads(out)["data"]["batch_results"]]
    dec_body = orjson.dumps({"batch_input": [{"ciphertext": c} for c in cts]})
    for op, body in (("encrypt", enc_body), ("decrypt", dec_body)):
        path = f"/v1/transit/{op}/bench"
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002, async_mode="disabled")
            profiler.start()
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            status, _ = await call(path, body)
            assert status == 200
            n += 1
        elapsed = time.perf_counter() - start
        if profiler is not None:
            profiler.stop()
            os.makedirs(args.profile, exist_ok=True)
            with open(os.path.join(args.profile, f"batch-{op}.html"), "w") as f:
                f.write(profiler.output_html())
        per_item = elapsed / (n * args.items) * 1e6
        print(f"{op:8s} {args.items} x {args.size} B: {n / elapsed:8.1f} req/s "
              f"{n * args.items / elapsed:10.0f} items/s {per_item:6.2f} µs/item (one core)")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
