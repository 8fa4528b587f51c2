"""One reader of the tenant event log per process, shared by every live stream.

The dashboard's ``/live`` and each web-chat visitor's stream want to know, within a second,
what happened in a tenant. Rather than each of them polling the event log
(``store/events.py``), a ``Feed`` per tenant polls it once every ``POLL_SECONDS`` while
someone listens, and hands each batch of new events to every subscriber's queue. A thousand
open widgets cost one indexed query per tenant per poll.

Ids are UUIDv7 (time-ordered), but on PostgreSQL a transaction that started first can commit
last: its event has a smaller id than one already read. Each poll therefore reads again from
``OVERLAP`` before the previous poll began, and tells only the events it has not told yet.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from starlette.concurrency import run_in_threadpool

from threadline.logs import get_logger
from threadline.store import events
from threadline.store.database import Database

log = get_logger(__name__)

POLL_SECONDS = 0.5
#: How far back each poll reads again: longer than a write transaction takes to commit.
OVERLAP_MS = 5_000
#: Events read per query (a busy poll pages on).
PAGE = 500

Batch = list[dict[str, Any]]


def id_floor(unix_ms: int) -> uuid.UUID:
    """The smallest UUIDv7 of the millisecond ``unix_ms``: a cursor for "since then"."""
    return uuid.UUID(int=max(unix_ms, 0) << 80)


async def read_since(db: Database, tenant_id: uuid.UUID, floor: uuid.UUID) -> Batch:
    """The tenant's events after ``floor``, page by page."""
    rows: Batch = []
    cursor = floor
    while True:
        page = await run_in_threadpool(events.after, db, tenant_id, cursor, PAGE)
        rows.extend(page)
        if len(page) < PAGE:
            return rows
        cursor = page[-1]["id"]


class Feed:
    """The new events of one tenant, polled while at least one queue listens."""

    def __init__(self, db: Database, tenant_id: uuid.UUID, poll: float) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.poll = poll
        self.queues: set[asyncio.Queue[Batch]] = set()
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        seen: dict[uuid.UUID, int] = {}
        started = int(time.time() * 1000)
        first = True
        while True:
            try:
                floor_ms = started - OVERLAP_MS
                started = int(time.time() * 1000)
                rows = await read_since(self.db, self.tenant_id, id_floor(floor_ms))
                fresh = [r for r in rows if r["id"] not in seen]
                for r in fresh:
                    seen[r["id"]] = started
                # forget what the next read cannot return again
                for key in [k for k, at in seen.items() if at < floor_ms - OVERLAP_MS]:
                    del seen[key]
                if fresh and not first:
                    for queue in list(self.queues):
                        queue.put_nowait(fresh)
                first = False
                self.ready.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is busy or away: try again next poll
                log.warning("event_feed_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.poll)


class EventHub:
    """The feeds of one process (one per running event loop and tenant)."""

    def __init__(self, db: Database, poll: float = POLL_SECONDS) -> None:
        self.db = db
        self.poll = poll
        self._feeds: dict[tuple[int, uuid.UUID], Feed] = {}

    @asynccontextmanager
    async def subscribe(self, tenant_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[Batch]]:
        """A queue that receives each batch of the tenant's new events, from the moment the
        feed has read the log once (so nothing committed after this returns is missed)."""
        key = (id(asyncio.get_running_loop()), tenant_id)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = Feed(self.db, tenant_id, self.poll)
            feed.task = asyncio.create_task(feed.run())
        queue: asyncio.Queue[Batch] = asyncio.Queue()
        feed.queues.add(queue)
        try:
            await feed.ready.wait()
            yield queue
        finally:
            feed.queues.discard(queue)
            if not feed.queues and self._feeds.get(key) is feed:
                del self._feeds[key]
                if feed.task is not None:
                    feed.task.cancel()
                    with suppress(asyncio.CancelledError):
                        await feed.task


def hub_for(app_state: Any) -> EventHub:
    """The app's hub, made on first use."""
    hub = getattr(app_state, "event_hub", None)
    if hub is None:
        hub = app_state.event_hub = EventHub(app_state.db)
    return hub
