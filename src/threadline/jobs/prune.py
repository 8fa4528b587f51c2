"""Pruning: expired idempotency keys and old events, deleted in small batches, once an hour.

Runs beside the API in ``threadline serve`` (started by the app's lifespan) and on demand
with ``threadline db prune``.
"""

from __future__ import annotations

from datetime import timedelta

from threadline.jobs.poll import poll_forever
from threadline.logs import get_logger
from threadline.settings import Settings
from threadline.store import events, idempotency
from threadline.store.database import Database

log = get_logger(__name__)

#: Seconds between two prunes.
EVERY = 3600.0


def prune_once(db: Database, settings: Settings) -> int:
    """Delete the idempotency keys older than ``idempotency_ttl_hours`` and the events older
    than ``event_retention_days``; answers how many rows went."""
    keys = idempotency.prune(db, timedelta(hours=settings.idempotency_ttl_hours))
    return keys + events.prune(db, timedelta(days=settings.event_retention_days))


async def prune_forever(db: Database, settings: Settings) -> None:
    """Prune now and then every ``EVERY`` seconds."""

    def prune() -> int:
        count = prune_once(db, settings)
        if count:
            log.info("pruned", count=count)
        return count

    await poll_forever(prune, idle=EVERY, failed="prune_failed")
