"""Reads the dashboard pages need in one query each (no N+1): the inbox list with each
conversation's contact, inbox, assignee, last message and pending draft; a contact's timeline
across channels; what changed since a moment (the live updates' fallback)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from threadline.domain.enums import SuggestionStatus
from threadline.store import pagination
from threadline.store.database import Database
from threadline.store.models import (
    Agent,
    Contact,
    ContactIdentity,
    Conversation,
    Inbox,
    Message,
    Suggestion,
)

PAGE_SIZE = 50


@dataclass(frozen=True)
class InboxFilters:
    status: str | None = None
    channel: str | None = None
    inbox_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links that keep them)."""
        return {k: str(v) for k, v in self.__dict__.items() if v is not None}


C = Conversation
_last = sa.orm.aliased(Message, name="last_message")
_pending = (
    sa.select(sa.func.count())
    .where(
        Suggestion.tenant_id == C.tenant_id,
        Suggestion.conversation_id == C.id,
        Suggestion.status == SuggestionStatus.PENDING,
    )
    .correlate(C)
    .scalar_subquery()
)

_ROWS = (
    sa.select(
        C.id,
        C.title,
        C.channel,
        C.status,
        C.message_count,
        C.last_activity_at,
        C.last_message_at,
        C.contact_id,
        C.inbox_id,
        C.assignee_id,
        C.satisfaction_score,
        C.sentiment,
        Contact.name.label("contact_name"),
        Contact.phone.label("contact_phone"),
        Contact.email.label("contact_email"),
        Inbox.name.label("inbox_name"),
        Agent.name.label("assignee_name"),
        _last.content.label("last_content"),
        _last.direction.label("last_direction"),
        _last.role.label("last_role"),
        _last.message_type.label("last_type"),
        _pending.label("pending_suggestions"),
    )
    .select_from(C)
    .outerjoin(Contact, sa.and_(Contact.tenant_id == C.tenant_id, Contact.id == C.contact_id))
    .outerjoin(Inbox, sa.and_(Inbox.tenant_id == C.tenant_id, Inbox.id == C.inbox_id))
    .outerjoin(Agent, sa.and_(Agent.tenant_id == C.tenant_id, Agent.id == C.assignee_id))
    .outerjoin(
        _last,
        sa.and_(
            _last.tenant_id == C.tenant_id,
            _last.conversation_id == C.id,
            _last.seq == C.last_seq,
        ),
    )
)


def inbox_rows(
    db: Database,
    tenant_id: uuid.UUID,
    filters: InboxFilters,
    *,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> tuple[list[Any], str | None]:
    """Conversations with the newest activity first, and the cursor of the next page."""
    q = _ROWS.where(C.tenant_id == tenant_id)
    for name in ("status", "channel", "inbox_id", "assignee_id", "contact_id"):
        value = getattr(filters, name)
        if value is not None:
            q = q.where(getattr(C, name) == value)
    if cursor:
        ts, row_id = pagination.decode_time_id(cursor)
        q = q.where(
            sa.or_(
                C.last_activity_at < ts,
                sa.and_(C.last_activity_at == ts, C.id < row_id),
            )
        )
    q = q.order_by(C.last_activity_at.desc(), C.id.desc()).limit(limit + 1)
    with db.connect() as conn:
        rows = list(conn.execute(q))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, pagination.encode_time_id(rows[-1].last_activity_at, rows[-1].id)


def counts_by_status(db: Database, tenant_id: uuid.UUID) -> dict[str, int]:
    q = sa.select(C.status, sa.func.count()).where(C.tenant_id == tenant_id).group_by(C.status)
    with db.connect() as conn:
        return {str(status): n for status, n in conn.execute(q)}


def has_conversations(db: Database, tenant_id: uuid.UUID) -> bool:
    with db.connect() as conn:
        return (
            conn.execute(sa.select(C.id).where(C.tenant_id == tenant_id).limit(1)).first()
            is not None
        )


def choices(db: Database, tenant_id: uuid.UUID) -> tuple[list[Any], list[Any]]:
    """The tenant's inboxes and agents, for filters and assignment."""
    with db.connect() as conn:
        inboxes = list(
            conn.execute(
                sa.select(Inbox.id, Inbox.name, Inbox.channel)
                .where(Inbox.tenant_id == tenant_id)
                .order_by(Inbox.name)
            )
        )
        agents = list(
            conn.execute(
                sa.select(Agent.id, Agent.name, Agent.kind)
                .where(Agent.tenant_id == tenant_id)
                .order_by(Agent.name)
            )
        )
    return inboxes, agents


def conversation_header(db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> Any:
    """One inbox row (contact, inbox, assignee ...) for the conversation page, or None."""
    with db.connect() as conn:
        return conn.execute(_ROWS.where(C.tenant_id == tenant_id, C.id == conversation_id)).first()


def identities(db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> list[Any]:
    q = (
        sa.select(ContactIdentity.channel, ContactIdentity.address, ContactIdentity.created_at)
        .where(ContactIdentity.tenant_id == tenant_id, ContactIdentity.contact_id == contact_id)
        .order_by(ContactIdentity.created_at)
    )
    with db.connect() as conn:
        return list(conn.execute(q))


def contact_timeline(
    db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID, limit: int = 300
) -> list[Any]:
    """The contact's newest messages across all their conversations, oldest first."""
    q = (
        sa.select(
            Message.id,
            Message.conversation_id,
            Message.role,
            Message.direction,
            Message.message_type,
            Message.content,
            Message.occurred_at,
            C.channel,
            C.title,
        )
        .join(C, sa.and_(C.tenant_id == Message.tenant_id, C.id == Message.conversation_id))
        .where(
            C.tenant_id == tenant_id,
            C.contact_id == contact_id,
            Message.role.in_(("user", "assistant")),
        )
        .order_by(Message.occurred_at.desc(), Message.id.desc())
        .limit(limit)
    )
    with db.connect() as conn:
        rows = list(conn.execute(q))
    rows.reverse()
    return rows


def changed_since(db: Database, tenant_id: uuid.UUID, since: datetime) -> dict[str, datetime]:
    """Conversations with activity, a status change or a draft after ``since``, each with the
    time of its latest change."""
    touched = (
        sa.select(C.id, C.last_activity_at, C.updated_at)
        .where(C.tenant_id == tenant_id, sa.or_(C.last_activity_at > since, C.updated_at > since))
        .limit(500)
    )
    drafted = (
        sa.select(Suggestion.conversation_id, Suggestion.updated_at)
        .where(Suggestion.tenant_id == tenant_id, Suggestion.updated_at > since)
        .limit(500)
    )
    out: dict[str, datetime] = {}
    with db.connect() as conn:
        for cid, activity, updated in conn.execute(touched):
            out[str(cid)] = max(activity, updated)
        for cid, updated in conn.execute(drafted):
            key = str(cid)
            out[key] = max(out.get(key, updated), updated)
    return out


def conversation_briefs(
    db: Database, tenant_id: uuid.UUID, conversation_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Any]:
    """Each conversation's channel, title and contact, for lists of messages (search hits)."""
    if not conversation_ids:
        return {}
    q = (
        sa.select(
            C.id,
            C.channel,
            C.title,
            C.contact_id,
            Contact.name.label("contact_name"),
            Contact.phone.label("contact_phone"),
            Contact.email.label("contact_email"),
        )
        .outerjoin(Contact, sa.and_(Contact.tenant_id == C.tenant_id, Contact.id == C.contact_id))
        .where(C.tenant_id == tenant_id, C.id.in_(set(conversation_ids)))
    )
    with db.connect() as conn:
        return {row.id: row for row in conn.execute(q)}
