"""Delivery callbacks: a provider says what became of a message we sent.

``apply`` finds each callback's delivery by the provider's message id within the inbox
(``message_deliveries.external_message_id``), else by our own message id when the provider
echoes it back (``message_ref``), moves its status forward and keeps the callback as a
``message_status_events`` row, all in one write transaction.

Statuses only move forward: ``pending`` < ``queued`` < ``sent`` < ``failed`` <
``delivered`` < ``read``. Callbacks arrive out of order (a ``sent`` after ``delivered``)
and late ones change nothing but are still kept; ``failed`` replaces ``sent`` (with the
provider's error code and text) but not ``delivered``, and a ``delivered`` after
``failed`` wins, since the provider saw it arrive. A callback for a message we cannot find
is kept with no message (``message_id`` null, the provider's id and inbox kept) and
answered 200, so the provider stops retrying; when the sender later records that id,
``adopt`` attaches those early callbacks and applies them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from threadline.channels.base import StatusUpdate
from threadline.domain.enums import DeliveryStatus
from threadline.domain.ids import new_id
from threadline.logs import get_logger
from threadline.store import events as tenant_events
from threadline.store.database import Database
from threadline.store.inbound import external_id
from threadline.store.models import MessageDelivery, MessageStatusEvent
from threadline.store.types import utcnow

log = get_logger(__name__)

deliveries = cast(sa.Table, MessageDelivery.__table__)
events = cast(sa.Table, MessageStatusEvent.__table__)

RANK = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.QUEUED: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.FAILED: 3,
    DeliveryStatus.DELIVERED: 4,
    DeliveryStatus.READ: 5,
}


@dataclass(frozen=True)
class Applied:
    """One callback as recorded: the message it was about (None if unknown) and the
    delivery status after it."""

    external_message_id: str
    message_id: uuid.UUID | None
    status: DeliveryStatus | None


def next_status(current: DeliveryStatus, new: DeliveryStatus | None) -> DeliveryStatus:
    if new is None or RANK[new] <= RANK[current]:
        return current
    return new


def _changes(row: Any, update: StatusUpdate, now: datetime) -> dict[str, Any]:
    current = DeliveryStatus(row.status)
    status = next_status(current, update.status)
    values: dict[str, Any] = {}
    if status != current:
        values["status"] = status
        values["next_attempt_at"] = None
    when = update.occurred_at
    delivered = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)
    if status in delivered and row.sent_at is None:
        values["sent_at"] = when
    if status in (DeliveryStatus.DELIVERED, DeliveryStatus.READ) and row.delivered_at is None:
        values["delivered_at"] = when
    if status == DeliveryStatus.READ and row.read_at is None:
        values["read_at"] = when
    if update.status == DeliveryStatus.FAILED and status == DeliveryStatus.FAILED:
        values["error"] = update.error_message or update.provider_status
        values["error_code"] = (update.error_code or "")[:64] or None
    if row.external_message_id is None and update.external_message_id:
        values["external_message_id"] = external_id(update.external_message_id)
    if values:
        values["updated_at"] = now
    return values


_FIELDS = (
    deliveries.c.id,
    deliveries.c.message_id,
    deliveries.c.status,
    deliveries.c.sent_at,
    deliveries.c.delivered_at,
    deliveries.c.read_at,
    deliveries.c.external_message_id,
)


def _find(
    conn: sa.Connection, tenant_id: uuid.UUID, inbox_id: uuid.UUID, update: StatusUpdate
) -> Any:
    q = sa.select(*_FIELDS).where(
        deliveries.c.tenant_id == tenant_id,
        deliveries.c.inbox_id == inbox_id,
        deliveries.c.external_message_id == external_id(update.external_message_id),
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q.limit(1)).first()
    if row is not None or not update.message_ref:
        return row
    try:
        ref = uuid.UUID(str(update.message_ref))
    except ValueError:
        return None
    q = sa.select(*_FIELDS).where(
        deliveries.c.tenant_id == tenant_id, deliveries.c.message_id == ref
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return conn.execute(q).first()


def _event_row(
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    update: StatusUpdate,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "message_id": message_id,
        "inbox_id": inbox_id,
        "external_message_id": external_id(update.external_message_id),
        "status": update.status,
        "provider_status": (update.provider_status or "")[:64] or None,
        "error_code": (update.error_code or "")[:64] or None,
        "error": update.error_message,
        "provider_data": update.raw or None,
        "occurred_at": update.occurred_at,
        "created_at": now,
    }


def apply(
    db: Database,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    updates: Sequence[StatusUpdate],
    *,
    provider: str = "",
) -> list[Applied]:
    """Record the callbacks and move their deliveries (one write transaction)."""
    if not updates:
        return []

    def work(conn: sa.Connection) -> list[Applied]:
        now = utcnow()
        out: list[Applied] = []
        rows: list[dict[str, Any]] = []
        for update in updates:
            found = _find(conn, tenant_id, inbox_id, update)
            if found is None:
                rows.append(_event_row(tenant_id, inbox_id, None, update, now))
                out.append(Applied(update.external_message_id, None, None))
                continue
            values = _changes(found, update, now)
            if values:
                conn.execute(deliveries.update().where(deliveries.c.id == found.id).values(values))
            rows.append(_event_row(tenant_id, inbox_id, found.message_id, update, now))
            out.append(
                Applied(
                    update.external_message_id,
                    found.message_id,
                    DeliveryStatus(values.get("status", found.status)),
                )
            )
        conn.execute(events.insert(), rows)
        tenant_events.record_status_updates(conn, tenant_id, rows)
        return out

    applied = db.run_write(work)
    for a in applied:
        if a.message_id is None:
            # ids only: a callback's body can carry addresses and message text
            log.warning(
                "status_for_unknown_message",
                provider=provider,
                inbox_id=str(inbox_id),
                external_message_id=a.external_message_id[:255],
            )
    return applied


def adopt(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    external_message_id: str,
    message_id: uuid.UUID,
) -> DeliveryStatus | None:
    """Attach the callbacks that arrived for ``external_message_id`` before the sender
    recorded it (kept with no message) to ``message_id``, and apply them to its delivery.

    For the sender to call in the transaction that records the provider's id; answers the
    delivery's status after them (None when there were none).
    """
    ext = external_id(external_message_id)
    early = (
        conn.execute(
            sa.select(events)
            .where(
                events.c.tenant_id == tenant_id,
                events.c.inbox_id == inbox_id,
                events.c.external_message_id == ext,
                events.c.message_id.is_(None),
            )
            .order_by(events.c.occurred_at)
        )
        .mappings()
        .all()
    )
    if not early:
        return None
    conn.execute(
        events.update()
        .where(events.c.id.in_([e["id"] for e in early]))
        .values(message_id=message_id)
    )
    # their message.status_updated, which they could not have when they came in
    tenant_events.record_status_updates(
        conn, tenant_id, [{**e, "message_id": message_id} for e in early]
    )
    row = conn.execute(
        sa.select(*_FIELDS).where(
            deliveries.c.tenant_id == tenant_id, deliveries.c.message_id == message_id
        )
    ).first()
    if row is None:
        return None
    status = DeliveryStatus(row.status)
    now = utcnow()
    for e in early:
        update = StatusUpdate(
            external_message_id=external_message_id,
            status=DeliveryStatus(e["status"]) if e["status"] else None,
            provider_status=e["provider_status"] or "",
            occurred_at=e["occurred_at"],
            error_code=e["error_code"],
            error_message=e["error"],
        )
        values = _changes(row, update, now)
        if values:
            conn.execute(deliveries.update().where(deliveries.c.id == row.id).values(values))
            row = conn.execute(sa.select(*_FIELDS).where(deliveries.c.id == row.id)).first()
            assert row is not None
            status = DeliveryStatus(row.status)
    return status
