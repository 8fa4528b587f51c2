"""Twilio Programmable Messaging: SMS/MMS in (``inbound``), delivery callbacks (``status``),
and sending through the Messages API.

Webhooks are form posts signed with ``X-Twilio-Signature``: base64 HMAC-SHA1 (or SHA-256
when ``X-Twilio-Webhooks-Signature-Settings`` says so) keyed with the auth token, over the
URL followed by every POST parameter name and value sorted by name. Like twilio's
``RequestValidator`` we accept the URL with and without its port, since Twilio signs
either. Twilio expects TwiML back: an empty ``<Response/>`` sends no auto-reply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from threadline.channels import http
from threadline.channels.addresses import e164
from threadline.channels.base import (
    Attachment,
    Contact,
    FormData,
    Inbound,
    InboxConfig,
    Outbound,
    SendResult,
    StatusUpdate,
    WebhookRequest,
    WebhookResponse,
    WebhookResult,
    now,
)
from threadline.domain.enums import Channel, DeliveryStatus, MessageType
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

API_BASE = "https://api.twilio.com"
EMPTY_TWIML = WebhookResponse(200, b'<?xml version="1.0" encoding="UTF-8"?><Response/>', "text/xml")

#: Twilio MessageStatus -> our delivery status.
STATUSES: dict[str, DeliveryStatus] = {
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.SENT,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}

_HASHES = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def compute_signature(
    token: str, url: str, params: list[tuple[str, str]], algorithm: str = "HMAC_SHA1"
) -> str:
    """Twilio's signature of a request: the URL, then each parameter name and value, names
    sorted, each name's distinct values sorted, HMAC'd with the auth token, base64."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(token.encode(), data.encode(), _HASHES[algorithm]).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> list[str]:
    """The URL without and with its default port (Twilio signs one or the other)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        without = urlunsplit(parts._replace(netloc=_netloc(parts, host)))
        return [without, url]
    port = 443 if parts.scheme == "https" else 80
    with_port = urlunsplit(parts._replace(netloc=_netloc(parts, f"{host}:{port}")))
    return [url, with_port]


def _netloc(parts: Any, hostport: str) -> str:
    userinfo = parts.netloc.rpartition("@")[0]
    return f"{userinfo}@{hostport}" if userinfo else hostport


def _algorithm(request: WebhookRequest) -> str:
    settings = request.header("x-twilio-webhooks-signature-settings") or ""
    for part in settings.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


class TwilioSMS:
    name: ClassVar[str] = "twilio"
    channel: ClassVar[Channel] = Channel.SMS
    webhook_names: ClassVar[tuple[str, ...]] = ("inbound", "status")
    required_credentials: ClassVar[tuple[str, ...]] = ("account_sid", "auth_token")
    generated_credentials: ClassVar[tuple[str, ...]] = ()
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ()

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        signature = request.header("x-twilio-signature")
        if not signature:
            raise SignatureInvalid("missing X-Twilio-Signature", provider=self.name)
        algorithm = _algorithm(request)
        if algorithm not in _HASHES:
            raise SignatureInvalid(f"unsupported signature algorithm {algorithm}")
        # A SharedKey-signed webhook uses that key's secret; a classic one the auth token.
        secret = (
            inbox.credential("signing_key_secret")
            if request.header("x-twilio-webhooks-signature-settings")
            else None
        ) or inbox.credential("auth_token")
        if secret is None:
            raise SignatureInvalid("the inbox has no auth_token to check signatures with")
        params: list[tuple[str, str]] = []
        query = parse_qs(urlsplit(request.url).query)
        if "bodySHA256" in query:  # a JSON body: its hash travels in the signed URL
            expected = hashlib.sha256(request.body).hexdigest()
            if not hmac.compare_digest(expected, query["bodySHA256"][0]):
                raise SignatureInvalid("the body does not match bodySHA256")
        elif request.method.upper() == "POST":
            params = request.form().fields
        for url in url_variants(request.url):
            if hmac.compare_digest(
                compute_signature(secret, url, params, algorithm).encode(), signature.encode()
            ):
                return
        raise SignatureInvalid("X-Twilio-Signature does not match", provider=self.name)

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        form = request.form()
        if name == "inbound":
            return WebhookResult(
                inbound=[self._inbound(form, request, inbox)], response=EMPTY_TWIML
            )
        if name == "status":
            return WebhookResult(statuses=[self._status(form)], response=EMPTY_TWIML)
        raise MalformedPayload(f"twilio has no webhook named {name!r}")

    def _inbound(self, form: FormData, request: WebhookRequest, inbox: InboxConfig) -> Inbound:
        data = form.as_dict()
        sid = data.get("MessageSid") or data.get("SmsMessageSid") or data.get("SmsSid")
        sender = data.get("From")
        if not sid or not sender:
            raise MalformedPayload("a Twilio message needs MessageSid and From")
        try:
            num_media = int(data.get("NumMedia") or 0)
        except ValueError as exc:
            raise MalformedPayload("NumMedia is not a number") from exc
        attachments = []
        for i in range(num_media):
            url = data.get(f"MediaUrl{i}")
            if not url:
                raise MalformedPayload(f"NumMedia is {num_media} but MediaUrl{i} is missing")
            attachments.append(Attachment(url=url, content_type=data.get(f"MediaContentType{i}")))
        phone = e164(sender, inbox.default_region)
        channel_data: dict[str, Any] = {
            key: data[key]
            for key in (
                "AccountSid",
                "MessagingServiceSid",
                "NumSegments",
                "FromCity",
                "FromState",
                "FromCountry",
                "FromZip",
                "ToCountry",
            )
            if data.get(key)
        }
        token = request.header("i-twilio-idempotency-token")
        if token:
            channel_data["idempotency_token"] = token
        if data.get("NumSegments"):
            channel_data["segments"] = int(data["NumSegments"])
        body = data.get("Body", "")
        return Inbound(
            external_message_id=sid,
            from_address=phone or sender,
            to_address=e164(data.get("To"), inbox.default_region)
            or data.get("To")
            or inbox.address,
            occurred_at=now(),
            content=body,
            message_type=_media_type(attachments) if attachments and not body else MessageType.TEXT,
            contact=Contact(phone=phone),
            attachments=attachments,
            channel_data=channel_data,
        )

    def _status(self, form: FormData) -> StatusUpdate:
        data = form.as_dict()
        sid = data.get("MessageSid") or data.get("SmsSid")
        provider_status = data.get("MessageStatus") or data.get("SmsStatus")
        if not sid or not provider_status:
            raise MalformedPayload("a Twilio status callback needs MessageSid and MessageStatus")
        status = STATUSES.get(provider_status.lower())
        error_code = data.get("ErrorCode") or None
        return StatusUpdate(
            external_message_id=sid,
            status=status,
            provider_status=provider_status,
            occurred_at=now(),
            error_code=error_code,
            error_message=data.get("ErrorMessage")
            or (f"Twilio error {error_code}" if error_code else None),
            recipient=data.get("To"),
            raw=data,
        )

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        sid, token = inbox.credential("account_sid"), inbox.credential("auth_token")
        if not sid or not token:
            raise ProviderError(
                "twilio: the inbox needs account_sid and auth_token", retryable=False
            )
        form: dict[str, str | list[str]] = {"To": outbound.to_address}
        service = inbox.config.get("messaging_service_sid")
        if service:
            form["MessagingServiceSid"] = str(service)
        else:
            form["From"] = inbox.address
        if outbound.content:
            form["Body"] = outbound.content
        media = [a.url for a in outbound.attachments if a.url]
        if media:
            form["MediaUrl"] = media
        callback = outbound.status_callback_url or inbox.webhook_urls.get("status")
        if callback:
            form["StatusCallback"] = callback
        url = f"{inbox.api_base(API_BASE)}/2010-04-01/Accounts/{sid}/Messages.json"
        response = http.call(
            client, self.name, "POST", url, _read_error, data=form, auth=(sid, token)
        )
        body = http.json_body(response)
        if not body.get("sid"):
            raise ProviderError("twilio: the answer has no message sid", retryable=False)
        return SendResult(
            external_message_id=str(body["sid"]),
            status=DeliveryStatus.SENT,
            channel_data={"segments": _int(body.get("num_segments"))},
            raw=body,
        )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _media_type(attachments: list[Attachment]) -> MessageType:
    kind = (attachments[0].content_type or "").split("/")[0]
    return {"image": MessageType.IMAGE, "audio": MessageType.AUDIO}.get(kind, MessageType.FILE)


def _read_error(response: httpx.Response) -> tuple[str | None, str | None]:
    body = http.json_body(response)
    code = body.get("code")
    return (str(code) if code is not None else None, body.get("message"))
