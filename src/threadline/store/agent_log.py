"""What agents did: one ``model_calls`` row per model call, ``action_logs`` per tool call,
and the conversation's action log read back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa

from threadline.domain.ids import new_id
from threadline.store.database import Database
from threadline.store.models import ActionLog, Conversation, ModelCall
from threadline.store.owned import owned
from threadline.store.types import utcnow

model_calls = cast(sa.Table, ModelCall.__table__)
action_logs = cast(sa.Table, ActionLog.__table__)


def model_call_row(
    tenant_id: uuid.UUID,
    *,
    purpose: str,
    model: str | None,
    conversation_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    prompt: str | None = None,
    token_usage: Any = None,
    cost_usd: float | None = None,
    response_time_ms: int | None = None,
    error: str | None = None,
    message_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "agent_id": agent_id,
        "purpose": purpose,
        "model": model,
        "prompt": prompt,
        "token_usage": token_usage,
        "cost_usd": cost_usd,
        "response_time_ms": response_time_ms,
        "error": error,
        "created_at": utcnow(),
    }


def record_model_call(db: Database, row: dict[str, Any]) -> uuid.UUID:
    db.run_write(lambda conn: conn.execute(model_calls.insert(), row))
    return cast(uuid.UUID, row["id"])


def link_model_call(
    db: Database, tenant_id: uuid.UUID, call_id: uuid.UUID, message_id: uuid.UUID
) -> None:
    """Point a call at the message it produced (the message then shows its model fields)."""
    update = (
        model_calls.update()
        .where(model_calls.c.tenant_id == tenant_id, model_calls.c.id == call_id)
        .values(message_id=message_id)
    )
    db.run_write(lambda conn: conn.execute(update))


def record_actions(db: Database, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        db.run_write(lambda conn: conn.execute(action_logs.insert(), list(rows)))


def action_row(
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "conversation_id": conversation_id,
        "agent_id": agent_id,
        "message_id": message_id,
        "parameters": None,
        "result": None,
        "error": None,
        "duration_ms": None,
        "created_at": utcnow(),
    } | fields


def list_actions(
    db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID, limit: int = 500
) -> list[ActionLog]:
    A = ActionLog
    q = (
        sa.select(A)
        .where(A.tenant_id == tenant_id, A.conversation_id == conversation_id)
        .order_by(A.created_at, A.id)
        .limit(limit)
    )
    with db.read() as s:
        owned(s, Conversation, tenant_id, conversation_id, name="conversation")
        return list(s.scalars(q))
