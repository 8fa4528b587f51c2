"""The public web-chat endpoints a website's widget calls, and the widget script itself.

- ``GET /widget.js``: the script a site adds with one tag
  (``<script src=".../widget.js" data-inbox="INBOX_ID" async></script>``);
- ``GET /widget/{inbox}``: what the widget shows before a session (the inbox's title, greeting);
- ``POST /widget/{inbox}/sessions`` ``{name, email, page}``: 201 ``{token, conversation_id}``;
- ``POST /widget/{inbox}/messages`` ``{content, client_id}`` with ``Authorization: Bearer
  TOKEN``: 201 the message (200 for a retry of the same ``client_id``);
- ``GET /widget/{inbox}/messages`` (same header; ``after_seq``): ``{data, last_seq}``;
- ``GET /widget/{inbox}/stream?token=TOKEN&after_seq=N``: server-sent ``message`` events
  (id = the message's seq, so a reconnecting EventSource resumes by ``Last-Event-ID``).

Every answer, preflight included, is for the origins in the inbox's ``allowed_origins`` only
(403 for others, and for a token of another inbox). Errors are the API's JSON errors, with the
CORS headers so the widget can read them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from threadline.api.errors import error_response
from threadline.domain import errors
from threadline.store import events
from threadline.store.inboxes import Located
from threadline.web import widget
from threadline.web.eventhub import hub_for
from threadline.web.templating import STATIC

router = APIRouter(include_in_schema=False)

SCRIPT = STATIC / "widget.js"
#: A stream reads the conversation again after this long without a signal from the hub.
RECHECK_SECONDS = 15.0
_STATUS = (
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.InvalidInput, 422),
    (errors.Unavailable, 503),
)


class SessionStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    page: str | None = Field(None, max_length=2_000, description="The page the chat began on.")


class VisitorMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(..., max_length=widget.MAX_CHARS)
    client_id: str | None = Field(None, max_length=64)


def _limiter(request: Request) -> widget.RateLimiter:
    state = request.app.state
    limiter = getattr(state, "widget_limiter", None)
    if limiter is None:
        limiter = state.widget_limiter = widget.RateLimiter()
    return limiter


def _cors(response: Response, origin: str | None) -> Response:
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
    response.headers["Vary"] = "Origin"
    return response


def _answer(request: Request, work: Callable[[], tuple[int, Any]]) -> Response:
    """Run ``work`` (which checks the origin first); its answer or its error, with CORS
    headers for an allowed origin."""
    origin = request.headers.get("origin")
    allowed: str | None = None
    try:
        allowed = origin if _origin_ok(request, origin) else None
        status, body = work()
        return _cors(JSONResponse(body, status_code=status), allowed)
    except widget.Refused as refused:
        headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after else None
        response: Response = error_response(
            refused.status, refused.code, refused.message, None, headers
        )
    except errors.ThreadlineError as exc:
        status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 400)
        response = error_response(status, exc.code, exc.message, exc.details or None)
    return _cors(response, allowed)


def _origin_ok(request: Request, origin: str | None) -> bool:
    inbox_id = _inbox_id(request.path_params["inbox_id"])
    located = widget.locate(request.app.state.db, request.app.state.settings, inbox_id)
    widget.check_origin(located, origin)
    request.state.located = located
    return True


def _inbox_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise widget.Refused(404, "not_found", "no web chat inbox with this id") from None


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


@router.get("/widget.js")
def script() -> Response:
    """The embeddable widget: plain JavaScript, cached for an hour."""
    return FileResponse(
        SCRIPT,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"},
    )


@router.options("/widget/{inbox_id}")
@router.options("/widget/{inbox_id}/{rest:path}")
def preflight(request: Request, inbox_id: str) -> Response:
    def work() -> tuple[int, Any]:
        return 204, None

    response = _answer(request, work)
    if response.status_code == 204:
        response = _cors(Response(status_code=204), request.headers.get("origin"))
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


@router.get("/widget/{inbox_id}")
def inbox_info(request: Request, inbox_id: str) -> Response:
    def work() -> tuple[int, Any]:
        located = request.state.located
        config = located.config.config
        return 200, {
            "title": str(config.get("title") or "Chat with us")[:80],
            "greeting": str(config.get("greeting") or "Hi! How can we help?")[:500],
        }

    return _answer(request, work)


@router.post("/widget/{inbox_id}/sessions")
def start_session(request: Request, inbox_id: str, body: SessionStart) -> Response:
    def work() -> tuple[int, Any]:
        located = request.state.located
        host = request.client.host if request.client else "unknown"
        _limiter(request).hit(f"session:{host}", widget.SESSIONS_PER_MINUTE)
        visitor, token = widget.start(
            request.app.state.db,
            request.app.state.settings,
            located,
            name=body.name,
            email=body.email,
            origin=request.headers.get("origin") or "",
            page=body.page,
        )
        return 201, {"token": token, "conversation_id": str(visitor.conversation_id)}

    return _answer(request, work)


@router.post("/widget/{inbox_id}/messages")
def send_message(
    request: Request,
    inbox_id: str,
    body: VisitorMessage,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    def work() -> tuple[int, Any]:
        located = request.state.located
        settings = request.app.state.settings
        visitor = widget.read_token(settings, _bearer(authorization), located.inbox_id)
        host = request.client.host if request.client else "unknown"
        limiter = _limiter(request)
        limiter.hit(f"visitor:{visitor.conversation_id}", widget.messages_per_minute(located))
        limiter.hit(f"ip:{host}", widget.IP_MESSAGES_PER_MINUTE)
        message, created = widget.send(
            request.app.state.ingest, located, visitor, body.content, body.client_id
        )
        return (201 if created else 200), message

    return _answer(request, work)


@router.get("/widget/{inbox_id}/messages")
def list_messages(
    request: Request,
    inbox_id: str,
    authorization: Annotated[str | None, Header()] = None,
    after_seq: Annotated[int | None, Query(ge=0, le=2**31 - 2)] = None,
) -> Response:
    def work() -> tuple[int, Any]:
        located = request.state.located
        visitor = widget.read_token(
            request.app.state.settings, _bearer(authorization), located.inbox_id
        )
        rows, last = widget.history(request.app.state.db, located.tenant_id, visitor, after_seq)
        return 200, {"data": rows, "last_seq": last}

    return _answer(request, work)


@router.get("/widget/{inbox_id}/stream", response_model=None)
async def stream(
    request: Request,
    inbox_id: str,
    token: Annotated[str | None, Query(max_length=1_000)] = None,
    after_seq: Annotated[int | None, Query(ge=0, le=2**31 - 2)] = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """The conversation's new messages as they are stored, for as long as the page is open."""

    def check() -> tuple[int, Any]:
        located = request.state.located
        request.state.visitor = widget.read_token(
            request.app.state.settings, token, located.inbox_id
        )
        return 200, None

    checked = await run_in_threadpool(_answer, request, check)
    if checked.status_code != 200:
        return checked
    located: Located = request.state.located
    visitor: widget.Visitor = request.state.visitor
    resume = last_event_id if last_event_id and last_event_id.isdigit() else None
    start = int(resume) if resume else after_seq
    db = request.app.state.db
    hub = hub_for(request.app.state)

    async def messages() -> AsyncIterator[ServerSentEvent]:
        cursor = start
        async with hub.subscribe(located.tenant_id) as queue:
            yield ServerSentEvent(event="ready", data="{}")
            while True:
                rows, last = await run_in_threadpool(
                    widget.history, db, located.tenant_id, visitor, cursor
                )
                if cursor is not None:  # no cursor: start after what the history showed
                    for message in rows:
                        yield ServerSentEvent(
                            event="message", data=json.dumps(message), id=str(message["seq"])
                        )
                cursor = last
                await _wait_for(queue, visitor.conversation_id)

    response = EventSourceResponse(
        messages(), ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    return _cors(response, request.headers.get("origin"))


async def _wait_for(queue: asyncio.Queue[list[dict[str, Any]]], conversation_id: uuid.UUID) -> None:
    """Until a message is stored in the conversation (or ``RECHECK_SECONDS`` pass)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECHECK_SECONDS
    while (left := deadline - loop.time()) > 0:
        try:
            batch = await asyncio.wait_for(queue.get(), timeout=left)
        except TimeoutError:
            return
        if any(
            e["type"] == events.MESSAGE_CREATED and e["conversation_id"] == conversation_id
            for e in batch
        ):
            return
