"""Suggestions: replies an agent drafted for a person to approve, edit or reject.

At most one is pending per (conversation, message replied to) (a unique partial index);
a newer draft for the same conversation supersedes the older pending ones (they become
``rejected`` with the feedback ``SUPERSEDED``).

Every draft stored logs ``suggestion.created`` and every decision (a superseded draft's
too) ``suggestion.decided`` in the tenant's event log, in the same transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from threadline.domain.enums import SuggestionStatus
from threadline.domain.errors import Conflict
from threadline.store import events
from threadline.store.database import Database
from threadline.store.models import Conversation, Suggestion
from threadline.store.owned import owned
from threadline.store.types import utcnow

SUPERSEDED = "superseded by a newer draft"


def create_pending(db: Database, tenant_id: uuid.UUID, fields: dict[str, Any]) -> Suggestion:
    """Store a pending draft, superseding the conversation's older pending ones."""
    S = Suggestion
    with db.write() as s:
        now = utcnow()
        superseded = s.scalars(
            sa.update(S)
            .where(
                S.tenant_id == tenant_id,
                S.conversation_id == fields["conversation_id"],
                S.status == SuggestionStatus.PENDING,
            )
            .values(status=SuggestionStatus.REJECTED, feedback=SUPERSEDED, updated_at=now)
            .returning(S.id)
            .execution_options(synchronize_session=False)
        ).all()
        row = S(
            tenant_id=tenant_id,
            status=SuggestionStatus.PENDING,
            created_at=now,
            updated_at=now,
            **fields,
        )
        s.add(row)
        s.flush()
        conversation_id = fields["conversation_id"]
        log = [
            events.row(
                tenant_id,
                events.SUGGESTION_DECIDED,
                conversation_id=conversation_id,
                data={"suggestion_id": str(old), "status": SuggestionStatus.REJECTED.value},
                now=now,
            )
            for old in superseded
        ]
        log.append(
            events.row(
                tenant_id,
                events.SUGGESTION_CREATED,
                conversation_id=conversation_id,
                data={"suggestion_id": str(row.id)},
                now=now,
            )
        )
        events.record_many(s.connection(), log)
        return row


def get(db: Database, tenant_id: uuid.UUID, suggestion_id: uuid.UUID) -> Suggestion:
    with db.read() as s:
        return owned(s, Suggestion, tenant_id, suggestion_id, name="suggestion")


def list_for(
    db: Database,
    tenant_id: uuid.UUID,
    *,
    status: SuggestionStatus | None = None,
    conversation_id: uuid.UUID | None = None,
    limit: int = 100,
) -> list[Suggestion]:
    """Newest first."""
    S = Suggestion
    q = sa.select(S).where(S.tenant_id == tenant_id)
    if status is not None:
        q = q.where(S.status == status)
    if conversation_id is not None:
        q = q.where(S.conversation_id == conversation_id)
    q = q.order_by(S.created_at.desc(), S.id.desc()).limit(limit)
    with db.read() as s:
        if conversation_id is not None:
            owned(s, Conversation, tenant_id, conversation_id, name="conversation")
        return list(s.scalars(q))


def decide(
    db: Database,
    tenant_id: uuid.UUID,
    suggestion_id: uuid.UUID,
    *,
    status: SuggestionStatus,
    edited_content: str | None = None,
    feedback: str | None = None,
    sent_message_id: uuid.UUID | None = None,
) -> Suggestion:
    """Move a pending suggestion to ``status``; 409 when it is no longer pending."""
    with db.write() as s:
        row = owned(s, Suggestion, tenant_id, suggestion_id, name="suggestion", lock=True)
        if row.status != SuggestionStatus.PENDING:
            raise Conflict(
                f"the suggestion is {row.status.value}, not pending",
                suggestion_id=str(suggestion_id),
                status=row.status.value,
            )
        now = utcnow()
        row.status = status
        row.edited_content = edited_content
        row.feedback = feedback
        row.sent_message_id = sent_message_id
        row.decided_at = now
        row.updated_at = now
        events.record(
            s.connection(),
            tenant_id,
            events.SUGGESTION_DECIDED,
            conversation_id=row.conversation_id,
            data={"suggestion_id": str(row.id), "status": status.value},
        )
        return row
