"""The outbox of pull-based providers (Yelp through Zapier): replies wait until the Zap
fetches them, and count as sent when it acknowledges them.

A reply is in the outbox once the delivery worker has handed it over: its delivery is
``queued`` with no next attempt (``store/deliveries.py``, ``record_sent`` with ``queued``).
A fetch claims up to ``limit`` of them for ``lease`` (``claimed_until``), so two polls that
overlap never both get the same reply; an acknowledgement marks them ``sent`` (with a status
event). A reply fetched and never acknowledged (the Zap failed half-way) is served again
once its lease has passed: at-least-once towards the Zap, exactly once when the Zap
acknowledges what it sent (and Zapier's own de-duplication by ``id`` covers the rest).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from threadline.domain.enums import DeliveryStatus
from threadline.domain.errors import MalformedPayload
from threadline.domain.ids import new_id
from threadline.store import events as tenant_events
from threadline.store.database import Database
from threadline.store.models import Conversation, Message, MessageDelivery, MessageStatusEvent
from threadline.store.types import utcnow

deliveries = cast(sa.Table, MessageDelivery.__table__)
messages = cast(sa.Table, Message.__table__)
conversations = cast(sa.Table, Conversation.__table__)
events = cast(sa.Table, MessageStatusEvent.__table__)

LEASE = timedelta(minutes=10)


def _waiting(tenant_id: uuid.UUID, inbox_id: uuid.UUID, now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        deliveries.c.tenant_id == tenant_id,
        deliveries.c.inbox_id == inbox_id,
        deliveries.c.status == DeliveryStatus.QUEUED.value,
        deliveries.c.next_attempt_at.is_(None),
        sa.or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
    )


def claim(
    db: Database,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    *,
    limit: int,
    lease: timedelta = LEASE,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` waiting replies, oldest first, each with its message and the
    conversation's ``external_conversation_id``; claimed for ``lease``."""
    now = now or utcnow()

    def work(conn: sa.Connection) -> list[dict[str, Any]]:
        q = (
            sa.select(deliveries.c.id, deliveries.c.message_id)
            .where(_waiting(tenant_id, inbox_id, now))
            .order_by(deliveries.c.created_at, deliveries.c.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        picked = conn.execute(q).all()
        if not picked:
            return []
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_([p.id for p in picked]))
            .values(claimed_until=now + lease, attempts=deliveries.c.attempts + 1, updated_at=now)
        )
        rows = conn.execute(
            sa.select(
                messages.c.id,
                messages.c.content,
                messages.c.created_at,
                conversations.c.external_conversation_id,
            )
            .select_from(
                messages.join(
                    conversations,
                    sa.and_(
                        conversations.c.tenant_id == messages.c.tenant_id,
                        conversations.c.id == messages.c.conversation_id,
                    ),
                )
            )
            .where(
                messages.c.tenant_id == tenant_id,
                messages.c.id.in_([p.message_id for p in picked]),
            )
            .order_by(messages.c.created_at, messages.c.id)
        )
        return [dict(r._mapping) for r in rows]

    return db.run_write(work)


def ack(
    db: Database,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    message_ids: Sequence[str],
    *,
    now: datetime | None = None,
) -> int:
    """Mark the replies the Zap sent as ``sent``; answers how many changed (an id already
    acknowledged, or not this inbox's, changes nothing)."""
    try:
        ids = [uuid.UUID(m) for m in message_ids]
    except ValueError as exc:
        raise MalformedPayload("ack names an id that is not a message id") from exc
    if not ids:
        return 0
    now = now or utcnow()

    def work(conn: sa.Connection) -> int:
        mine = sa.and_(
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.inbox_id == inbox_id,
            deliveries.c.message_id.in_(ids),
            deliveries.c.status == DeliveryStatus.QUEUED.value,
        )
        rows = conn.execute(sa.select(deliveries.c.message_id).where(mine)).all()
        if not rows:
            return 0
        conn.execute(
            deliveries.update()
            .where(mine)
            .values(status=DeliveryStatus.SENT, sent_at=now, claimed_until=None, updated_at=now)
        )
        acknowledged = [
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "message_id": r.message_id,
                "inbox_id": inbox_id,
                "external_message_id": None,
                "status": DeliveryStatus.SENT,
                "provider_status": "acknowledged",
                "error_code": None,
                "error": None,
                "provider_data": {"via": "outbox"},
                "occurred_at": now,
                "created_at": now,
            }
            for r in rows
        ]
        conn.execute(events.insert(), acknowledged)
        tenant_events.record_status_updates(conn, tenant_id, acknowledged)
        return len(rows)

    return db.run_write(work)
