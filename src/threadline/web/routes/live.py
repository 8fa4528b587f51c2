"""Live updates for the dashboard: a server-sent event stream, authenticated by the session
cookie, that says which conversations changed (``event: changed``, data a JSON list of
conversation ids). Pages re-render just those parts (htmx).

It reads the tenant's event log (``store/events.py``: a message stored, a delivery status,
a status change, a draft made or decided) through the process's shared ``EventHub``, so a
room of people watching the inbox costs one query per poll, and each change is told once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from threadline.web import auth
from threadline.web.eventhub import hub_for

router = APIRouter(include_in_schema=False)


@router.get("/live")
async def live(request: Request, user: auth.Reader) -> EventSourceResponse:
    hub = hub_for(request.app.state)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with hub.subscribe(user.tenant_id) as queue:
            yield ServerSentEvent(event="ready", data="{}")
            while True:
                batch = await queue.get()
                while not queue.empty():  # a burst: one message for all of it
                    batch += queue.get_nowait()
                changed = sorted({str(e["conversation_id"]) for e in batch if e["conversation_id"]})
                if changed:
                    yield ServerSentEvent(event="changed", data=json.dumps(changed))

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
