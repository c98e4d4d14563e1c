"""The application shell of one listener: the Vault API at /v1, the web UI at /ui.

The dispatch on the path prefix comes first and is a plain ASGI callable, so a `/v1/...`
request goes straight to the API's own ASGI app (the QuotaGate / ForwardingGate / VaultApp
chain of transit/server.py) without touching Starlette. Only `/`, `/ui` and `/ui/...` reach
the Starlette app that serves the static files; every other path goes to the API app, which
answers 404 `{"errors":[]}` as Vault does. With `ui = false` the shell is not used at all.

Every node serves the UI itself (a standby does not forward it): the UI's own API calls go
through the node's API app, forwarded to the active node like any client's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"

# No inline script or style anywhere (the UI sets no style attribute and loads only its own
# files); the page may talk only to its own origin (the /v1 API) and cannot be framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),  # as Vault's UI: a new version is never served stale
)

Scope = dict[str, Any]


class _SecurityHeaders:
    """Adds SECURITY_HEADERS to every response of the UI app (pure ASGI: wraps `send`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _ToUI:
    """`/` and `/ui` answer 307 to `/ui/` (any method), as Vault does with the UI on."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await RedirectResponse("/ui/", status_code=307)(scope, receive, send)


async def _vault_error(request: Request, exc: Exception) -> Response:
    """A refused /ui request (no such file: 404, not GET or HEAD: 405) answers in Vault's
    error body, `{"errors":[]}`, like every other error of the server."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return Response(b'{"errors":[]}', status, media_type="application/json")


def ui_app(static_dir: Path = STATIC_DIR) -> Any:
    """The Starlette app of the UI: redirects and the static files (StaticFiles refuses a
    path that resolves outside `static_dir`, `..` or a symlink alike: 404)."""
    to_ui = _ToUI()
    app = Starlette(routes=[
        Route("/", to_ui),
        Route("/ui", to_ui),
        Mount("/ui", app=StaticFiles(directory=static_dir, html=True)),
    ], exception_handlers={404: _vault_error, 405: _vault_error, 401: _vault_error})
    return _SecurityHeaders(app)


class Shell:
    """Path-prefix dispatch: `/v1/...` (checked first) and anything not the UI's to `api`."""

    __slots__ = ("api", "ui")

    def __init__(self, api: Any, ui: Any | None = None) -> None:
        self.api = api
        self.ui = ui if ui is not None else ui_app()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        if path.startswith("/v1/"):
            await self.api(scope, receive, send)
        elif (path == "/" or path == "/ui" or path.startswith("/ui/")) and path.isprintable():
            await self.ui(scope, receive, send)  # (a control character: the API's bare 400)
        else:
            await self.api(scope, receive, send)


def with_ui(api: Any, enabled: bool) -> Any:
    """The listener's ASGI app: `api` alone when the UI is off (nothing in front of it)."""
    return Shell(api) if enabled else api
