"""Conversations: create, find, list by last activity, and move through the state machine.

Every status change writes a ``status_changed`` conversation event in the same transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from threadline.domain import status as state_machine
from threadline.domain.enums import Channel, ConversationStatus, EventType
from threadline.domain.errors import InvalidInput
from threadline.store import contacts, pagination
from threadline.store.database import Database
from threadline.store.models import (
    Agent,
    Contact,
    Conversation,
    ConversationEvent,
    Event,
    Inbox,
)
from threadline.store.owned import owned
from threadline.store.types import utcnow

FILTERS = ("status", "channel", "contact_id", "inbox_id", "assignee_id")


def create(db: Database, tenant_id: uuid.UUID, fields: dict[str, Any]) -> Conversation:
    """Create a conversation for ``contact_id``, or for ``contact`` (found by phone or email,
    else created)."""
    with db.write() as s:
        return create_in(s, tenant_id, fields)


def create_in(s: Session, tenant_id: uuid.UUID, fields: dict[str, Any]) -> Conversation:
    """``create`` inside an open write session (an import creates many in one)."""
    if fields.get("contact_id") is not None and fields.get("contact"):
        raise InvalidInput("send either contact_id or contact, not both")
    contact_id = fields.get("contact_id")
    if contact_id is not None:
        owned(s, Contact, tenant_id, contact_id, name="contact")
    elif fields.get("contact"):
        data = fields["contact"]
        phone = contacts.normalize_phone(data["phone"]) if data.get("phone") else None
        email = contacts.normalize_email(data["email"]) if data.get("email") else None
        found = contacts.find_in(s, tenant_id, phone, email)
        contact_id = (found or contacts.create_in(s, tenant_id, data)).id
    channel = Channel(fields.get("channel") or Channel.API)
    inbox_id = fields.get("inbox_id")
    if inbox_id is not None:
        inbox = owned(s, Inbox, tenant_id, inbox_id, name="inbox")
        if inbox.channel != channel and fields.get("channel"):
            raise InvalidInput(
                f"inbox is on channel {inbox.channel.value!r}, not {channel.value!r}",
                inbox_id=str(inbox_id),
            )
        channel = inbox.channel
    if fields.get("assignee_id") is not None:
        owned(s, Agent, tenant_id, fields["assignee_id"], name="assignee")
    now = utcnow()
    conv = Conversation(
        tenant_id=tenant_id,
        contact_id=contact_id,
        inbox_id=inbox_id,
        channel=channel,
        status=ConversationStatus.ACTIVE,
        title=fields.get("title"),
        assignee_id=fields.get("assignee_id"),
        external_conversation_id=fields.get("external_conversation_id"),
        message_count=0,
        last_activity_at=now,
        metadata_=fields.get("metadata") or {},
        created_at=now,
        updated_at=now,
    )
    s.add(conv)
    s.flush()
    s.add(
        ConversationEvent(
            tenant_id=tenant_id, conversation_id=conv.id, type=EventType.CREATED, data={}
        )
    )
    return conv


def get(db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> Conversation:
    with db.read() as s:
        return owned(s, Conversation, tenant_id, conversation_id, name="conversation")


def list_page(
    db: Database,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None = None,
    **filters: Any,
) -> pagination.Page[Conversation]:
    """Conversations with the most recent activity first; filters are exact matches."""
    C = Conversation
    q = sa.select(C).where(C.tenant_id == tenant_id)
    for name in FILTERS:
        if filters.get(name) is not None:
            q = q.where(getattr(C, name) == filters[name])
    with db.read() as s:
        return pagination.newest_first(s, q, C.last_activity_at, C.id, limit=limit, cursor=cursor)


def update(
    db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID, fields: dict[str, Any]
) -> Conversation:
    """Change status (through the state machine), title, assignee or metadata."""
    with db.write() as s:
        conv = owned(s, Conversation, tenant_id, conversation_id, name="conversation", lock=True)
        now = utcnow()
        if fields.get("status") is not None:
            target = ConversationStatus(fields["status"])
            state_machine.check_transition(conv.status, target)
            if target != conv.status:
                record_status_change(s, tenant_id, conv.id, conv.status, target, reason="manual")
                conv.status = target
        if "title" in fields:
            conv.title = fields["title"]
        if "assignee_id" in fields:
            if fields["assignee_id"] is not None:
                owned(s, Agent, tenant_id, fields["assignee_id"], name="assignee")
            if conv.assignee_id != fields["assignee_id"]:
                s.add(
                    ConversationEvent(
                        tenant_id=tenant_id,
                        conversation_id=conv.id,
                        type=EventType.ASSIGNED,
                        data={
                            "assignee_id": str(fields["assignee_id"])
                            if fields["assignee_id"]
                            else None
                        },
                    )
                )
            conv.assignee_id = fields["assignee_id"]
        if "metadata" in fields:
            conv.metadata_ = fields["metadata"] or {}
        conv.updated_at = now
        return conv


def record_status_change(
    s: Session,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    old: ConversationStatus,
    new: ConversationStatus,
    *,
    reason: str,
) -> None:
    """Write the ``status_changed`` event (and the tenant's log entries for it); the caller
    updates the row itself."""
    data = status_change_data(old, new, reason)
    s.add(
        ConversationEvent(
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            type=EventType.STATUS_CHANGED,
            data=data,
        )
    )
    for type_ in tenant_event_types(new):
        s.add(Event(tenant_id=tenant_id, type=type_, conversation_id=conversation_id, data=data))


def tenant_event_types(new: ConversationStatus) -> list[str]:
    """The tenant log's entries for a move to ``new``."""
    types = ["conversation.status_changed"]
    if new == ConversationStatus.ESCALATED:
        types.append("conversation.escalated")
    return types


def status_change_data(
    old: ConversationStatus, new: ConversationStatus, reason: str
) -> dict[str, str]:
    return {"from": old.value, "to": new.value, "reason": reason}


def events_page(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None = None,
) -> pagination.Page[ConversationEvent]:
    """The conversation's events in the order they happened (``created_at``, ties broken by
    id), ``limit`` at a time from after ``cursor``."""
    E = ConversationEvent
    q = sa.select(E).where(E.tenant_id == tenant_id, E.conversation_id == conversation_id)
    if cursor:
        ts, row_id = pagination.decode_time_id(cursor)
        q = q.where(
            sa.tuple_(E.created_at, E.id)
            > sa.tuple_(sa.literal(ts, E.created_at.type), sa.literal(row_id, E.id.type))
        )
    q = q.order_by(E.created_at, E.id).limit(limit + 1)
    with db.read() as s:
        owned(s, Conversation, tenant_id, conversation_id, name="conversation")
        rows = list(s.scalars(q))
    if len(rows) <= limit:
        return pagination.Page(rows, None)
    rows = rows[:limit]
    return pagination.Page(rows, pagination.encode_time_id(rows[-1].created_at, rows[-1].id))
