"""The events written beside delivery status changes and suggestions: each in the same
transaction as its change, with ids and no bodies."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import TenantKey
from threadline.channels.base import StatusUpdate
from threadline.domain.enums import DeliveryStatus, SuggestionStatus
from threadline.domain.errors import Conflict
from threadline.domain.ids import new_id
from threadline.settings import Settings
from threadline.store import (
    Database,
    conversations,
    deliveries,
    events,
    inboxes,
    messages,
    outbox,
    statuses,
    suggestions,
)
from threadline.store.types import utcnow

Json = dict[str, Any]


def _types(db: Database, tenant: TenantKey, *wanted: str) -> list[Json]:
    return [e for e in events.after(db, tenant.tenant_id, None) if e["type"] in wanted]


def _queued(
    db: Database, tenant: TenantKey, inbox_id: uuid.UUID | None = None
) -> tuple[uuid.UUID, uuid.UUID]:
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    answer = messages.append(
        db, tenant.tenant_id, conv.id, [{"role": "assistant", "content": "secret words"}]
    )
    message_id = answer.messages[0]["id"]
    now = utcnow()
    db.run_write(
        lambda conn: conn.execute(
            deliveries.deliveries.insert(),
            {
                "id": new_id(),
                "tenant_id": tenant.tenant_id,
                "message_id": message_id,
                "inbox_id": inbox_id,
                "status": DeliveryStatus.QUEUED,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
    )
    return conv.id, message_id


def test_each_delivery_status_event_logs_message_status_updated(
    db: Database, tenant: TenantKey
) -> None:
    conv_id, message_id = _queued(db, tenant)
    lease = timedelta(seconds=30)
    [first] = deliveries.claim(db, limit=5, lease=lease)
    deliveries.record_retry(db, first, retry_at=utcnow(), error_code="503", error="busy")
    [second] = deliveries.claim(db, limit=5, lease=lease)
    deliveries.record_sent(
        db, second, status=DeliveryStatus.SENT, external_message_id="SM1", provider="twilio"
    )

    logged = _types(db, tenant, events.MESSAGE_STATUS_UPDATED)
    assert [(e["data"]["status"], e["data"]["provider_status"]) for e in logged] == [
        ("queued", "retrying"),
        ("sent", "accepted"),
    ]
    assert {e["conversation_id"] for e in logged} == {conv_id}
    assert {e["data"]["message_id"] for e in logged} == {str(message_id)}
    assert len(deliveries.events_for(db, tenant.tenant_id, message_id)) == len(logged)
    assert "secret words" not in json.dumps(logged, default=str)


def test_a_failed_delivery_logs_its_error_code(db: Database, tenant: TenantKey) -> None:
    _, message_id = _queued(db, tenant)
    [claim] = deliveries.claim(db, limit=5, lease=timedelta(seconds=30))
    deliveries.record_failed(db, claim, error_code="21211", error="invalid number")
    [e] = _types(db, tenant, events.MESSAGE_STATUS_UPDATED)
    assert e["data"] | {"attempt": 1} == {
        "message_id": str(message_id),
        "status": "failed",
        "provider_status": "failed",
        "error_code": "21211",
        "attempt": 1,
    }


def test_a_fenced_out_record_logs_nothing(db: Database, tenant: TenantKey) -> None:
    _queued(db, tenant)
    [claim] = deliveries.claim(db, limit=5, lease=timedelta(seconds=30))
    assert deliveries.record_failed(db, claim, error_code=None, error="x")
    # the same claim again: no longer this worker's, nothing written
    assert not deliveries.record_failed(db, claim, error_code=None, error="x")
    assert len(_types(db, tenant, events.MESSAGE_STATUS_UPDATED)) == 1


def _inbox(db: Database, settings: Settings, tenant: TenantKey) -> uuid.UUID:
    fields = {
        "provider": "twilio",
        "address": "+14155550199",
        "credentials": {"account_sid": "AC" + "0" * 32, "auth_token": "tok"},
    }
    return inboxes.create(db, settings, tenant.tenant_id, fields).id


def test_provider_callbacks_log_status_updates_for_known_messages_only(
    db: Database, settings: Settings, tenant: TenantKey
) -> None:
    inbox_id = _inbox(db, settings, tenant)
    conv_id, message_id = _queued(db, tenant, inbox_id)
    [claim] = deliveries.claim(db, limit=5, lease=timedelta(seconds=30))
    deliveries.record_sent(
        db, claim, status=DeliveryStatus.SENT, external_message_id="SM1", provider="twilio"
    )
    now = utcnow()
    statuses.apply(
        db,
        tenant.tenant_id,
        inbox_id,
        [
            StatusUpdate("SM1", DeliveryStatus.DELIVERED, "delivered", now),
            StatusUpdate("SM-unknown", DeliveryStatus.DELIVERED, "delivered", now),
        ],
    )
    logged = _types(db, tenant, events.MESSAGE_STATUS_UPDATED)
    assert [(e["data"]["status"], e["data"]["provider_status"]) for e in logged] == [
        ("sent", "accepted"),
        ("delivered", "delivered"),
    ]
    assert logged[-1]["conversation_id"] == conv_id
    assert logged[-1]["data"]["message_id"] == str(message_id)


def test_an_outbox_acknowledgement_logs_sent(
    db: Database, settings: Settings, tenant: TenantKey
) -> None:
    inbox_id = _inbox(db, settings, tenant)
    _, message_id = _queued(db, tenant, inbox_id)
    assert outbox.ack(db, tenant.tenant_id, inbox_id, [str(message_id)]) == 1
    [e] = _types(db, tenant, events.MESSAGE_STATUS_UPDATED)
    assert (e["data"]["message_id"], e["data"]["status"]) == (str(message_id), "sent")
    assert e["data"]["provider_status"] == "acknowledged"


def _draft(db: Database, tenant: TenantKey, conv_id: uuid.UUID, text: str) -> uuid.UUID:
    row = suggestions.create_pending(
        db, tenant.tenant_id, {"conversation_id": conv_id, "content": text}
    )
    return row.id


def test_suggestions_log_created_and_decided(db: Database, tenant: TenantKey) -> None:
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    first = _draft(db, tenant, conv.id, "draft one")
    second = _draft(db, tenant, conv.id, "draft two")  # supersedes the first
    suggestions.decide(
        db, tenant.tenant_id, second, status=SuggestionStatus.REJECTED, feedback="no"
    )

    logged = _types(db, tenant, events.SUGGESTION_CREATED, events.SUGGESTION_DECIDED)
    assert [(e["type"], e["data"]) for e in logged] == [
        ("suggestion.created", {"suggestion_id": str(first)}),
        ("suggestion.decided", {"suggestion_id": str(first), "status": "rejected"}),
        ("suggestion.created", {"suggestion_id": str(second)}),
        ("suggestion.decided", {"suggestion_id": str(second), "status": "rejected"}),
    ]
    assert {e["conversation_id"] for e in logged} == {conv.id}
    assert "draft" not in json.dumps(logged, default=str)


def test_a_refused_decision_logs_nothing(db: Database, tenant: TenantKey) -> None:
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    draft = _draft(db, tenant, conv.id, "hello")
    suggestions.decide(db, tenant.tenant_id, draft, status=SuggestionStatus.REJECTED)
    before = len(events.after(db, tenant.tenant_id, None))
    with pytest.raises(Conflict):
        suggestions.decide(db, tenant.tenant_id, draft, status=SuggestionStatus.APPROVED)
    assert len(events.after(db, tenant.tenant_id, None)) == before


def test_rejecting_over_the_api_is_streamed_as_an_event(
    api: TestClient, db: Database, tenant: TenantKey, conversation: Json
) -> None:
    draft = _draft(db, tenant, uuid.UUID(conversation["id"]), "hello")
    r = api.post(f"/v1/suggestions/{draft}/reject", json={"feedback": "off"})
    assert r.status_code == 200, r.text
    page = api.get("/v1/events", params={"types": "suggestion.decided"}).json()["data"]
    assert [e["data"] for e in page] == [{"suggestion_id": str(draft), "status": "rejected"}]
