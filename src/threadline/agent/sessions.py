"""Sessions: a conversation split where it was idle for longer than a gap (24 h by default).

Computed from the messages' times, not stored: one pass over ``(seq, occurred_at, role)``
in seq order. A session is ``escalated`` when the conversation is escalated and it is the
last one, ``active`` when it is the last and the gap has not passed yet, else ``ended``.
The last session carries the conversation's latest summary.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from threadline.domain.enums import ConversationStatus
from threadline.store import summaries
from threadline.store.database import Database
from threadline.store.models import Conversation, Message
from threadline.store.owned import owned
from threadline.store.types import utcnow


def sessions(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    gap: timedelta,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    M = Message
    q = (
        sa.select(M.seq, M.occurred_at)
        .where(M.tenant_id == tenant_id, M.conversation_id == conversation_id)
        .order_by(M.seq)
    )
    with db.read() as s:
        conv = owned(s, Conversation, tenant_id, conversation_id, name="conversation")
        status = conv.status
        rows = s.execute(q).all()
    now = now or utcnow()
    out: list[dict[str, Any]] = []
    for seq, at in rows:
        if out and at - out[-1]["last_message_at"] <= gap:
            current = out[-1]
            current["last_seq"] = seq
            current["last_message_at"] = max(at, current["last_message_at"])
            current["message_count"] += 1
            continue
        out.append(
            {
                "index": len(out) + 1,
                "first_seq": seq,
                "last_seq": seq,
                "started_at": at,
                "last_message_at": at,
                "message_count": 1,
                "status": "ended",
                "summary": None,
            }
        )
    if out:
        last = out[-1]
        if status == ConversationStatus.ESCALATED:
            last["status"] = "escalated"
        elif now - last["last_message_at"] <= gap and status != ConversationStatus.ARCHIVED:
            last["status"] = "active"
        latest = summaries.latest(db, tenant_id, conversation_id)
        if latest is not None:
            last["summary"] = latest["content"]
    return out
