from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from threadline.channels import registry
from threadline.channels.base import Outbound
from threadline.channels.zapier_yelp import outbox_item, outbox_request
from threadline.domain.enums import Channel, DeliveryStatus, Direction
from threadline.domain.errors import MalformedPayload, SignatureInvalid

from .fakes import fixture_bytes, fixture_json
from .helpers import inbox, request

URL = "https://threadline.example.com/webhooks/zapier/0190f0c1/inbound"
zapier = registry.get("zapier")
BOX = inbox("zapier", Channel.YELP, "WavvLdfdP6g8aZTtbBQHTw", {"webhook_token": "zap-token"})
JSON = {"Content-Type": "application/json", "X-Webhook-Token": "zap-token"}


def test_lead_created_json() -> None:
    req = request(URL, fixture_bytes("zapier_yelp_lead_created.json"), JSON)
    zapier.verify("inbound", req, BOX)
    (lead,) = zapier.parse("inbound", req, BOX).inbound
    assert lead.external_message_id == "pIuVJ3ChMTsl0Dd5dNqfvA"
    assert lead.external_conversation_id == "x1RH6qPZk8cqSA1A0pbDzA"
    assert lead.contact.name == "Frances W."
    assert lead.contact.phone == "+14155550199"
    assert lead.contact.email == "frances.w.7xk2@messaging.yelp.com"
    assert lead.content == "Kitchen sink is backing up, can someone come today?"
    assert lead.channel_data["job_names"] == ["Drain cleaning", "Leak repair"]
    assert lead.channel_data["survey_answers"][0]["question_text"] == "What type of property?"
    assert lead.direction == Direction.INBOUND
    assert lead.occurred_at.isoformat() == "2025-11-25T09:41:07+00:00"


def test_new_message_as_form_data_and_business_messages_are_outbound() -> None:
    fields = {
        "zap_event": "new_message",
        "lead_id": "x1RH6qPZk8cqSA1A0pbDzA",
        "event_id": "ev-2",
        "event_type": "TEXT",
        "user_type": "CONSUMER",
        "user_display_name": "Frances W.",
        "message_text": "Great, 3pm works",
        "interaction_time": "2025-11-25T10:00:00Z",
    }
    form = {"Content-Type": "application/x-www-form-urlencoded", "X-Webhook-Token": "zap-token"}
    (msg,) = zapier.parse("inbound", request(URL, urlencode(fields).encode(), form), BOX).inbound
    assert (msg.content, msg.direction, msg.contact.name) == (
        "Great, 3pm works",
        Direction.INBOUND,
        "Frances W.",
    )
    biz = {
        **fields,
        "event_id": "ev-3",
        "user_type": "BIZ",
        "user_display_name": "Mario's Plumbing",
    }
    (reply,) = zapier.parse("inbound", request(URL, urlencode(biz).encode(), form), BOX).inbound
    assert reply.direction == Direction.OUTBOUND
    assert reply.contact.name is None


@pytest.mark.parametrize("token", [None, "wrong"])
def test_bad_token(token: str | None) -> None:
    headers = {"X-Webhook-Token": token} if token else {}
    with pytest.raises(SignatureInvalid):
        zapier.verify("inbound", request(URL, b"{}", headers), BOX)


@pytest.mark.parametrize(
    "data",
    [
        {"zap_event": "lead_deleted", "lead_id": "l", "event_id": "e"},
        {"zap_event": "new_message", "lead_id": "l"},
        {"zap_event": "new_message", "lead_id": "l", "event_id": "e"},
        {
            "zap_event": "new_message",
            "lead_id": "l",
            "event_id": "e",
            "message_text": "x",
            "interaction_time": "later",
        },
    ],
)
def test_malformed(data: dict[str, str]) -> None:
    with pytest.raises(MalformedPayload):
        zapier.parse("inbound", request(URL, json.dumps(data).encode(), JSON), BOX)


def test_outbox_fetch_ack_and_send_leaves_it_queued() -> None:
    assert outbox_request(request(URL, method="GET", query={"limit": "500"})).limit == 100
    acked = outbox_request(request(URL, json.dumps({"ack": ["m1", "m2"]}).encode(), JSON))
    assert acked.ack == ["m1", "m2"]
    with pytest.raises(MalformedPayload):
        outbox_request(request(URL, b'{"ack": 5}', JSON))
    assert outbox_item("m1", "lead", "hi") == {"id": "m1", "lead_id": "lead", "message_text": "hi"}
    result = zapier.send(Outbound("yelp:lead", "m1", "hi"), BOX, None)  # type: ignore[arg-type]
    assert result.status == DeliveryStatus.QUEUED and result.external_message_id is None
    assert fixture_json("zapier_yelp_lead_created.json")["zap_event"] == "lead_created"
