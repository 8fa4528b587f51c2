"""The HTTP/1.1 protocol ``threadline serve`` runs: uvicorn's httptools protocol, with JSON
answers for the requests that never reach the app, and limits on the request head.

``threadline serve`` pins httptools (the faster of uvicorn's two parsers) rather than letting
uvicorn pick whichever is installed, so that these answers do not depend on the install.

A request the parser refuses (a malformed request line, a bad ``Content-Length``, both
``Content-Length`` and ``Transfer-Encoding``) is answered by the server itself, not the app.
uvicorn answers it in plain text; here it gets the API's error shape, like every other error:
``{"error": {"code": "bad_request", ...}}``. httptools sets no limit on the request head, so
these limits are ours: a URL over ``MAX_URL_BYTES`` answers 414, a head (request line and
headers) over ``MAX_HEAD_BYTES`` answers 431, both before the app sees the request and before
the head is held in memory.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_URL_BYTES = 16 * 1024
MAX_HEAD_BYTES = 64 * 1024

_ANSWERS = {
    400: ("Bad Request", "bad_request", "the request is not valid HTTP/1.1"),
    414: ("URI Too Long", "uri_too_long", f"the URL is over {MAX_URL_BYTES} bytes"),
    431: (
        "Request Header Fields Too Large",
        "headers_too_large",
        f"the request line and headers are over {MAX_HEAD_BYTES} bytes",
    ),
}


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over a limit."""


class HttpToolsJSONProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering what the parser refuses with the API's JSON
    error shape, and refusing request heads over the limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request line and headers, not a body
        self._head_bytes = 0  # bytes received while reading the head
        self._header_bytes = 0  # bytes of the headers parsed so far
        self._refusal = 400

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refusal = 414
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if len(self.url) + self._header_bytes > MAX_HEAD_BYTES:
            self._refusal = 431
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        self._refuse(self._refusal)

    def _refuse(self, status: int) -> None:
        reason, code, message = _ANSWERS[status]
        body = json.dumps({"error": {"code": code, "message": message, "details": None}}).encode()
        head = [f"HTTP/1.1 {status} {reason}\r\n".encode()]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
