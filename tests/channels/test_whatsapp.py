from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from threadline.channels import registry
from threadline.channels.base import Attachment, Outbound, Template
from threadline.channels.whatsapp import window_open
from threadline.domain.enums import Channel, DeliveryStatus, MessageType
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

from .fakes import ProviderAPI, Reply, fixture_bytes, fixture_json
from .helpers import inbox, request

APP_SECRET = "6d8c1f3e0b2a4c5d9e7f1a2b3c4d5e6f"
URL = "https://threadline.example.com/webhooks/meta/0190f0c1/inbound"
PHONE_ID = "106540352242922"

meta = registry.get("meta")


def wa_inbox(api_base_url: str | None = None):  # type: ignore[no-untyped-def]
    return inbox(
        "meta",
        Channel.WHATSAPP,
        PHONE_ID,
        {"access_token": "EAAG-token", "app_secret": APP_SECRET, "verify_token": "s3cret-verify"},
        api_base_url=api_base_url,
    )


def meta_signed(body: bytes, secret: str = APP_SECRET):  # type: ignore[no-untyped-def]
    # As Meta documents it: sha256= and the hex HMAC-SHA256 of the raw payload, app secret key.
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}
    return request(URL, body, headers)


def test_subscription_check_answers_the_challenge() -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": "s3cret-verify",
        "hub.challenge": "1158201444",
    }
    req = request(URL, method="GET", query=query)
    meta.verify("inbound", req, wa_inbox())
    response = meta.parse("inbound", req, wa_inbox()).response
    assert (response.status_code, response.body, response.content_type) == (
        200,
        b"1158201444",
        "text/plain",
    )


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "s3cret-verify", "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_subscription_check_with_a_wrong_token_is_refused(query: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid):
        meta.verify("inbound", request(URL, method="GET", query=query), wa_inbox())


def test_every_message_type_is_normalized() -> None:
    body = fixture_bytes("whatsapp_inbound_messages.json")
    req = meta_signed(body)
    meta.verify("inbound", req, wa_inbox())
    result = meta.parse("inbound", req, wa_inbox())
    assert result.statuses == []
    msgs = {m.channel_data["type"]: m for m in result.inbound}
    assert list(msgs) == [
        "text",
        "image",
        "audio",
        "document",
        "location",
        "button",
        "interactive",
        "reaction",
    ]
    text = msgs["text"]
    assert text.from_address == "+16505551234"
    assert text.to_address == PHONE_ID
    assert text.contact.name == "Sheena Nelson"
    assert text.content == "Does it come in another color?"
    assert text.occurred_at == datetime.fromtimestamp(1749416383, UTC)
    assert text.external_message_id.startswith("wamid.")

    image = msgs["image"]
    assert image.message_type == MessageType.IMAGE
    assert image.content == "This one, in blue"
    assert image.attachments == [
        Attachment(content_type="image/jpeg", provider_id="1003383421387256")
    ]
    assert msgs["audio"].message_type == MessageType.AUDIO
    assert msgs["audio"].channel_data["voice"] is True
    assert msgs["document"].attachments[0].filename == "order-1042.pdf"
    assert msgs["document"].message_type == MessageType.FILE
    assert msgs["location"].content == "Meta Headquarters, 1 Hacker Way, Menlo Park, CA 94025"
    assert msgs["location"].channel_data["location"]["latitude"] == 37.483307
    assert msgs["button"].content == "Yes, book it"
    assert msgs["button"].channel_data["button_payload"] == "CONFIRM_BOOKING"
    assert msgs["button"].channel_data["context"]["id"].startswith("wamid.")
    assert msgs["interactive"].content == "Tuesday 10:00"
    assert msgs["interactive"].channel_data["interactive"]["id"] == "slot_2"
    reaction = msgs["reaction"]
    assert reaction.message_type == MessageType.EVENT
    assert reaction.content == "\N{THUMBS UP SIGN}"


def test_statuses_with_errors_and_our_reference() -> None:
    req = meta_signed(fixture_bytes("whatsapp_statuses.json"))
    meta.verify("inbound", req, wa_inbox())
    delivered, failed = meta.parse("inbound", req, wa_inbox()).statuses
    assert delivered.status == DeliveryStatus.DELIVERED
    assert delivered.message_ref == "0190f0c1-0000-7000-8000-0000000000ff"
    assert failed.status == DeliveryStatus.FAILED
    assert failed.error_code == "131047"
    assert failed.error_message is not None
    assert failed.error_message.startswith("Re-engagement message - Message failed")


@pytest.mark.parametrize("tamper", ["body", "secret", "missing", "prefix"])
def test_bad_signatures_are_refused(tamper: str) -> None:
    body = fixture_bytes("whatsapp_inbound_messages.json")
    req = meta_signed(body)
    headers = dict(req.headers)
    if tamper == "body":
        body = body.replace(b"another color", b"another colour")
    elif tamper == "secret":
        headers = dict(meta_signed(body, "not-the-secret").headers)
    elif tamper == "missing":
        del headers["x-hub-signature-256"]
    else:
        headers["x-hub-signature-256"] = headers["x-hub-signature-256"].removeprefix("sha256=")
    with pytest.raises(SignatureInvalid):
        meta.verify("inbound", request(URL, body, headers), wa_inbox())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"object": "page", "entry": []}).encode(),
        json.dumps({"object": "whatsapp_business_account"}).encode(),
        json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {"changes": [{"field": "messages", "value": {"messages": [{"id": "x"}]}}]}
                ],
            }
        ).encode(),
        json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messages": [
                                        {
                                            "id": "wamid.1",
                                            "from": "1650",
                                            "type": "text",
                                            "timestamp": "soon",
                                        }
                                    ]
                                },
                            }
                        ]
                    }
                ],
            }
        ).encode(),
    ],
)
def test_malformed(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        meta.parse("inbound", request(URL, body), wa_inbox())


def test_window_open() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert window_open(now - timedelta(hours=23, minutes=59), now)
    assert not window_open(now - timedelta(hours=24), now)
    assert not window_open(None, now)


def test_send_text_posts_graph_messages_with_bearer(
    provider_api: ProviderAPI, http_client: httpx.Client
) -> None:
    path = f"/v21.0/{PHONE_ID}/messages"
    provider_api.reply("POST", path, Reply(200, fixture_json("whatsapp_send_response.json")))
    out = Outbound(
        "+16505551234",
        "0190f0c1-0000-7000-8000-0000000000ff",
        "We have it in blue and green.",
        reply_to_external_id="wamid.ABC",
    )
    result = meta.send(out, wa_inbox(provider_api.url), http_client)
    assert (
        result.external_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NUZGQjNGQ0M4QjY1MTg4OTMA"
    )
    (sent,) = provider_api.requests
    assert sent.path == path
    assert sent.headers["authorization"] == "Bearer EAAG-token"
    assert sent.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "biz_opaque_callback_data": "0190f0c1-0000-7000-8000-0000000000ff",
        "type": "text",
        "text": {"preview_url": False, "body": "We have it in blue and green."},
        "context": {"message_id": "wamid.ABC"},
    }


def test_send_template_and_media(provider_api: ProviderAPI, http_client: httpx.Client) -> None:
    provider_api.default = Reply(200, fixture_json("whatsapp_send_response.json"))
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Sheena"}]}]
    template = Template("appointment_reminder", "en_US", components)
    meta.send(
        Outbound("+16505551234", "k1", template=template), wa_inbox(provider_api.url), http_client
    )
    doc = Attachment(
        url="https://cdn.example.com/q.pdf", content_type="application/pdf", filename="q.pdf"
    )
    meta.send(
        Outbound("+16505551234", "k2", "Your quote", attachments=[doc]),
        wa_inbox(provider_api.url),
        http_client,
    )
    first, second = (r.json() for r in provider_api.requests)
    assert first["type"] == "template"
    assert first["template"] == {
        "name": "appointment_reminder",
        "language": {"code": "en_US"},
        "components": components,
    }
    assert second["type"] == "document"
    assert second["document"] == {
        "link": "https://cdn.example.com/q.pdf",
        "caption": "Your quote",
        "filename": "q.pdf",
    }


def test_4xx_is_final_with_graph_code(provider_api: ProviderAPI, http_client: httpx.Client) -> None:
    provider_api.default = Reply(400, fixture_json("whatsapp_error_invalid_param.json"))
    with pytest.raises(ProviderError) as err:
        meta.send(Outbound("+16505551234", "k", "hi"), wa_inbox(provider_api.url), http_client)
    assert err.value.retryable is False
    assert err.value.provider_code == "100"
    assert "not a valid WhatsApp user" in err.value.message


def test_throughput_limit_and_5xx_are_retryable(
    provider_api: ProviderAPI, http_client: httpx.Client
) -> None:
    provider_api.reply(
        "POST",
        f"/v21.0/{PHONE_ID}/messages",
        Reply(400, fixture_json("whatsapp_error_throughput.json")),
    )
    provider_api.reply(
        "POST",
        f"/v21.0/{PHONE_ID}/messages",
        Reply(500, {"error": {"code": 1, "message": "An unknown error occurred"}}),
    )
    for _ in range(2):
        with pytest.raises(ProviderError) as err:
            meta.send(Outbound("+16505551234", "k", "hi"), wa_inbox(provider_api.url), http_client)
        assert err.value.retryable is True
