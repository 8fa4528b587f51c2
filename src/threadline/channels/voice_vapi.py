"""Vapi: the ``end-of-call-report`` server message becomes one transcript message.

Vapi authenticates server messages with a shared secret in ``X-Vapi-Secret`` (credential
``secret``) or, with an HMAC custom credential, ``x-vapi-signature``: the hex HMAC-SHA256
of the raw body keyed with ``hmac_secret`` (optionally ``sha256=``-prefixed, and over
``{timestamp}.{body}`` when ``config.hmac_timestamp_header`` names the timestamp header).
Other server messages (status updates, transcripts as they happen) are acknowledged and
ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, ClassVar

import httpx

from threadline.channels.base import (
    Action,
    InboxConfig,
    Outbound,
    SendResult,
    WebhookRequest,
    WebhookResult,
    utc_from_iso,
    utc_from_timestamp,
)
from threadline.channels.voice_generic import check_token, segment, transcript_inbound
from threadline.domain.enums import Channel
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

ROLES = {"bot": "agent", "assistant": "agent", "user": "user"}


class Vapi:
    name: ClassVar[str] = "vapi"
    channel: ClassVar[Channel] = Channel.VOICE
    webhook_names: ClassVar[tuple[str, ...]] = ("inbound",)
    required_credentials: ClassVar[tuple[str, ...]] = ()
    generated_credentials: ClassVar[tuple[str, ...]] = ("secret",)
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ()

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        hmac_secret = inbox.credential("hmac_secret")
        header = str(inbox.config.get("hmac_header") or "x-vapi-signature")
        if hmac_secret and request.header(header):
            given = str(request.header(header)).removeprefix("sha256=")
            signed = request.body
            ts_header = inbox.config.get("hmac_timestamp_header")
            if ts_header:
                timestamp = request.header(str(ts_header))
                if not timestamp:
                    raise SignatureInvalid(f"missing {ts_header}")
                signed = timestamp.encode() + b"." + request.body
            expected = hmac.new(hmac_secret.encode(), signed, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected.encode(), given.encode()):
                raise SignatureInvalid(f"{header} does not match the body")
            return
        if inbox.credential("secret") is None and hmac_secret:
            raise SignatureInvalid(f"missing {header}")
        check_token(request, inbox, "secret", "x-vapi-secret")

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        payload = request.json_object()
        message = payload.get("message")
        if not isinstance(message, dict) or not message.get("type"):
            raise MalformedPayload("a Vapi server message needs message.type")
        if message["type"] != "end-of-call-report":
            return WebhookResult()
        call = message.get("call") if isinstance(message.get("call"), dict) else {}
        assert isinstance(call, dict)
        call_id = call.get("id")
        if not call_id:
            raise MalformedPayload("an end-of-call-report needs call.id")
        artifact = message.get("artifact") if isinstance(message.get("artifact"), dict) else {}
        assert isinstance(artifact, dict)
        messages = artifact.get("messages") or message.get("messages") or []
        if not isinstance(messages, list):
            raise MalformedPayload("artifact.messages is not a list")
        segments: list[dict[str, Any]] = []
        actions: list[Action] = []
        results: dict[str, Any] = {}
        for m in messages:
            if not isinstance(m, dict):
                raise MalformedPayload("a transcript message is not an object")
            role = m.get("role")
            if role in ROLES and m.get("message"):
                end = m.get("endTime")
                start_s = m.get("secondsFromStart")
                end_s = None
                if end is not None and m.get("time") is not None and start_s is not None:
                    end_s = float(start_s) + (float(end) - float(m["time"])) / 1000
                segments.append(segment(ROLES[str(role)], str(m["message"]), start_s, end_s))
            elif role == "tool_call_result" and m.get("toolCallId"):
                results[str(m["toolCallId"])] = m.get("result")
            elif role == "tool_calls":
                for tc in m.get("toolCalls") or []:
                    fn = tc.get("function") or {}
                    actions.append(
                        Action(
                            name=str(fn.get("name") or "unknown"),
                            arguments=_arguments(fn.get("arguments")),
                            call_id=tc.get("id"),
                            at_seconds=m.get("secondsFromStart"),
                        )
                    )
        actions = [
            Action(
                a.name, a.arguments, a.call_id, results.get(a.call_id or ""), a.error, a.at_seconds
            )
            for a in actions
        ]
        customer = call.get("customer") or message.get("customer") or {}
        phone_number = message.get("phoneNumber") or call.get("phoneNumber") or {}
        vapi_type = str(call.get("type") or "")
        direction = "outbound" if vapi_type == "outboundPhoneCall" else "inbound"
        ours = phone_number.get("number") if isinstance(phone_number, dict) else None
        theirs = customer.get("number") if isinstance(customer, dict) else None
        started = message.get("startedAt") or call.get("startedAt")
        duration = message.get("durationSeconds")
        if duration is None and message.get("durationMs") is not None:
            duration = float(message["durationMs"]) / 1000
        recording = artifact.get("recordingUrl") or message.get("recordingUrl")
        analysis = message.get("analysis") if isinstance(message.get("analysis"), dict) else {}
        assert isinstance(analysis, dict)
        inbound = transcript_inbound(
            inbox=inbox,
            call_id=str(call_id),
            caller=ours if direction == "outbound" else theirs,
            called=theirs if direction == "outbound" else ours,
            direction=direction,
            segments=segments,
            actions=actions,
            started_at=utc_from_iso(started)
            if started
            else (
                utc_from_timestamp(message["timestamp"] / 1000)
                if message.get("timestamp")
                else None
            ),
            duration_seconds=duration,
            recording_url=recording,
            ended_reason=message.get("endedReason"),
            caller_name=customer.get("name") if isinstance(customer, dict) else None,
            extra={
                "summary": analysis.get("summary") or message.get("summary"),
                "structured_data": analysis.get("structuredData"),
                "success_evaluation": analysis.get("successEvaluation"),
                "stereo_recording_url": artifact.get("stereoRecordingUrl")
                or message.get("stereoRecordingUrl"),
                "cost": message.get("cost"),
            },
        )
        return WebhookResult(inbound=[inbound])

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        raise ProviderError(
            "voice inboxes record calls; they cannot send messages", retryable=False
        )


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"raw": value}
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return {}
