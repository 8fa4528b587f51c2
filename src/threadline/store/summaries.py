"""Rolling summaries: each covers a seq range of one conversation, newer ones further on."""

from __future__ import annotations

import uuid
from typing import Any, cast

import sqlalchemy as sa

from threadline.domain.ids import new_id
from threadline.store.database import Database
from threadline.store.models import Summary
from threadline.store.types import utcnow

summaries = cast(sa.Table, Summary.__table__)

_LATEST = (
    sa.select(summaries)
    .where(
        summaries.c.tenant_id == sa.bindparam("t"),
        summaries.c.conversation_id == sa.bindparam("c"),
    )
    .order_by(summaries.c.to_seq.desc(), summaries.c.created_at.desc())
    .limit(1)
)


def latest(db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> dict[str, Any] | None:
    """The summary reaching furthest into the conversation, if any."""
    with db.connect() as conn:
        row = conn.execute(_LATEST, {"t": tenant_id, "c": conversation_id}).mappings().first()
    return None if row is None else dict(row)


def add(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    from_seq: int,
    to_seq: int,
    content: str,
    model: str | None,
    token_count: int | None,
) -> dict[str, Any]:
    row = {
        "id": new_id(),
        "tenant_id": tenant_id,
        "conversation_id": conversation_id,
        "from_seq": from_seq,
        "to_seq": to_seq,
        "content": content,
        "model": model,
        "token_count": token_count,
        "created_at": utcnow(),
    }
    db.run_write(lambda conn: conn.execute(summaries.insert(), row))
    return row
