"""ASGI middleware: request ids, request guards (body size, content type, body read time) and
metrics with access logs."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

import anyio
import structlog
from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.api.errors import error_response
from threadline.logs import get_logger
from threadline.metrics import Metrics

log = get_logger("threadline.access")

_BODY_METHODS = {b"POST", b"PUT", b"PATCH"}

#: Status recorded for a request whose client went away before it was answered (nginx's).
CLIENT_CLOSED = 499

#: A request id a client may choose: what proxies and tracers send (UUIDs, nginx's 32 hex
#: digits, trace ids), and nothing that could break a log line.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}")


def _valid_request_id(value: str) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


class RequestId(CorrelationIdMiddleware):
    """Gives every request an id: the client's ``X-Request-ID`` when it is a valid one, else a
    new UUID. It goes back as ``X-Request-ID`` on every answer; ``Observability`` binds it to
    every log line written while the request is handled (``request_id``)."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(
            app,
            header_name="X-Request-ID",
            generator=lambda: str(uuid.uuid4()),
            validator=_valid_request_id,
        )


class RequestGuard:
    """Answers 413 for a body over the limit, 415 for a /v1 body that is not JSON, and 408 for
    a body that has not fully arrived ``body_timeout`` seconds after the request started."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

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
        body: bytes | None = None
        with anyio.move_on_after(self.body_timeout) as deadline:
            body = await self._read_body(receive)
        if deadline.cancelled_caught:
            # A client that stopped sending must not hold the connection: answer, and close.
            message = f"the request body did not arrive within {self.body_timeout:g} seconds"
            response = error_response(
                408, "request_timeout", message, headers={"Connection": "close"}
            )
            await response(scope, receive, send)
        elif body is None:
            return  # the client went away: there is no one to answer
        elif len(body) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
        else:
            await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or what was read once it is over the limit (the caller answers
        413); None if the client went away."""
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes or not message.get("more_body"):
                return body

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
    """Counts and times every request by route template, and writes one access-log line.

    Every log line written while the request is handled carries its ``request_id``. A request
    whose client went away before it was answered counts as 499, not as a server error.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # structlog's way: each request starts with a clean logging context of its own (a
        # request runs in its own task, so nothing leaks into another). Left bound, it still
        # reaches the 500 handler, which runs outside every middleware.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=correlation_id.get())
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status = status or 500
            raise
        finally:
            # The app returns without answering only when the client went away first.
            status = status or CLIENT_CLOSED
            elapsed = time.perf_counter() - start
            route = _route(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            ms = round(elapsed * 1000, 2)
            log.info("request", method=method, route=route, status=status, ms=ms)


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
