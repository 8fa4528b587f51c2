"""The tenant's live event stream: ``GET /v1/events``.

With ``Accept: text/event-stream`` it streams server-sent events as they happen: each has
the event's id (send it back as ``Last-Event-ID`` to resume after a disconnect), its type
as the SSE event name, and a JSON body. Without it, the same events come as one JSON page
(``{"data", "next_cursor"}``) for clients that poll.

The stream reads the event log (``store/events.py``) through an index every
``POLL_SECONDS``, so it works the same behind any number of API processes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from threadline.api.deps import Ctx
from threadline.domain.errors import InvalidCursor
from threadline.schemas.common import QueryParams
from threadline.store import events

router = APIRouter(prefix="/events", tags=["events"])

POLL_SECONDS = 0.5


class EventQuery(QueryParams):
    after: str | None = Field(
        None,
        max_length=64,
        description="An event id: start after it (default: from now on "
        "for a stream, from the oldest kept for a page).",
    )
    types: str | None = Field(
        None, max_length=500, description="Comma-separated event types to keep."
    )
    limit: int = Field(100, ge=1, le=500, description="Page size (pages only).")


class EventRead(BaseModel):
    id: uuid.UUID
    type: str
    conversation_id: uuid.UUID | None
    data: dict[str, Any] | None
    created_at: datetime


class EventPage(BaseModel):
    data: list[EventRead]
    next_cursor: str | None = None


def _cursor(text: str | None) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidCursor("'after' is not an event id this server issued") from None


def _types(text: str | None) -> list[str] | None:
    if not text:
        return None
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    return wanted or None


@router.get(
    "",
    response_model=EventPage,
    responses={200: {"content": {"text/event-stream": {}}, "description": "A page, or a stream"}},
)
async def stream_events(
    request: Request,
    ctx: Ctx,
    query: Annotated[EventQuery, Query()],
    accept: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """What happens in your tenant: `message.created`, `message.status_updated`,
    `conversation.status_changed`, `conversation.escalated`, `suggestion.created`,
    `suggestion.decided`. Ask with `Accept: text/event-stream` to stream them live."""
    caller = await run_in_threadpool(ctx.caller)
    types = _types(query.types)
    cursor = _cursor(last_event_id or query.after)
    if "text/event-stream" not in (accept or ""):
        rows = await run_in_threadpool(
            events.after, ctx.db, caller.tenant_id, cursor, query.limit, types
        )
        page = EventPage(
            data=[EventRead.model_validate(r) for r in rows],
            next_cursor=str(rows[-1]["id"]) if len(rows) == query.limit else None,
        )
        return Response(page.model_dump_json(), media_type="application/json")
    if cursor is None:
        cursor = await run_in_threadpool(events.latest_id, ctx.db, caller.tenant_id)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        after = cursor
        while not await request.is_disconnected():
            rows = await run_in_threadpool(events.after, ctx.db, caller.tenant_id, after, 200)
            for row in rows:
                after = row["id"]
                if types and row["type"] not in types:
                    continue
                body = EventRead.model_validate(row).model_dump(mode="json")
                yield ServerSentEvent(data=json.dumps(body), event=row["type"], id=str(row["id"]))
            if len(rows) < 200:
                await asyncio.sleep(POLL_SECONDS)

    return EventSourceResponse(stream(), ping=15)
