"""transit/ui/shell.py in process: which app each path reaches (the /v1 prefix never touches
the UI app), and `with_ui` leaving the API app alone when the UI is off."""

from __future__ import annotations

import asyncio
from typing import Any

from transit.ui.shell import Shell, with_ui


class _Recorder:
    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])


def test_dispatch_by_prefix() -> None:
    api, ui = _Recorder(), _Recorder()
    shell = Shell(api, ui)
    paths = ["/v1/transit/encrypt/k", "/v1/ui/x", "/", "/ui", "/ui/", "/ui/js/app.js", "/uix",
             "/v1", "/elsewhere", "/v2/ui/", "/ui/\x01", "/ui\x85"]
    for path in paths:
        asyncio.run(shell({"type": "http", "path": path}, None, None))
    assert ui.paths == ["/", "/ui", "/ui/", "/ui/js/app.js"]
    assert api.paths == ["/v1/transit/encrypt/k", "/v1/ui/x", "/uix", "/v1", "/elsewhere",
                         "/v2/ui/", "/ui/\x01", "/ui\x85"]


def test_with_ui_off_is_the_api_app_itself() -> None:
    api = _Recorder()
    assert with_ui(api, False) is api
    assert isinstance(with_ui(api, True), Shell)
