from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from threadline.channels import registry
from threadline.channels.base import Attachment, Outbound
from threadline.domain.enums import Channel, DeliveryStatus, MessageType
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

from .fakes import ProviderAPI, Reply, closed_port_url, fixture_json
from .helpers import inbox, request

TOKEN = "12345678901234567890123456789012"
SID = "ACae0e2b1c9d8f7a6b5c4d3e2f1a0b9c8d"
INBOUND_URL = "https://threadline.example.com/webhooks/twilio/0190f0c1/inbound"
STATUS_URL = "https://threadline.example.com/webhooks/twilio/0190f0c1/status"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

twilio = registry.get("twilio")


def sms_inbox(api_base_url: str | None = None, **config: object):  # type: ignore[no-untyped-def]
    return inbox(
        "twilio",
        Channel.SMS,
        "+14155550100",
        {"account_sid": SID, "auth_token": TOKEN},
        api_base_url=api_base_url,
        webhook_urls={"inbound": INBOUND_URL, "status": STATUS_URL},
        **config,
    )


def signed(url: str, params: dict[str, str], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    return request(
        url,
        urlencode(params).encode(),
        {**FORM, "X-Twilio-Signature": signature, **(headers or {})},
    )


def test_inbound_sms_signed_by_the_sdk_is_accepted_and_normalized() -> None:
    params = fixture_json("twilio_inbound_sms.json")
    req = signed(INBOUND_URL, params, {"I-Twilio-Idempotency-Token": "a1b2c3-retry"})
    box = sms_inbox()
    twilio.verify("inbound", req, box)
    result = twilio.parse("inbound", req, box)

    assert result.response.content_type == "text/xml"
    assert b"<Response/>" in result.response.body
    (msg,) = result.inbound
    assert msg.external_message_id == params["MessageSid"]
    assert msg.from_address == "+14155550123"
    assert msg.to_address == "+14155550100"
    assert msg.contact.phone == "+14155550123"
    assert msg.content == "Hi, do you have a table for 4 tonight?"
    assert msg.message_type == MessageType.TEXT
    assert msg.channel_data["segments"] == 1
    assert msg.channel_data["idempotency_token"] == "a1b2c3-retry"
    assert msg.occurred_at.tzinfo is not None


def test_mms_media_become_attachments() -> None:
    params = fixture_json("twilio_inbound_mms.json")
    req = signed(INBOUND_URL, params)
    twilio.verify("inbound", req, sms_inbox())
    (msg,) = twilio.parse("inbound", req, sms_inbox()).inbound
    assert [a.content_type for a in msg.attachments] == ["image/jpeg", "application/pdf"]
    assert msg.attachments[0].url == params["MediaUrl0"]
    assert msg.message_type == MessageType.IMAGE


@pytest.mark.parametrize(
    ("signed_url", "called_url"),
    [
        (
            "https://threadline.example.com:443/webhooks/twilio/x/inbound",
            "https://threadline.example.com/webhooks/twilio/x/inbound",
        ),
        (
            "https://threadline.example.com/webhooks/twilio/x/inbound",
            "https://threadline.example.com:443/webhooks/twilio/x/inbound",
        ),
        (
            "http://threadline.example.com:8080/webhooks/twilio/x/inbound?a=1&b=2",
            "http://threadline.example.com:8080/webhooks/twilio/x/inbound?a=1&b=2",
        ),
    ],
)
def test_signature_holds_with_and_without_the_port(signed_url: str, called_url: str) -> None:
    params = fixture_json("twilio_inbound_sms.json")
    signature = RequestValidator(TOKEN).compute_signature(signed_url, params)
    req = request(called_url, urlencode(params).encode(), {**FORM, "X-Twilio-Signature": signature})
    twilio.verify("inbound", req, sms_inbox())


def test_sha256_signature_settings_are_honoured() -> None:
    params = fixture_json("twilio_inbound_sms.json")
    signature = RequestValidator(TOKEN).compute_signature(INBOUND_URL, params, "HMAC_SHA256")
    settings = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    req = request(
        INBOUND_URL,
        urlencode(params).encode(),
        {**FORM, "X-Twilio-Signature": signature, "X-Twilio-Webhooks-Signature-Settings": settings},
    )
    twilio.verify("inbound", req, sms_inbox())


@pytest.mark.parametrize("tamper", ["body", "url", "token", "missing"])
def test_bad_signatures_are_refused(tamper: str) -> None:
    params = fixture_json("twilio_inbound_sms.json")
    req = signed(INBOUND_URL, params)
    headers = dict(req.headers)
    body, url, box = req.body, req.url, sms_inbox()
    if tamper == "body":
        body = urlencode({**params, "Body": "transfer all money"}).encode()
    elif tamper == "url":
        url = INBOUND_URL.replace("inbound", "status")
    elif tamper == "token":
        box = inbox(
            "twilio", Channel.SMS, "+14155550100", {"account_sid": SID, "auth_token": "x" * 32}
        )
    else:
        headers.pop("x-twilio-signature")
    with pytest.raises(SignatureInvalid):
        twilio.verify("inbound", request(url, body, headers), box)


def test_status_callback_carries_the_error_code() -> None:
    params = fixture_json("twilio_status_undelivered.json")
    req = signed(STATUS_URL, params)
    twilio.verify("status", req, sms_inbox())
    result = twilio.parse("status", req, sms_inbox())
    (status,) = result.statuses
    assert status.external_message_id == params["MessageSid"]
    assert status.status == DeliveryStatus.FAILED
    assert status.provider_status == "undelivered"
    assert status.error_code == "30003"
    assert result.inbound == []


@pytest.mark.parametrize(
    ("provider", "ours"),
    [
        ("queued", DeliveryStatus.QUEUED),
        ("sent", DeliveryStatus.SENT),
        ("delivered", DeliveryStatus.DELIVERED),
        ("read", DeliveryStatus.READ),
        ("failed", DeliveryStatus.FAILED),
    ],
)
def test_status_mapping(provider: str, ours: DeliveryStatus) -> None:
    params = {"MessageSid": "SM1", "MessageStatus": provider}
    req = request(STATUS_URL, urlencode(params).encode(), FORM)
    assert twilio.parse("status", req, sms_inbox()).statuses[0].status == ours


@pytest.mark.parametrize(
    "body",
    [
        b"",
        urlencode({"Body": "no sid"}).encode(),
        urlencode({"MessageSid": "SM1", "From": "+14155550123", "NumMedia": "2"}).encode(),
        b"%zz=&&==",
    ],
)
def test_malformed_inbound(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        twilio.parse("inbound", request(INBOUND_URL, body, FORM), sms_inbox())


def test_send_posts_the_messages_api_with_basic_auth_and_status_callback(
    provider_api: ProviderAPI, http_client: httpx.Client
) -> None:
    path = f"/2010-04-01/Accounts/{SID}/Messages.json"
    provider_api.reply("POST", path, Reply(201, fixture_json("twilio_message_created.json")))
    out = Outbound(
        to_address="+14155550123",
        idempotency_key="0190f0c1-0000-7000-8000-0000000000ff",
        content="Yes, 7pm works.",
        attachments=[Attachment(url="https://cdn.example.com/menu.jpg", content_type="image/jpeg")],
    )
    result = twilio.send(out, sms_inbox(provider_api.url), http_client)

    assert result.external_message_id == "SM1f0e8e2a9c1d4b6f8e7d6c5b4a3f2e1d"
    assert result.status == DeliveryStatus.SENT
    (sent,) = provider_api.requests
    assert sent.path == path
    assert sent.headers["authorization"] == httpx.BasicAuth(SID, TOKEN)._auth_header
    form = sent.form()
    assert form["To"] == ["+14155550123"]
    assert form["From"] == ["+14155550100"]
    assert form["Body"] == ["Yes, 7pm works."]
    assert form["MediaUrl"] == ["https://cdn.example.com/menu.jpg"]
    assert form["StatusCallback"] == [STATUS_URL]


def test_send_through_a_messaging_service(
    provider_api: ProviderAPI, http_client: httpx.Client
) -> None:
    provider_api.default = Reply(201, fixture_json("twilio_message_created.json"))
    box = sms_inbox(provider_api.url, messaging_service_sid="MG9752274e9e519418a7406176694466fa")
    twilio.send(Outbound("+14155550123", "k", "hi"), box, http_client)
    form = provider_api.requests[0].form()
    assert form["MessagingServiceSid"] == ["MG9752274e9e519418a7406176694466fa"]
    assert "From" not in form


def test_4xx_is_final_with_twilio_code(
    provider_api: ProviderAPI, http_client: httpx.Client
) -> None:
    provider_api.default = Reply(400, fixture_json("twilio_error_21211.json"))
    with pytest.raises(ProviderError) as err:
        twilio.send(Outbound("+1415555", "k", "hi"), sms_inbox(provider_api.url), http_client)
    assert err.value.retryable is False
    assert err.value.provider_code == "21211"
    assert err.value.status_code == 400
    assert "Invalid 'To' Phone Number" in err.value.message


@pytest.mark.parametrize("status", [500, 503, 429])
def test_5xx_and_429_are_retryable(
    provider_api: ProviderAPI, http_client: httpx.Client, status: int
) -> None:
    provider_api.default = Reply(
        status, {"code": 20500, "message": "Internal Server Error", "status": status}
    )
    with pytest.raises(ProviderError) as err:
        twilio.send(Outbound("+14155550123", "k", "hi"), sms_inbox(provider_api.url), http_client)
    assert err.value.retryable is True


def test_timeouts_and_refused_connections_are_retryable(provider_api: ProviderAPI) -> None:
    provider_api.default = Reply(201, fixture_json("twilio_message_created.json"), delay=1.0)
    with httpx.Client(timeout=0.2) as slow, pytest.raises(ProviderError) as err:
        twilio.send(Outbound("+14155550123", "k", "hi"), sms_inbox(provider_api.url), slow)
    assert err.value.retryable is True
    with httpx.Client() as c, pytest.raises(ProviderError) as err:
        twilio.send(Outbound("+14155550123", "k", "hi"), sms_inbox(closed_port_url()), c)
    assert err.value.retryable is True
