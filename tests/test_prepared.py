"""Prepared statements read and write exactly what SQLAlchemy's own execution does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from threadline.store import conversations, messages
from threadline.store.messages import _SELECT, M
from threadline.store.prepared import Prepared

SECRET = "card 4242 4242 4242 4242"


def _full_message(when: datetime) -> dict:
    """A message with every column a caller can set, of every column type."""
    return {
        "role": "assistant",
        "direction": "outbound",
        "sender_type": "agent",
        "message_type": "text",
        "content": "Your quote is ready.",
        "content_html": "<p>Your quote is ready.</p>",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "quote", "arguments": '{"rooms": 3}'},
            }
        ],
        "name": "estimator",
        "thread_id": "t-1",
        "external_message_id": "ext-1",
        "external_conversation_id": "ext-conv",
        "delivery_status": "delivered",
        "delivery_error": None,
        "sent_at": when,
        "delivered_at": when + timedelta(seconds=1),
        "read_at": when + timedelta(seconds=2, microseconds=123),
        "attachments": [{"url": "https://example.com/a.png", "type": "image/png"}],
        "channel_data": {"yelp": {"lead_id": "L1"}},
        "model_used": "gpt-4o-mini",
        "prompt_used": "You are a helpful estimator.",
        "token_usage": {"prompt_tokens": 12, "completion_tokens": 5},
        "cost_usd": 0.00042,
        "response_time_ms": 830,
        "is_flagged": True,
        "flagged_reason": "price mentioned",
        "quality_score": 0.875,
        "metadata": {"nested": {"list": [1, 2.5, None, "x"]}, "flag": False},
        "occurred_at": when,
    }


def test_rows_read_like_sqlalchemy_reads_them(db, tenant):
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    when = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    plain = {"role": "user", "content": "hi", "occurred_at": when - timedelta(minutes=1)}
    messages.append(db, tenant.tenant_id, conv.id, [plain, _full_message(when)])

    prepared, _ = messages.list_range(db, tenant.tenant_id, conv.id)
    with db.connect() as conn:
        q = _SELECT.where(M.c.conversation_id == conv.id).order_by(M.c.seq)
        expected = [dict(r._mapping) for r in conn.execute(q)]

    assert prepared == expected
    full = prepared[1]
    assert isinstance(full["id"], uuid.UUID)
    assert full["read_at"] == when + timedelta(seconds=2, microseconds=123)
    assert full["read_at"].tzinfo is not None
    assert full["is_flagged"] is True and prepared[0]["is_flagged"] is False
    assert full["metadata"] == {"nested": {"list": [1, 2.5, None, "x"]}, "flag": False}
    assert prepared[0]["tool_calls"] is None  # SQL NULL, not JSON null


def test_json_values_are_not_shared_between_rows(db, tenant):
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    same = {"role": "user", "content": "x", "metadata": {"tags": ["a"]}}
    messages.append(db, tenant.tenant_id, conv.id, [same, same])
    first, second = messages.last(db, tenant.tenant_id, conv.id, 2)
    first["metadata"]["tags"].append("b")
    assert second["metadata"] == {"tags": ["a"]}
    assert first["tenant_id"] == second["tenant_id"] == tenant.tenant_id


def test_driver_errors_are_sqlalchemy_errors_without_parameters(db, tenant):
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    [row] = messages.append(
        db, tenant.tenant_id, conv.id, [{"role": "user", "content": "a"}]
    ).messages
    insert = Prepared(M.insert())
    duplicate = {k: v for k, v in row.items() if v is not None} | {"content": SECRET}
    with pytest.raises(sa.exc.IntegrityError) as caught, db.transaction() as conn:
        insert.run(conn, duplicate)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.params)
    # The failed transaction stored nothing.
    assert [m["content"] for m in messages.last(db, tenant.tenant_id, conv.id, 5)] == ["a"]
