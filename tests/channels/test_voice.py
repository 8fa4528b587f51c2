from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from retell.lib.webhook_auth import symmetric

from threadline.channels import registry
from threadline.channels.base import Outbound
from threadline.domain.enums import Channel, MessageType
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

from .fakes import fixture_bytes
from .helpers import inbox, request

URL = "https://threadline.example.com/webhooks/x/0190f0c1/inbound"


def voice_inbox(provider: str, **credentials: str):  # type: ignore[no-untyped-def]
    return inbox(provider, Channel.VOICE, "+14155550100", credentials)


def test_vapi_end_of_call_report_is_one_transcript_with_actions() -> None:
    vapi = registry.get("vapi")
    box = voice_inbox("vapi", secret="vapi-shared-secret")
    req = request(
        URL, fixture_bytes("vapi_end_of_call_report.json"), {"X-Vapi-Secret": "vapi-shared-secret"}
    )
    vapi.verify("inbound", req, box)
    (call,) = vapi.parse("inbound", req, box).inbound
    assert call.message_type == MessageType.TRANSCRIPT
    assert (
        call.external_message_id
        == call.external_conversation_id
        == "3f9c2b6e-5d1a-4e8f-9b7c-2a1d0e9f8c7b"
    )
    assert call.from_address == "+14155550123"
    assert call.to_address == "+14155550100"
    assert call.contact.name == "Ann Customer"
    assert call.content.splitlines() == [
        "Agent: Thanks for calling Luigi's, how can I help?",
        "Caller: A table for four tonight at seven.",
        "Agent: Booked: four people at 7pm.",
    ]
    first = call.channel_data["segments"][0]
    assert first == {
        "speaker": "agent",
        "text": "Thanks for calling Luigi's, how can I help?",
        "start": 1.44,
        "end": 3.94,
    }
    assert call.channel_data["duration_seconds"] == 93.4
    assert call.channel_data["ended_reason"] == "customer-ended-call"
    assert call.channel_data["recording_url"] == "https://storage.vapi.ai/3f9c2b6e-mono.wav"
    assert call.channel_data["summary"] == "Caller booked a table for four at 7pm."
    assert call.attachments[0].url == "https://storage.vapi.ai/3f9c2b6e-mono.wav"
    (action,) = call.actions
    assert (action.name, action.arguments, action.call_id) == (
        "book_table",
        {"party_size": 4, "time": "19:00"},
        "call_Xq1",
    )
    assert action.result == '{"confirmation": "LU-8812"}'
    assert call.occurred_at.isoformat() == "2025-11-25T10:00:00+00:00"


def test_vapi_hmac_signature() -> None:
    vapi = registry.get("vapi")
    body = fixture_bytes("vapi_end_of_call_report.json")
    box = voice_inbox("vapi", hmac_secret="hmac-key")
    good = hmac.new(b"hmac-key", body, hashlib.sha256).hexdigest()
    vapi.verify("inbound", request(URL, body, {"x-vapi-signature": good}), box)
    vapi.verify("inbound", request(URL, body, {"x-vapi-signature": "sha256=" + good}), box)
    for headers in ({"x-vapi-signature": "0" * 64}, {}, {"X-Vapi-Secret": "hmac-key"}):
        with pytest.raises(SignatureInvalid):
            vapi.verify("inbound", request(URL, body, headers), box)


def test_vapi_wrong_secret_and_other_messages() -> None:
    vapi = registry.get("vapi")
    box = voice_inbox("vapi", secret="vapi-shared-secret")
    with pytest.raises(SignatureInvalid):
        vapi.verify("inbound", request(URL, b"{}", {"X-Vapi-Secret": "nope"}), box)
    status = json.dumps({"message": {"type": "status-update", "status": "in-progress"}}).encode()
    assert vapi.parse("inbound", request(URL, status), box).inbound == []
    for bad in (
        b"[]",
        b'{"message": {}}',
        b'{"message": {"type": "end-of-call-report", "call": {}}}',
    ):
        with pytest.raises(MalformedPayload):
            vapi.parse("inbound", request(URL, bad), box)
    with pytest.raises(ProviderError):
        vapi.send(Outbound("+14155550123", "k", "hi"), box, None)  # type: ignore[arg-type]


def retell_signed(body: bytes, key: str = "retell-api-key", ts: int | None = None):  # type: ignore[no-untyped-def]
    # Retell's own SDK signs exactly as its webhooks do.
    signature = symmetric["sign"](
        body.decode(), key, ts if ts is not None else int(time.time() * 1000)
    )
    return request(URL, body, {"X-Retell-Signature": signature, "Content-Type": "application/json"})


def test_retell_call_analyzed_signed_by_the_sdk() -> None:
    retell = registry.get("retell")
    box = voice_inbox("retell", api_key="retell-api-key")
    req = retell_signed(fixture_bytes("retell_call_analyzed.json"))
    retell.verify("inbound", req, box)
    (call,) = retell.parse("inbound", req, box).inbound
    assert call.external_message_id == "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6"
    assert call.from_address == "+12137771234"
    assert call.contact.name == "John Doe"
    assert call.channel_data["segments"][1] == {
        "speaker": "user",
        "text": "I need to move my cleaning.",
        "start": 3.2,
        "end": 4.9,
    }
    assert call.channel_data["duration_seconds"] == 15.791
    assert call.channel_data["ended_reason"] == "user_hangup"
    assert call.channel_data["user_sentiment"] == "Positive"
    (action,) = call.actions
    assert (action.name, action.arguments, action.result) == (
        "reschedule",
        {"day": "thursday", "time": "15:00"},
        "ok",
    )


@pytest.mark.parametrize("tamper", ["key", "body", "stale", "missing"])
def test_retell_bad_signatures(tamper: str) -> None:
    retell = registry.get("retell")
    box = voice_inbox("retell", api_key="retell-api-key")
    body = fixture_bytes("retell_call_analyzed.json")
    if tamper == "key":
        req = retell_signed(body, key="other")
    elif tamper == "stale":
        req = retell_signed(body, ts=int(time.time() * 1000) - 6 * 60 * 1000)
    elif tamper == "missing":
        req = request(URL, body)
    else:
        signed = retell_signed(body)
        req = request(URL, body.replace(b"John Doe", b"Jane Doe"), dict(signed.headers))
    with pytest.raises(SignatureInvalid):
        retell.verify("inbound", req, box)


def test_retell_other_events_are_ignored() -> None:
    retell = registry.get("retell")
    box = voice_inbox("retell", api_key="k")
    started = json.dumps({"event": "call_started", "call": {"call_id": "c1"}}).encode()
    assert retell.parse("inbound", request(URL, started), box).inbound == []
    with pytest.raises(MalformedPayload):
        retell.parse("inbound", request(URL, b'{"event": "call_analyzed"}'), box)


def test_generic_voice_shape() -> None:
    generic = registry.get("voice")
    box = voice_inbox("voice", webhook_token="tok")
    body = json.dumps(
        {
            "call_id": "legacy-42",
            "from": "+14155550123",
            "to": "+14155550100",
            "direction": "outbound",
            "started_at": "2025-11-25T10:00:00Z",
            "ended_at": "2025-11-25T10:02:00Z",
            "segments": [
                {"speaker": "agent", "text": "Hi, it's Luigi's.", "start": 0, "end": 1.5},
                {"speaker": "user", "text": "Hello!", "start": 2, "end": 2.5},
            ],
            "actions": [{"name": "lookup", "arguments": {"q": "x"}, "result": "y", "at": 1.0}],
        }
    ).encode()
    req = request(URL, body, {"X-Webhook-Token": "tok"})
    generic.verify("inbound", req, box)
    (call,) = generic.parse("inbound", req, box).inbound
    # An outbound call: the contact is the number called.
    assert call.from_address == "+14155550100"
    assert call.channel_data["duration_seconds"] == 120.0
    assert call.content == "Agent: Hi, it's Luigi's.\nCaller: Hello!"
    assert call.actions[0].at_seconds == 1.0
    with pytest.raises(SignatureInvalid):
        generic.verify("inbound", request(URL, body, {"X-Webhook-Token": "bad"}), box)
    with pytest.raises(MalformedPayload):
        generic.parse("inbound", request(URL, b'{"segments": []}'), box)
