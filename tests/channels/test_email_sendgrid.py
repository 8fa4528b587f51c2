from __future__ import annotations

import base64
import time

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

from threadline.channels import registry
from threadline.channels.base import Outbound
from threadline.channels.email_sendgrid import SendGrid, verify_event_signature
from threadline.domain.enums import Channel, DeliveryStatus
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

from .fakes import ProviderAPI, Reply, fixture_bytes, fixture_json
from .helpers import inbox, request

SECRET = "k9Xv2QmT7pLr"
INBOUND_URL = f"https://threadline.example.com/webhooks/sendgrid/0190f0c1/inbound/{SECRET}"
EVENTS_URL = "https://threadline.example.com/webhooks/sendgrid/0190f0c1/events"

sendgrid = registry.get("sendgrid")
PRIVATE = ec.generate_private_key(ec.SECP256R1())
# The key as SendGrid shows it under Mail Settings: base64 DER (SubjectPublicKeyInfo).
PUBLIC_B64 = base64.b64encode(
    PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


def sg_inbox(api_base_url: str | None = None):  # type: ignore[no-untyped-def]
    return inbox(
        "sendgrid",
        Channel.EMAIL,
        "support@shop.example",
        {"api_key": "SG.key", "event_verification_key": PUBLIC_B64, "inbound_secret": SECRET},
        api_base_url=api_base_url,
    )


def sign(body: bytes, timestamp: str, key: ec.EllipticCurvePrivateKey = PRIVATE) -> str:
    # SendGrid signs timestamp + payload with ECDSA P-256 / SHA-256, base64 DER signature.
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def signed_events(body: bytes, timestamp: str | None = None):  # type: ignore[no-untyped-def]
    ts = timestamp or str(int(time.time()))
    return request(
        EVENTS_URL,
        body,
        {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": sign(body, ts),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts,
        },
    )


def inbound_parse(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]], url: str = INBOUND_URL
):  # type: ignore[no-untyped-def]
    built = httpx.Request("POST", url, data=fields, files=files)
    return request(url, built.read(), {"Content-Type": built.headers["content-type"]})


def test_inbound_parse_multipart_with_attachment() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    req = inbound_parse(
        fixture_json("sendgrid_inbound_fields.json"),
        {"attachment1": ("photo.png", png, "image/png")},
    )
    sendgrid.verify("inbound", req, sg_inbox())
    (mail,) = sendgrid.parse("inbound", req, sg_inbox()).inbound
    assert mail.external_message_id.startswith("<CAN_P_JMvV7Z")
    assert mail.external_conversation_id == "<thread-root-1042@shop.example>"
    assert mail.channel_data["references"] == [
        "<thread-root-1042@shop.example>",
        "<0190f0c1-0000-7000-8000-000000000100@shop.example>",
    ]
    assert mail.from_address == "ann.customer@example.com"
    assert mail.content == "Can I change the address?"
    assert mail.channel_data["cc"] == ["bob@example.com"]
    assert mail.channel_data["spf"] == "pass"
    assert mail.content_html is not None and "javascript:" not in mail.content_html
    (att,) = mail.attachments
    assert (att.filename, att.content_type, att.content, att.size) == (
        "photo.png",
        "image/png",
        png,
        len(png),
    )
    assert att.provider_id == "ii_1562e2169c132d83"


def test_inbound_parse_raw_mode() -> None:
    raw = fixture_bytes("email_reply.eml").decode()
    req = inbound_parse({"email": raw, "to": "support@shop.example", "from": "x"}, {})
    (mail,) = sendgrid.parse("inbound", req, sg_inbox()).inbound
    assert mail.from_address == "ann.customer@example.com"
    assert mail.channel_data["in_reply_to"] == "<0190f0c1-0000-7000-8000-000000000100@shop.example>"


@pytest.mark.parametrize(
    "url", [INBOUND_URL.replace(SECRET, "guess"), INBOUND_URL.rsplit("/", 1)[0]]
)
def test_inbound_without_the_url_secret_is_refused(url: str) -> None:
    with pytest.raises(SignatureInvalid):
        sendgrid.verify("inbound", inbound_parse({"from": "a@b.c"}, {}, url), sg_inbox())


def test_signed_events_verified_and_mapped() -> None:
    body = fixture_bytes("sendgrid_events.json")
    req = signed_events(body)
    # What we accept, SendGrid's own helper accepts too.
    assert EventWebhook(PUBLIC_B64).verify_signature(
        body.decode(),
        req.header("x-twilio-email-event-webhook-signature"),
        req.header("x-twilio-email-event-webhook-timestamp"),
    )
    sendgrid.verify("events", req, sg_inbox())
    processed, delivered, bounce, click = sendgrid.parse("events", req, sg_inbox()).statuses
    assert processed.external_message_id == "14c5d75ce93"
    assert processed.status == DeliveryStatus.SENT
    assert processed.message_ref == "0190f0c1-0000-7000-8000-000000000100"
    assert delivered.status == DeliveryStatus.DELIVERED
    assert bounce.status == DeliveryStatus.FAILED
    assert bounce.error_code == "5.1.1"
    assert bounce.error_message is not None and bounce.error_message.startswith("550 5.1.1")
    assert click.status is None


@pytest.mark.parametrize("tamper", ["body", "key", "timestamp", "stale", "missing"])
def test_bad_event_signatures_are_refused(tamper: str) -> None:
    body = fixture_bytes("sendgrid_events.json")
    ts = str(int(time.time()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": sign(body, ts),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }
    if tamper == "body":
        body = body.replace(b"delivered", b"dropped")
    elif tamper == "key":
        headers["X-Twilio-Email-Event-Webhook-Signature"] = sign(
            body, ts, ec.generate_private_key(ec.SECP256R1())
        )
    elif tamper == "timestamp":
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = str(int(ts) + 1)
    elif tamper == "stale":
        old = str(int(ts) - 3600)
        headers = {
            "X-Twilio-Email-Event-Webhook-Signature": sign(body, old),
            "X-Twilio-Email-Event-Webhook-Timestamp": old,
        }
    else:
        del headers["X-Twilio-Email-Event-Webhook-Signature"]
    req = request(EVENTS_URL, body, headers)
    sdk_ok = "X-Twilio-Email-Event-Webhook-Signature" in headers and EventWebhook(
        PUBLIC_B64
    ).verify_signature(
        body.decode(),
        headers["X-Twilio-Email-Event-Webhook-Signature"],
        headers["X-Twilio-Email-Event-Webhook-Timestamp"],
    )
    assert sdk_ok == (tamper == "stale")  # the SDK has no replay window; we do
    with pytest.raises(SignatureInvalid):
        sendgrid.verify("events", req, sg_inbox())


def test_pem_keys_work_too() -> None:
    pem = (
        PRIVATE.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    ts = "1513299569"
    assert verify_event_signature(pem, b"[]", sign(b"[]", ts), ts)
    fixed = SendGrid(clock=lambda: 1513299569)
    fixed.verify(
        "events",
        request(
            EVENTS_URL,
            b"[]",
            {
                "X-Twilio-Email-Event-Webhook-Signature": sign(b"[]", ts),
                "X-Twilio-Email-Event-Webhook-Timestamp": ts,
            },
        ),
        sg_inbox(),
    )


@pytest.mark.parametrize(
    ("name", "req"),
    [
        ("events", request(EVENTS_URL, b'{"event": "delivered"}')),
        ("events", request(EVENTS_URL, b'[{"sg_message_id": "x"}]')),
        ("inbound", request(INBOUND_URL, b"{}", {"Content-Type": "application/json"})),
        (
            "inbound",
            request(
                INBOUND_URL, b"--x\r\nbroken", {"Content-Type": "multipart/form-data; boundary=x"}
            ),
        ),
    ],
)
def test_malformed(name: str, req) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MalformedPayload):
        sendgrid.parse(name, req, sg_inbox())


def test_send_mail_send_v3(provider_api: ProviderAPI, http_client: httpx.Client) -> None:
    provider_api.reply("POST", "/v3/mail/send", Reply(202, "", {"X-Message-Id": "14c5d75ce93"}))
    out = Outbound(
        "ann.customer@example.com",
        "0190f0c1-0000-7000-8000-000000000200",
        "Yes, send me the new address.",
        subject="Re: Your order #1042",
        in_reply_to="<CAN_P_JMvV7Z@mail.example.com>",
    )
    result = sendgrid.send(out, sg_inbox(provider_api.url), http_client)
    assert result.external_message_id == "14c5d75ce93"
    (sent,) = provider_api.requests
    assert sent.headers["authorization"] == "Bearer SG.key"
    body = sent.json()
    assert body["personalizations"] == [{"to": [{"email": "ann.customer@example.com"}]}]
    assert body["from"] == {"email": "support@shop.example"}
    assert body["subject"] == "Re: Your order #1042"
    assert body["content"] == [{"type": "text/plain", "value": "Yes, send me the new address."}]
    assert body["headers"]["In-Reply-To"] == "<CAN_P_JMvV7Z@mail.example.com>"
    assert body["headers"]["Message-ID"] == "<0190f0c1-0000-7000-8000-000000000200@shop.example>"
    assert body["custom_args"] == {"threadline_message_id": "0190f0c1-0000-7000-8000-000000000200"}


def test_send_errors(provider_api: ProviderAPI, http_client: httpx.Client) -> None:
    provider_api.reply("POST", "/v3/mail/send", Reply(400, fixture_json("sendgrid_error_400.json")))
    provider_api.reply("POST", "/v3/mail/send", Reply(503, ""))
    with pytest.raises(ProviderError) as err:
        sendgrid.send(Outbound("bad", "k", "hi"), sg_inbox(provider_api.url), http_client)
    assert err.value.retryable is False
    assert err.value.provider_code == "personalizations.0.to.0.email"
    assert "Does not contain a valid address." in err.value.message
    with pytest.raises(ProviderError) as err:
        sendgrid.send(Outbound("a@b.example", "k", "hi"), sg_inbox(provider_api.url), http_client)
    assert err.value.retryable is True
