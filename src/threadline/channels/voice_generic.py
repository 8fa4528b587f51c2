"""Voice calls as one ``transcript`` message, and the generic JSON shape for platforms
without a module of their own (and for importing legacy call logs).

The generic ``inbound`` webhook takes this JSON, authenticated by the inbox's
``webhook_token`` in ``X-Webhook-Token``::

    {
      "call_id": "c-123",                      required, the call's id (idempotency key)
      "from": "+14155550123",                  the caller
      "to": "+14155550100",                    the number called
      "direction": "inbound",                  or "outbound" (then the contact is "to")
      "started_at": "2025-11-25T10:00:00Z",    ISO 8601
      "ended_at": "2025-11-25T10:01:33Z",
      "duration_seconds": 93.4,
      "recording_url": "https://...",
      "ended_reason": "customer-ended-call",
      "caller_name": "Ann Customer",
      "summary": "Booked a table for Tuesday.",
      "segments": [{"speaker": "agent", "text": "Hello!", "start": 0.4, "end": 1.2}, ...],
      "actions": [{"name": "book_table", "arguments": {...}, "result": ..., "at": 41.0}]
    }

``speaker`` is ``agent`` or ``user`` (the caller); times are seconds from the call's start.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any, ClassVar

import httpx

from threadline.channels.addresses import e164
from threadline.channels.base import (
    Action,
    Attachment,
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
from threadline.domain.enums import Channel, MessageType
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

SPEAKER_LABELS = {"agent": "Agent", "user": "Caller"}


def transcript_inbound(
    *,
    inbox: InboxConfig,
    call_id: str,
    caller: str | None,
    called: str | None,
    direction: str,
    segments: list[dict[str, Any]],
    actions: list[Action],
    started_at: datetime | None,
    duration_seconds: float | None,
    recording_url: str | None = None,
    ended_reason: str | None = None,
    caller_name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Inbound:
    """One call as one transcript message: speaker-tagged lines, segments with times,
    duration, recording, ended reason; function calls as actions."""
    outbound_call = direction == "outbound"
    contact_raw = called if outbound_call else caller
    line_raw = caller if outbound_call else called
    phone = e164(contact_raw, inbox.default_region)
    content = "\n".join(
        f"{SPEAKER_LABELS.get(s['speaker'], s['speaker'].title())}: {s['text']}"
        for s in segments
        if s.get("text")
    )
    channel_data: dict[str, Any] = {
        "call_id": call_id,
        "call_direction": direction,
        "duration_seconds": duration_seconds,
        "recording_url": recording_url,
        "ended_reason": ended_reason,
        "segments": segments,
    }
    if extra:
        channel_data.update({k: v for k, v in extra.items() if v is not None})
    return Inbound(
        external_message_id=call_id,
        external_conversation_id=call_id,
        from_address=phone or contact_raw or "unknown",
        to_address=e164(line_raw, inbox.default_region) or line_raw or inbox.address,
        occurred_at=started_at or now(),
        content=content,
        message_type=MessageType.TRANSCRIPT,
        contact=Contact(name=caller_name, phone=phone),
        attachments=[Attachment(url=recording_url, content_type="audio/wav")]
        if recording_url
        else [],
        channel_data=channel_data,
        actions=actions,
    )


def segment(speaker: str, text: str, start: Any = None, end: Any = None) -> dict[str, Any]:
    return {"speaker": speaker, "text": text, "start": _seconds(start), "end": _seconds(end)}


def _seconds(value: Any) -> float | None:
    try:
        return round(float(value), 3) if value is not None else None
    except (TypeError, ValueError) as exc:
        raise MalformedPayload("a segment time is not a number", value=value) from exc


def check_token(request: WebhookRequest, inbox: InboxConfig, credential: str, header: str) -> None:
    expected = inbox.credential(credential)
    given = request.header(header)
    if expected is None:
        raise SignatureInvalid(f"the inbox has no {credential}")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureInvalid(f"missing or wrong {header}")


class GenericVoice:
    name: ClassVar[str] = "voice"
    channel: ClassVar[Channel] = Channel.VOICE
    webhook_names: ClassVar[tuple[str, ...]] = ("inbound",)
    required_credentials: ClassVar[tuple[str, ...]] = ()
    generated_credentials: ClassVar[tuple[str, ...]] = ("webhook_token",)
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ()

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        check_token(request, inbox, "webhook_token", "x-webhook-token")

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        data = request.json_object()
        call_id = data.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise MalformedPayload("a call needs call_id")
        segments = []
        for s in data.get("segments") or []:
            if not isinstance(s, dict) or not isinstance(s.get("text"), str):
                raise MalformedPayload("each segment needs speaker and text")
            segments.append(
                segment(str(s.get("speaker") or "user"), s["text"], s.get("start"), s.get("end"))
            )
        actions = []
        for a in data.get("actions") or []:
            if not isinstance(a, dict) or not a.get("name"):
                raise MalformedPayload("each action needs a name")
            actions.append(
                Action(
                    name=str(a["name"]),
                    arguments=a.get("arguments") or {},
                    call_id=a.get("id"),
                    result=a.get("result"),
                    error=a.get("error"),
                    at_seconds=_seconds(a.get("at")),
                )
            )
        started = data.get("started_at")
        duration = data.get("duration_seconds")
        if duration is None and started and data.get("ended_at"):
            duration = (utc_from_iso(data["ended_at"]) - utc_from_iso(started)).total_seconds()
        inbound = transcript_inbound(
            inbox=inbox,
            call_id=call_id,
            caller=data.get("from"),
            called=data.get("to"),
            direction=str(data.get("direction") or "inbound"),
            segments=segments,
            actions=actions,
            started_at=utc_from_iso(started) if started else None,
            duration_seconds=_seconds(duration),
            recording_url=data.get("recording_url"),
            ended_reason=data.get("ended_reason"),
            caller_name=data.get("caller_name"),
            extra={"summary": data.get("summary")},
        )
        return WebhookResult(inbound=[inbound])

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        raise ProviderError(
            "voice inboxes record calls; they cannot send messages", retryable=False
        )
