"""Live updates for the dashboard: a server-sent event stream, authenticated by the session
cookie, that says which conversations changed (``event: changed``, data a JSON list of
conversation ids). Pages re-render just those parts (htmx).

It reads what changed by polling the conversations' activity and update times (and the
drafts') about once a second, with an overlap so a transaction that commits late is not
missed; each change is told once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import anyio
from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from threadline.store.types import utcnow
from threadline.web import auth, queries

router = APIRouter(include_in_schema=False)

POLL_SECONDS = 1.0
#: How far back each poll looks again: longer than any write transaction takes to commit.
OVERLAP = timedelta(seconds=5)


@router.get("/live")
async def live(request: Request, user: auth.Reader) -> EventSourceResponse:
    db = request.app.state.db

    async def stream() -> AsyncIterator[ServerSentEvent]:
        seen: dict[str, datetime] = {}
        since = utcnow()
        yield ServerSentEvent(event="ready", data="{}")
        while not await request.is_disconnected():
            started = utcnow()
            changed = await anyio.to_thread.run_sync(
                queries.changed_since, db, user.tenant_id, since - OVERLAP
            )
            fresh = sorted(cid for cid, at in changed.items() if seen.get(cid) != at)
            seen = {cid: at for cid, at in changed.items()}
            since = started
            if fresh:
                yield ServerSentEvent(event="changed", data=json.dumps(fresh))
            await anyio.sleep(POLL_SECONDS)

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
