from __future__ import annotations

import base64
import json

import httpx
import pytest

from threadline.channels import registry
from threadline.channels.base import Attachment, Outbound
from threadline.domain.enums import Channel, DeliveryStatus
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

from .fakes import ProviderAPI, Reply, fixture_bytes, fixture_json
from .helpers import inbox, request

URL = "https://threadline.example.com/webhooks/postmark/0190f0c1/inbound"
AUTH = "Basic " + base64.b64encode(b"postmark:hook-pass-123").decode()

postmark = registry.get("postmark")


def pm_inbox(api_base_url: str | None = None, **config: object):  # type: ignore[no-untyped-def]
    return inbox(
        "postmark",
        Channel.EMAIL,
        "support@shop.example",
        {
            "server_token": "srv-token",
            "webhook_username": "postmark",
            "webhook_password": "hook-pass-123",
        },
        api_base_url=api_base_url,
        **config,
    )


def posted(body: bytes, auth: str | None = AUTH):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    return request(URL, body, headers)


def test_inbound_email_threads_strips_quotes_and_sanitises() -> None:
    req = posted(fixture_bytes("postmark_inbound.json"))
    postmark.verify("inbound", req, pm_inbox())
    (mail,) = postmark.parse("inbound", req, pm_inbox()).inbound
    assert (
        mail.external_message_id
        == "<CAGXpo2WKfxHWZ5UFYCR3H_J9SNMG+5AXUovfEFL6DjWBJSyZaA@mail.example.com>"
    )
    assert mail.external_conversation_id == "<thread-root-1042@shop.example>"
    assert mail.from_address == "ann.customer@example.com"
    assert mail.contact.name == "Ann Customer"
    assert mail.contact.email == "ann.customer@example.com"
    assert mail.to_address == "support@shop.example"
    assert mail.subject == "Re: Your order #1042"
    assert mail.content == "Sounds good, Tuesday works.\n\nAnn"
    assert "Can we deliver on Tuesday?" in mail.channel_data["full_text"]
    assert mail.channel_data["in_reply_to"] == "<0190f0c1-0000-7000-8000-0000000000ff@shop.example>"
    assert mail.channel_data["references"][0] == "<thread-root-1042@shop.example>"
    assert mail.channel_data["cc"] == ["bob@example.com"]
    assert mail.channel_data["mailbox_hash"] == "order1042"
    assert mail.content_html is not None
    assert "<script" not in mail.content_html and "onerror" not in mail.content_html
    assert "Sounds good" in mail.content_html
    (att,) = mail.attachments
    assert (att.filename, att.content_type, att.size, att.content) == (
        "receipt.txt",
        "text/plain",
        11,
        b"Paid $42.00",
    )
    assert mail.occurred_at.isoformat() == "2025-08-01T20:45:32+00:00"


@pytest.mark.parametrize(
    "auth",
    [None, "Basic " + base64.b64encode(b"postmark:wrong").decode(), "Bearer x", "Basic !!!"],
)
def test_wrong_basic_auth_is_refused(auth: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        postmark.verify("inbound", posted(b"{}", auth), pm_inbox())


def test_delivery_bounce_and_open_events() -> None:
    delivered = postmark.parse(
        "events", posted(fixture_bytes("postmark_delivery.json")), pm_inbox()
    )
    bounced = postmark.parse("events", posted(fixture_bytes("postmark_bounce.json")), pm_inbox())
    opened = postmark.parse("events", posted(fixture_bytes("postmark_open.json")), pm_inbox())
    (d,), (b,), (o,) = delivered.statuses, bounced.statuses, opened.statuses
    assert d.status == DeliveryStatus.DELIVERED
    assert d.message_ref == "0190f0c1-0000-7000-8000-0000000000ff"
    assert d.occurred_at.isoformat().startswith("2025-08-01T17:28:10")
    assert b.status == DeliveryStatus.FAILED
    assert b.error_code == "1"
    assert b.error_message is not None and b.error_message.startswith("Hard bounce - ")
    assert b.recipient == "john@example.com"
    assert o.status == DeliveryStatus.READ


def test_soft_bounce_is_kept_but_is_no_failure() -> None:
    soft = {**fixture_json("postmark_bounce.json"), "Type": "SoftBounce", "TypeCode": 4096}
    (s,) = postmark.parse("events", posted(json.dumps(soft).encode()), pm_inbox()).statuses
    assert s.status is None
    assert s.provider_status == "Bounce:SoftBounce"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("inbound", b"<xml/>"),
        ("inbound", b'{"Subject": "no sender"}'),
        ("inbound", b'{"From": "a@b.c", "Attachments": [{"Content": "***"}]}'),
        ("events", b'{"MessageID": "x"}'),
        ("events", b'{"RecordType": "Delivery", "MessageID": "x", "DeliveredAt": "yesterday"}'),
    ],
)
def test_malformed(name: str, body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        postmark.parse(name, posted(body), pm_inbox())


def test_send_posts_email_with_token_threading_headers_and_metadata(
    provider_api: ProviderAPI, http_client: httpx.Client
) -> None:
    provider_api.reply("POST", "/email", Reply(200, fixture_json("postmark_send_response.json")))
    out = Outbound(
        to_address="ann.customer@example.com",
        idempotency_key="0190f0c1-0000-7000-8000-000000000100",
        content="Tuesday it is.",
        content_html="<p>Tuesday it is.</p>",
        subject="Your order #1042",
        in_reply_to="<CAGXpo2W@mail.example.com>",
        references=["<thread-root-1042@shop.example>"],
        attachments=[Attachment(content_type="text/plain", filename="a.txt", content=b"hello")],
    )
    box = pm_inbox(provider_api.url, from_name="Shop Support")
    result = postmark.send(out, box, http_client)
    assert result.external_message_id == "0a129aee-e1cd-480d-b08d-4f48548ff48d"
    assert (
        result.channel_data["message_id"] == "<0190f0c1-0000-7000-8000-000000000100@shop.example>"
    )
    (sent,) = provider_api.requests
    assert sent.headers["x-postmark-server-token"] == "srv-token"
    body = sent.json()
    assert body["From"] == "Shop Support <support@shop.example>"
    assert body["To"] == "ann.customer@example.com"
    assert body["Subject"] == "Re: Your order #1042"
    assert body["TextBody"] == "Tuesday it is."
    assert body["HtmlBody"] == "<p>Tuesday it is.</p>"
    assert body["MessageStream"] == "outbound"
    assert body["Metadata"] == {"threadline_message_id": "0190f0c1-0000-7000-8000-000000000100"}
    headers = {h["Name"]: h["Value"] for h in body["Headers"]}
    assert headers["In-Reply-To"] == "<CAGXpo2W@mail.example.com>"
    assert headers["References"] == "<thread-root-1042@shop.example> <CAGXpo2W@mail.example.com>"
    assert body["Attachments"] == [
        {
            "Name": "a.txt",
            "Content": base64.b64encode(b"hello").decode(),
            "ContentType": "text/plain",
        }
    ]


def test_422_is_final_with_postmark_code(
    provider_api: ProviderAPI, http_client: httpx.Client
) -> None:
    provider_api.default = Reply(422, fixture_json("postmark_error_300.json"))
    with pytest.raises(ProviderError) as err:
        postmark.send(
            Outbound("not-an-address", "k", "hi"), pm_inbox(provider_api.url), http_client
        )
    assert (err.value.retryable, err.value.provider_code) == (False, "300")
    assert "Invalid 'To' address" in err.value.message


def test_500_is_retryable(provider_api: ProviderAPI, http_client: httpx.Client) -> None:
    provider_api.default = Reply(500, "Internal Server Error")
    with pytest.raises(ProviderError) as err:
        postmark.send(Outbound("a@b.example", "k", "hi"), pm_inbox(provider_api.url), http_client)
    assert err.value.retryable is True
