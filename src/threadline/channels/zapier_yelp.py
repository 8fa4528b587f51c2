"""Yelp leads through Zapier: the Zap posts Yelp Leads API fields to ``inbound`` with the
inbox's ``webhook_token`` in ``X-Webhook-Token``, and pulls our replies from ``outbox``.

``zap_event`` is ``lead_created`` (``lead_id``, ``event_id``, ``customer_name``,
``temporary_phone_number``, ``temporary_email_address``, ``job_names``,
``interaction_time``, survey answers as ``survey_answers`` or any ``survey_*`` field) or
``new_message`` (``lead_id``, ``event_id``, ``event_type``, ``user_type``,
``user_display_name``, ``message_text``, ``interaction_time``). ``event_id`` is the message
id (retries are idempotent) and ``lead_id`` the conversation. A message whose
``user_type`` is ``BIZ`` was written by the business on Yelp: it is stored as outbound.

Sending is pull-based: ``send`` leaves the message for the outbox, which the route serves
(``outbox_request`` reads the Zap's fetch or acknowledgement, ``outbox_item`` shapes a reply).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from threadline.channels.addresses import e164, email_address
from threadline.channels.base import (
    Contact,
    Inbound,
    InboxConfig,
    Outbound,
    SendResult,
    WebhookRequest,
    WebhookResult,
    now,
    utc_from_iso,
)
from threadline.channels.voice_generic import check_token
from threadline.domain.enums import Channel, DeliveryStatus, Direction, MessageType
from threadline.domain.errors import MalformedPayload

EVENTS = ("lead_created", "new_message")


@dataclass(frozen=True, slots=True)
class OutboxRequest:
    """The Zap either fetches waiting replies (``ack`` empty) or acknowledges sent ones."""

    limit: int
    ack: list[str]


def outbox_request(request: WebhookRequest, max_limit: int = 100) -> OutboxRequest:
    data: dict[str, Any] = dict(request.query)
    if request.body:
        data.update(_fields(request))
    ack = data.get("ack") or data.get("acknowledge") or []
    if isinstance(ack, str):
        ack = [a.strip() for a in ack.split(",") if a.strip()]
    if not isinstance(ack, list) or not all(isinstance(a, str) for a in ack):
        raise MalformedPayload("ack must be a list of message ids")
    try:
        limit = int(data.get("limit") or 20)
    except (TypeError, ValueError) as exc:
        raise MalformedPayload("limit must be a number") from exc
    return OutboxRequest(limit=max(1, min(limit, max_limit)), ack=ack)


def outbox_item(message_id: str, lead_id: str | None, content: str) -> dict[str, Any]:
    """One waiting reply as the Zap reads it (its 'Send message' step maps these fields)."""
    return {"id": message_id, "lead_id": lead_id, "message_text": content}


class ZapierYelp:
    name: ClassVar[str] = "zapier"
    channel: ClassVar[Channel] = Channel.YELP
    webhook_names: ClassVar[tuple[str, ...]] = ("inbound", "outbox")
    required_credentials: ClassVar[tuple[str, ...]] = ()
    generated_credentials: ClassVar[tuple[str, ...]] = ("webhook_token",)
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ()

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        check_token(request, inbox, "webhook_token", "x-webhook-token")

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        if name != "inbound":
            raise MalformedPayload("the outbox is served by the route (see outbox_request)")
        data = _fields(request)
        event = data.get("zap_event")
        if event not in EVENTS:
            raise MalformedPayload(f"zap_event must be one of {', '.join(EVENTS)}")
        lead_id, event_id = _text(data.get("lead_id")), _text(data.get("event_id"))
        if not lead_id or not event_id:
            raise MalformedPayload("lead_id and event_id are required")
        when = data.get("interaction_time") or data.get("time_created")
        occurred = utc_from_iso(when) if when else now()
        phone = e164(_text(data.get("temporary_phone_number")), inbox.default_region or "US")
        email = email_address(_text(data.get("temporary_email_address")))
        name_ = _text(data.get("customer_name")) or (
            _text(data.get("user_display_name")) if data.get("user_type") != "BIZ" else None
        )
        channel_data: dict[str, Any] = {"zap_event": event, "lead_id": lead_id}
        for key in ("event_type", "user_type", "user_display_name", "business_id"):
            if data.get(key):
                channel_data[key] = data[key]
        if event == "lead_created":
            jobs = data.get("job_names")
            if isinstance(jobs, str):
                jobs = [j.strip() for j in jobs.split(",") if j.strip()]
            survey = data.get("survey_answers")
            if isinstance(survey, str):
                try:
                    survey = json.loads(survey)
                except ValueError:
                    survey = [survey]
            survey_fields = {
                k: v for k, v in data.items() if k.startswith("survey_") and k != "survey_answers"
            }
            channel_data.update(
                job_names=jobs or [],
                survey_answers=survey or survey_fields or None,
                temporary_phone_number=data.get("temporary_phone_number"),
                temporary_email_address=data.get("temporary_email_address"),
            )
            content = _text(data.get("message_text")) or _lead_summary(jobs or [], survey)
        else:
            content = _text(data.get("message_text")) or ""
            if not content:
                raise MalformedPayload("a new_message needs message_text")
        from_biz = data.get("user_type") == "BIZ"
        return WebhookResult(
            inbound=[
                Inbound(
                    external_message_id=event_id,
                    external_conversation_id=lead_id,
                    from_address=f"yelp:{lead_id}",
                    to_address=inbox.address,
                    occurred_at=occurred,
                    content=content,
                    message_type=MessageType.TEXT,
                    contact=Contact(name=name_, phone=phone, email=email),
                    channel_data=channel_data,
                    direction=Direction.OUTBOUND if from_biz else Direction.INBOUND,
                )
            ]
        )

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        """Nothing to call: the reply waits in the outbox until the Zap fetches it."""
        return SendResult(external_message_id=None, status=DeliveryStatus.QUEUED)


def _fields(request: WebhookRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        return request.json_object()
    return request.form().as_dict()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _lead_summary(jobs: list[str], survey: Any) -> str:
    lines = [f"New Yelp lead: {', '.join(jobs)}" if jobs else "New Yelp lead"]
    if isinstance(survey, list):
        for item in survey:
            if isinstance(item, dict):
                answer = item.get("answer_text") or item.get("answers")
                lines.append(f"{item.get('question_text') or item.get('question')}: {answer}")
            else:
                lines.append(str(item))
    return "\n".join(lines)
