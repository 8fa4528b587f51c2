"""Bulk inserts write exactly what SQLAlchemy's own execution writes, with bounded memory."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from threadline.store import conversations, messages
from threadline.store.bulk_insert import CACHE_SIZE, BulkInsert
from threadline.store.messages import SELECT, messages_table

SECRET = "card 4242 4242 4242 4242"


def _full_message(when: datetime) -> dict:
    """A message with every field a caller can set, of every column type."""
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


def test_rows_read_back_as_written_and_as_answered(db, tenant):
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    when = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    plain = {"role": "user", "content": "hi", "occurred_at": when - timedelta(minutes=1)}
    answered = messages.append(db, tenant.tenant_id, conv.id, [plain, _full_message(when)])

    page, _ = messages.list_range(db, tenant.tenant_id, conv.id)
    with db.connect() as conn:
        q = SELECT.where(messages_table.c.conversation_id == conv.id).order_by(messages_table.c.seq)
        expected = [dict(r._mapping) for r in conn.execute(q)]

    assert page == expected
    full = page[1]
    for field, value in _full_message(when).items():
        assert full[field] == value, field
        assert answered.messages[1][field] == value, field
    assert isinstance(full["id"], uuid.UUID)
    assert full["read_at"].tzinfo is not None
    assert full["is_flagged"] is True and page[0]["is_flagged"] is False
    assert page[0]["tool_calls"] is None  # SQL NULL, not JSON null
    assert page[0]["delivery_status"] is None and page[0]["model_used"] is None


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
    insert = BulkInsert(messages_table.insert())
    own = {k: v for k, v in row.items() if k in messages.MESSAGE_COLUMNS and v is not None}
    with pytest.raises(sa.exc.IntegrityError) as caught, db.transaction() as conn:
        insert.run(conn, [own | {"content": SECRET}])
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.params)
    # The failed transaction stored nothing.
    assert [m["content"] for m in messages.last(db, tenant.tenant_id, conv.id, 5)] == ["a"]


def test_only_inserts_are_accepted():
    with pytest.raises(TypeError):
        BulkInsert(sa.select(messages_table.c.id))  # type: ignore[arg-type]


def test_compiled_forms_stay_bounded_whatever_fields_clients_send(db, tenant):
    """Every combination of optional fields compiles its own INSERT; the cache keeps at most
    CACHE_SIZE of them (575 combinations once made 575 forms, and ~131k are possible)."""
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    optional = ["content_html", "name", "thread_id", "external_conversation_id", "channel_data"]
    optional += ["attachments", "metadata", "parent_message_id"]
    parent = messages.append(db, tenant.tenant_id, conv.id, [{"role": "user", "content": "p"}])
    values = {
        "content_html": "<p>x</p>",
        "name": "n",
        "thread_id": "t",
        "external_conversation_id": "e",
        "channel_data": {"k": 1},
        "attachments": [{"url": "u"}],
        "metadata": {"m": 1},
        "parent_message_id": parent.messages[0]["id"],
    }
    for mask in range(1, 2 ** len(optional)):
        item = {"role": "user", "content": str(mask)}
        item |= {f: values[f] for bit, f in enumerate(optional) if mask >> bit & 1}
        messages.append(db, tenant.tenant_id, conv.id, [item])
    assert messages._INSERT_MESSAGES.cached_forms() <= CACHE_SIZE
    assert len(messages.last(db, tenant.tenant_id, conv.id, 300)) == 2 ** len(optional)
