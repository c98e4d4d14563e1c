"""Small helpers for the tools/hmac/sign/export/backup/byok integration tests."""

from __future__ import annotations

import base64
from typing import Any

import requests

from tests.helpers import ServerProcess

JSON = "application/json"


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def api(server: ServerProcess, method: str, mount: str, path: str, **kw: Any) -> requests.Response:
    return server.request(method, f"{mount}/{path}", **kw)


def ok(r: requests.Response) -> dict[str, Any]:
    """The `data` of a 200 envelope (checks status and Content-Type)."""
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == JSON
    return r.json()["data"]


def errors_of(r: requests.Response, status: int) -> list[str]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == JSON
    body = r.json()
    assert set(body) == {"errors"}, body
    return body["errors"]


def error(r: requests.Response, status: int = 400) -> str:
    errs = errors_of(r, status)
    assert len(errs) == 1, errs
    return errs[0]


def wrapped(message: str) -> str:
    return f"1 error occurred:\n\t* {message}\n\n"
