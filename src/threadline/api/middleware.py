"""ASGI middleware: request guards (body size, content type) and metrics with access logs."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.api.errors import error_response
from threadline.logs import get_logger
from threadline.metrics import Metrics

log = get_logger("threadline.access")

_BODY_METHODS = {b"POST", b"PUT", b"PATCH"}


class RequestGuard:
    """Answers 413 for a body over the limit and 415 for a /v1 body that is not JSON."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].encode() not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await self._too_large(scope, receive, send)
            return
        if scope["path"].startswith("/v1/") and length != b"0":
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if ctype != b"application/json" and not ctype.endswith(b"+json"):
                await _reject(
                    scope,
                    receive,
                    send,
                    415,
                    "unsupported_media_type",
                    "send the body as JSON with 'Content-Type: application/json'",
                )
                return
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body"):
                break
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is over {self.max_body_bytes} bytes"
        await _reject(scope, receive, send, 413, "payload_too_large", message)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the already-read body to the app once, then pass through (for disconnects)."""
    sent = False

    async def wrapped() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return wrapped


async def _reject(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, msg: str
) -> None:
    await error_response(status, code, msg)(scope, receive, send)


class Observability:
    """Counts and times every request by route template, and writes one access-log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = _route(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            log.info(
                "request", method=method, route=route, status=status, ms=round(elapsed * 1000, 2)
            )


def _route(scope: MutableMapping[str, Any]) -> str:
    """The route template (``/v1/conversations/{conversation_id}``), never raw ids.

    A route inside an included router knows its template without the router's prefix, so
    the prefix is taken from the leading segments of the real path.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if template is None:
        return "unmatched"  # keeps label cardinality bounded for scanners and typos
    segments = scope.get("path", "").strip("/").split("/")
    own = template.strip("/").split("/") if template.strip("/") else []
    prefix = segments[: len(segments) - len(own)]
    return "/" + "/".join(prefix + own) if prefix or own else "/"
