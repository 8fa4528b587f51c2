"""The tenant's event log: what happened, in order, for live streams and outgoing webhooks.

Every change worth telling someone about writes one row here in the same transaction as the
change itself (``record``), so a reader never sees an event for something that was rolled
back, and never misses one for something that was committed. Rows carry ids and small
facts, never a message body: a reader fetches what it needs.

Ids are UUIDv7, so they sort by time: ``after(cursor)`` reads the next events of a tenant
through the (tenant_id, id) index. Events are kept for ``event_retention_days`` and pruned
with the idempotency keys.

Event types: ``message.created``, ``message.status_updated``,
``conversation.status_changed``, ``conversation.escalated``, ``suggestion.created``,
``suggestion.decided``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from threadline.domain.ids import new_id
from threadline.store.bulk_insert import BulkInsert
from threadline.store.database import Database
from threadline.store.models import Event, Message
from threadline.store.types import utcnow

events_table = cast(sa.Table, Event.__table__)
_INSERT = BulkInsert(events_table.insert())

MESSAGE_CREATED = "message.created"
MESSAGE_STATUS_UPDATED = "message.status_updated"
CONVERSATION_STATUS_CHANGED = "conversation.status_changed"
CONVERSATION_ESCALATED = "conversation.escalated"
SUGGESTION_CREATED = "suggestion.created"
SUGGESTION_DECIDED = "suggestion.decided"
TYPES = (
    MESSAGE_CREATED,
    MESSAGE_STATUS_UPDATED,
    CONVERSATION_STATUS_CHANGED,
    CONVERSATION_ESCALATED,
    SUGGESTION_CREATED,
    SUGGESTION_DECIDED,
)


def row(
    tenant_id: uuid.UUID,
    type_: str,
    *,
    conversation_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One event, ready for ``record_many``."""
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "type": type_,
        "conversation_id": conversation_id,
        "data": data,
        "created_at": now or utcnow(),
    }


def record_many(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write events inside the caller's transaction."""
    _INSERT.run_grouped(conn, rows)


def record(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    type_: str,
    *,
    conversation_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Write one event inside the caller's transaction."""
    record_many(conn, [row(tenant_id, type_, conversation_id=conversation_id, data=data)])


_messages = cast(sa.Table, Message.__table__)


def record_status_updates(
    conn: sa.Connection, tenant_id: uuid.UUID, status_events: Sequence[dict[str, Any]]
) -> None:
    """``message.status_updated`` for each ``message_status_events`` row just written
    (those about a message we know), inside the caller's transaction: the message, its
    status and the provider's word for it, never the provider's payload."""
    known = [e for e in status_events if e.get("message_id") is not None]
    if not known:
        return
    ids = {e["message_id"] for e in known}
    found = conn.execute(
        sa.select(_messages.c.id, _messages.c.conversation_id).where(
            _messages.c.tenant_id == tenant_id, _messages.c.id.in_(ids)
        )
    )
    conversation_of = {message_id: conversation_id for message_id, conversation_id in found}
    rows = []
    for e in known:
        status = e.get("status")
        data = {
            "message_id": str(e["message_id"]),
            "status": getattr(status, "value", status),
            "provider_status": e.get("provider_status"),
            "error_code": e.get("error_code"),
        }
        if isinstance(e.get("provider_data"), dict) and "attempt" in e["provider_data"]:
            data["attempt"] = e["provider_data"]["attempt"]
        rows.append(
            row(
                tenant_id,
                MESSAGE_STATUS_UPDATED,
                conversation_id=conversation_of.get(e["message_id"]),
                data=data,
            )
        )
    record_many(conn, rows)


_AFTER = (
    sa.select(
        events_table.c.id,
        events_table.c.type,
        events_table.c.conversation_id,
        events_table.c.data,
        events_table.c.created_at,
    )
    .where(events_table.c.tenant_id == sa.bindparam("t"), events_table.c.id > sa.bindparam("after"))
    .order_by(events_table.c.id)
    .limit(sa.bindparam("n"))
)
_FIRST_ID = uuid.UUID(int=0)


def after(
    db: Database,
    tenant_id: uuid.UUID,
    cursor: uuid.UUID | None,
    limit: int = 100,
    types: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The tenant's events after ``cursor`` (an event id; None: from the oldest kept), in
    order. With ``types``, only those types (the cursor still moves past the others: pass
    the last id of an unfiltered read to resume)."""
    query = _AFTER
    if types:
        query = query.where(events_table.c.type.in_(list(types)))
    params = {"t": tenant_id, "after": cursor or _FIRST_ID, "n": limit}
    with db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query, params)]


def latest_id(db: Database, tenant_id: uuid.UUID) -> uuid.UUID | None:
    """The id of the tenant's newest event: where a stream that wants only new events starts."""
    query = (
        sa.select(events_table.c.id)
        .where(events_table.c.tenant_id == tenant_id)
        .order_by(events_table.c.id.desc())
        .limit(1)
    )
    with db.connect() as conn:
        return conn.execute(query).scalar()


def prune(db: Database, older_than: timedelta, *, batch: int = 1_000) -> int:
    """Delete events older than ``older_than``, a batch per write; answers how many."""
    cutoff = utcnow() - older_than
    created = events_table.c.created_at
    return db.delete_in_batches(events_table, created < cutoff, created, batch)
