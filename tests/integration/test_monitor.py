"""`GET /v1/sys/monitor` with a real `transit server` (operations-api §5.1): a token with
read, bad parameters, and a stream of hclog lines (JSON on request) that ends when the node
seals."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import requests

from tests.helpers import ServerProcess


def test_monitor_streams_log_lines_until_sealed(tmp_path: Path) -> None:
    srv = ServerProcess.dev(tmp_path).start()
    try:
        assert requests.get(f"{srv.addr}/v1/sys/monitor", timeout=10).status_code == 403
        r = srv.request("GET", "sys/monitor", params={"log_level": "loud"})
        assert r.status_code == 400 and r.json() == {"errors": ["unknown log level"]}
        r = srv.request("GET", "sys/monitor", params={"log_format": "xml"})
        assert r.status_code == 400 and r.json() == {"errors": ["unknown log format"]}

        r = requests.get(f"{srv.addr}/v1/sys/monitor", params={"log_format": "json"},
                         headers={"X-Vault-Token": srv.token}, stream=True, timeout=20)
        assert r.status_code == 200
        assert "content-type" not in r.headers
        assert r.headers["transfer-encoding"] == "chunked"
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(
            x.decode() for x in r.iter_lines() if x))
        reader.start()
        assert srv.request("PUT", "sys/seal").status_code == 204
        reader.join(10)  # the stream ends once the node is sealed (checked every second)
        assert not reader.is_alive()
        messages = [json.loads(x) for x in lines]
        assert any(m["@message"].startswith("sealing the node") and m["@module"] == "core"
                   and m["@level"] == "info" for m in messages), lines
    finally:
        srv.stop()
