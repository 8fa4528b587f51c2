"""Retention: each tenant's idle conversations archived or deleted, once an hour.

The rule is per tenant (``THREADLINE_RETENTION_TENANTS``, else ``THREADLINE_RETENTION_DAYS``
and ``THREADLINE_RETENTION_ACTION``); the work is ``store.privacy.apply_retention``, a batch
of conversations per write so that other writers take turns in between.
"""

from __future__ import annotations

from threadline.jobs.poll import poll_forever
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

    def apply() -> int:
        done = privacy.apply_retention(db, settings)
        if done.archived or done.deleted:
            log.info("retention", archived=done.archived, deleted=done.deleted)
        return done.archived + done.deleted

    await poll_forever(apply, idle=EVERY, failed="retention_failed")
