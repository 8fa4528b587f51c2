"""Live updates for the dashboard: a server-sent event stream, authenticated by the session
cookie, that says which conversations changed (``event: changed``, data a JSON list of
conversation ids). Pages re-render just those parts (htmx). A page passes ``since``, the
server's clock when it was drawn: what changed between drawing it and the stream starting
is told first, so nothing that happened in between (a reply sent right after "approve") is
missed, nor during a reconnection.

It reads the tenant's event log (``store/events.py``: a message stored, a delivery status,
a status change, a draft made or decided) through the process's shared ``EventHub``, so a
room of people watching the inbox costs one query per poll, and each change is told once.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from threadline.web import auth
from threadline.web.eventhub import OVERLAP_MS, hub_for, id_floor, read_since

router = APIRouter(include_in_schema=False)

#: How far back ``since`` may reach (a page left open longer re-renders on its next change).
CATCH_UP_MS = 10 * 60 * 1000


def _changed(batch: list[dict[str, Any]]) -> ServerSentEvent | None:
    changed = sorted({str(e["conversation_id"]) for e in batch if e["conversation_id"]})
    return ServerSentEvent(event="changed", data=json.dumps(changed)) if changed else None


@router.get("/live")
async def live(
    request: Request,
    user: auth.Reader,
    since: Annotated[int | None, Query(ge=0, le=2**53)] = None,
) -> EventSourceResponse:
    hub = hub_for(request.app.state)
    db = request.app.state.db

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with hub.subscribe(user.tenant_id) as queue:
            yield ServerSentEvent(event="ready", data="{}")
            if since is not None:  # read again from before the page was drawn (commit order)
                floor = max(since - OVERLAP_MS, int(time.time() * 1000) - CATCH_UP_MS)
                missed = _changed(await read_since(db, user.tenant_id, id_floor(floor)))
                if missed is not None:
                    yield missed
            while True:
                batch = await queue.get()
                while not queue.empty():  # a burst: one message for all of it
                    batch += queue.get_nowait()
                changed = _changed(batch)
                if changed is not None:
                    yield changed

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
