"""Retention: each tenant's idle conversations archived or deleted, once an hour.

The rule is per tenant (``THREADLINE_RETENTION_TENANTS``, else ``THREADLINE_RETENTION_DAYS``
and ``THREADLINE_RETENTION_ACTION``); the work is ``store.privacy.apply_retention``, a batch
of conversations per write so that other writers take turns in between.
"""

from __future__ import annotations

import anyio

from threadline.logs import get_logger
from threadline.settings import Settings
from threadline.store import privacy
from threadline.store.database import Database

log = get_logger(__name__)

#: Seconds between two rounds.
EVERY = 3600.0


def _has_rules(settings: Settings) -> bool:
    return settings.retention_days is not None or any(
        rule.days is not None for rule in settings.retention_tenants.values()
    )


async def retention_forever(db: Database, settings: Settings) -> None:
    """Apply retention now and then every ``EVERY`` seconds; idle when no rule is set."""
    if not _has_rules(settings):
        return
    while True:
        try:
            done = await anyio.to_thread.run_sync(privacy.apply_retention, db, settings)
        except Exception as exc:  # the next round tries again; the API keeps serving
            log.warning("retention_failed", error_type=type(exc).__name__)
        else:
            if done.archived or done.deleted:
                log.info("retention", archived=done.archived, deleted=done.deleted)
        await anyio.sleep(EVERY)
