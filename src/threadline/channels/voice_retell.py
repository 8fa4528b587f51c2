"""Retell AI: the ``call_analyzed`` webhook becomes one transcript message.

Retell signs with ``X-Retell-Signature: v={ms timestamp},d={hex HMAC-SHA256}`` of the raw
body followed by the timestamp, keyed with the account's API key (what ``retell.verify``
in Retell's SDK checks), within five minutes. ``call_started`` and ``call_ended`` are
acknowledged and ignored: ``call_analyzed`` carries everything they do and the analysis.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any, ClassVar

import httpx

from threadline.channels.base import (
    Action,
    InboxConfig,
    Outbound,
    SendResult,
    WebhookRequest,
    WebhookResult,
    utc_from_timestamp,
)
from threadline.channels.voice_generic import segment, transcript_inbound
from threadline.channels.voice_vapi import _arguments
from threadline.domain.enums import Channel
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

TOLERANCE_MS = 5 * 60 * 1000
_SIGNATURE = re.compile(r"v=(\d+),d=([0-9a-f]{64})")


class Retell:
    name: ClassVar[str] = "retell"
    channel: ClassVar[Channel] = Channel.VOICE
    webhook_names: ClassVar[tuple[str, ...]] = ("inbound",)
    required_credentials: ClassVar[tuple[str, ...]] = ("api_key",)
    generated_credentials: ClassVar[tuple[str, ...]] = ()
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        api_key = inbox.credential("api_key")
        if api_key is None:
            raise SignatureInvalid("the inbox has no api_key")
        match = _SIGNATURE.fullmatch(request.header("x-retell-signature") or "")
        if not match:
            raise SignatureInvalid("missing or malformed X-Retell-Signature")
        stamp, digest = match.groups()
        if abs(self._clock() * 1000 - int(stamp)) > TOLERANCE_MS:
            raise SignatureInvalid("X-Retell-Signature is too old or in the future")
        expected = hmac.new(api_key.encode(), request.body + stamp.encode(), hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest().encode(), digest.encode()):
            raise SignatureInvalid("X-Retell-Signature does not match the body")

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        payload = request.json_object()
        event = payload.get("event") or payload.get("event_type")
        call = payload.get("call") or payload.get("data")
        if not isinstance(event, str) or not isinstance(call, dict):
            raise MalformedPayload("a Retell webhook needs event and call")
        if event != "call_analyzed":
            return WebhookResult()
        call_id = call.get("call_id")
        if not call_id:
            raise MalformedPayload("a Retell call needs call_id")
        segments = []
        for u in call.get("transcript_object") or []:
            if not isinstance(u, dict) or "content" not in u:
                raise MalformedPayload("a transcript_object utterance needs role and content")
            words = [w for w in u.get("words") or [] if isinstance(w, dict)]
            start = words[0].get("start") if words else None
            end = words[-1].get("end") if words else None
            speaker = "agent" if u.get("role") == "agent" else "user"
            segments.append(segment(speaker, str(u["content"]), start, end))
        actions: list[Action] = []
        results: dict[str, Any] = {}
        for u in call.get("transcript_with_tool_calls") or []:
            if not isinstance(u, dict):
                continue
            if u.get("role") == "tool_call_result":
                results[str(u.get("tool_call_id"))] = u.get("content")
        for u in call.get("transcript_with_tool_calls") or []:
            if isinstance(u, dict) and u.get("role") == "tool_call_invocation":
                tool_id = str(u.get("tool_call_id"))
                actions.append(
                    Action(
                        name=str(u.get("name") or "unknown"),
                        arguments=_arguments(u.get("arguments")),
                        call_id=tool_id,
                        result=results.get(tool_id),
                    )
                )
        analysis = call.get("call_analysis") if isinstance(call.get("call_analysis"), dict) else {}
        assert isinstance(analysis, dict)
        start_ms = call.get("start_timestamp")
        duration_ms = call.get("duration_ms")
        if duration_ms is None and start_ms is not None and call.get("end_timestamp") is not None:
            duration_ms = call["end_timestamp"] - start_ms
        dynamic = call.get("retell_llm_dynamic_variables") or {}
        inbound = transcript_inbound(
            inbox=inbox,
            call_id=str(call_id),
            caller=call.get("from_number"),
            called=call.get("to_number"),
            direction=str(call.get("direction") or "inbound"),
            segments=segments,
            actions=actions,
            started_at=utc_from_timestamp(start_ms / 1000) if start_ms is not None else None,
            duration_seconds=duration_ms / 1000 if duration_ms is not None else None,
            recording_url=call.get("recording_url"),
            ended_reason=call.get("disconnection_reason"),
            caller_name=dynamic.get("customer_name") if isinstance(dynamic, dict) else None,
            extra={
                "summary": analysis.get("call_summary"),
                "user_sentiment": analysis.get("user_sentiment"),
                "call_successful": analysis.get("call_successful"),
                "custom_analysis_data": analysis.get("custom_analysis_data"),
                "agent_id": call.get("agent_id"),
            },
        )
        return WebhookResult(inbound=[inbound])

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        raise ProviderError(
            "voice inboxes record calls; they cannot send messages", retryable=False
        )
