"""uvicorn's httptools protocol, taught Vault's `LIST` verb.

llhttp (behind httptools) rejects methods it does not know, and hvac sends the literal
`LIST` verb. h11 would accept it but is about three times slower, so instead: when a request
starts with `LIST ` at a message boundary, feed the parser `GET ` and restore the method in
the ASGI scope before the app task runs. A `LIST` in the middle of a pipelined chunk is not
recognised (clients such as hvac, requests and the Go client do not pipeline).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class VaultHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at_boundary = True
        self._list_pending = False

    def data_received(self, data: bytes) -> None:
        if self._at_boundary and data[:5] == b"LIST ":
            data = b"GET " + data[5:]
            self._list_pending = True
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._at_boundary = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        # The scope dict is shared with the request cycle whose task has been created but
        # not run yet, so the method can still be put back.
        if self._list_pending:
            self._list_pending = False
            scope = self.scope
            super().on_headers_complete()
            scope["method"] = "LIST"
        else:
            super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._at_boundary = True
        super().on_message_complete()
