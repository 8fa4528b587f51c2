"""SendGrid: Inbound Parse (``inbound``, multipart form, parsed or raw mode), the signed
Event Webhook (``events``), and sending through ``POST /v3/mail/send``.

Inbound Parse cannot sign, so its URL carries a per-inbox secret as the last path segment
(``.../inbound/{inbound_secret}``). The Event Webhook is signed with ECDSA (P-256, SHA-256)
over the ``X-Twilio-Email-Event-Webhook-Timestamp`` header followed by the raw body; the
signature (base64 DER) is in ``X-Twilio-Email-Event-Webhook-Signature`` and the inbox's
``event_verification_key`` is the base64 public key SendGrid shows in its settings.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from threadline.channels import http
from threadline.channels.addresses import email_addresses
from threadline.channels.base import (
    Attachment,
    FormData,
    Inbound,
    InboxConfig,
    Outbound,
    SendResult,
    StatusUpdate,
    WebhookRequest,
    WebhookResult,
    utc_from_timestamp,
)
from threadline.channels.email_common import (
    email_inbound,
    outbound_message_id,
    parse_raw,
    reply_headers,
    reply_subject,
)
from threadline.domain.enums import Channel, DeliveryStatus
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

API_BASE = "https://api.sendgrid.com"
#: Signed events older (or newer) than this are refused as replays.
MAX_SKEW_SECONDS = 10 * 60

EVENTS: dict[str, DeliveryStatus | None] = {
    "processed": DeliveryStatus.SENT,
    "deferred": None,
    "delivered": DeliveryStatus.DELIVERED,
    "open": DeliveryStatus.READ,
    "bounce": DeliveryStatus.FAILED,
    "dropped": DeliveryStatus.FAILED,
    "click": None,
    "spamreport": None,
    "unsubscribe": None,
    "group_unsubscribe": None,
    "group_resubscribe": None,
}


def load_verification_key(key: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 DER as shown in its settings, or a PEM block."""
    try:
        if "BEGIN PUBLIC KEY" in key:
            loaded = load_pem_public_key(key.encode())
        else:
            loaded = load_der_public_key(base64.b64decode("".join(key.split())))
    except (ValueError, binascii.Error) as exc:
        raise SignatureInvalid("the inbox's event_verification_key is not a public key") from exc
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise SignatureInvalid("the inbox's event_verification_key is not an EC key")
    return loaded


def verify_event_signature(key: str, body: bytes, signature: str, timestamp: str) -> bool:
    """Whether ``signature`` is SendGrid's ECDSA signature of ``timestamp + body``."""
    public_key = load_verification_key(key)
    try:
        public_key.verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


class SendGrid:
    name: ClassVar[str] = "sendgrid"
    channel: ClassVar[Channel] = Channel.EMAIL
    webhook_names: ClassVar[tuple[str, ...]] = ("inbound", "events")
    required_credentials: ClassVar[tuple[str, ...]] = ("api_key",)
    generated_credentials: ClassVar[tuple[str, ...]] = ("inbound_secret",)
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ("inbound",)
    url_secret_credential: ClassVar[str] = "inbound_secret"

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        if name == "inbound":
            secret = inbox.credential("inbound_secret")
            given = unquote(urlsplit(request.url).path.rstrip("/").rsplit("/", 1)[-1])
            if secret is None:
                raise SignatureInvalid("the inbox has no inbound_secret")
            if not hmac.compare_digest(given.encode(), secret.encode()):
                raise SignatureInvalid("the URL secret does not match")
            return
        key = inbox.credential("event_verification_key")
        signature = request.header("x-twilio-email-event-webhook-signature")
        timestamp = request.header("x-twilio-email-event-webhook-timestamp")
        if key is None:
            raise SignatureInvalid("the inbox has no event_verification_key")
        if not signature or not timestamp:
            raise SignatureInvalid("missing the Event Webhook signature headers")
        try:
            skew = abs(self._clock() - int(timestamp))
        except ValueError as exc:
            raise SignatureInvalid("the Event Webhook timestamp is not a number") from exc
        if skew > MAX_SKEW_SECONDS:
            raise SignatureInvalid("the Event Webhook timestamp is too old or in the future")
        if not verify_event_signature(key, request.body, signature, timestamp):
            raise SignatureInvalid("the Event Webhook signature does not match")

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        if name == "inbound":
            return WebhookResult(inbound=[self._inbound(request.form(), inbox)])
        if name == "events":
            events = request.json()
            if not isinstance(events, list):
                raise MalformedPayload("the Event Webhook body is not a JSON array")
            statuses = [s for s in (self._event(e) for e in events) if s is not None]
            return WebhookResult(statuses=statuses)
        raise MalformedPayload(f"sendgrid has no webhook named {name!r}")

    def _inbound(self, form: FormData, inbox: InboxConfig) -> Inbound:
        fields = form.as_dict()
        envelope = _json_field(fields, "envelope") or {}
        provider_data = {
            "envelope": envelope,
            "spam_score": fields.get("spam_score"),
            "spf": fields.get("SPF"),
            "dkim": fields.get("dkim"),
            "sender_ip": fields.get("sender_ip"),
        }
        provider_data = {k: v for k, v in provider_data.items() if v}
        if "email" in fields:  # "POST the raw, full MIME message"
            return parse_raw(
                fields["email"].encode("utf-8", "surrogateescape"), inbox, **provider_data
            )
        if not fields.get("from"):
            raise MalformedPayload("a SendGrid Inbound Parse post needs 'from' (or 'email')")
        headers = _header_block(fields.get("headers", ""))
        info = _json_field(fields, "attachment-info") or {}
        attachments = []
        for file in form.files:
            meta = info.get(file.field_name) or {}
            attachments.append(
                Attachment(
                    content_type=meta.get("type") or file.content_type,
                    filename=meta.get("filename") or file.filename,
                    size=len(file.content),
                    provider_id=meta.get("content-id"),
                    content=file.content,
                )
            )
        return email_inbound(
            inbox=inbox,
            from_header=fields["from"],
            to=email_addresses(fields.get("to")),
            cc=email_addresses(fields.get("cc")),
            subject=fields.get("subject"),
            text=fields.get("text"),
            html=fields.get("html"),
            headers=headers,
            attachments=attachments,
            provider_data=provider_data,
        )

    def _event(self, event: Any) -> StatusUpdate | None:
        if not isinstance(event, dict):
            raise MalformedPayload("an Event Webhook event is not an object")
        kind, sg_id = event.get("event"), event.get("sg_message_id")
        if not kind or "timestamp" not in event:
            raise MalformedPayload("an Event Webhook event needs event and timestamp")
        if not sg_id or kind not in EVENTS:
            return None
        status = EVENTS[str(kind)]
        error_message = event.get("reason") or event.get("response")
        return StatusUpdate(
            # The send answer's X-Message-Id is the part of sg_message_id before the first dot.
            external_message_id=str(sg_id).split(".", 1)[0],
            status=status,
            provider_status=str(kind) + (f":{event['type']}" if event.get("type") else ""),
            occurred_at=utc_from_timestamp(event["timestamp"]),
            error_code=str(event["status"]) if event.get("status") and status else None,
            error_message=str(error_message) if error_message and status else None,
            recipient=event.get("email"),
            message_ref=event.get("threadline_message_id"),
            raw=event,
        )

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        api_key = inbox.credential("api_key")
        if api_key is None:
            raise ProviderError("sendgrid: the inbox has no api_key", retryable=False)
        message_id = outbound_message_id(outbound.idempotency_key, inbox.address)
        personalization: dict[str, Any] = {"to": [{"email": outbound.to_address}]}
        if outbound.cc:
            personalization["cc"] = [{"email": a} for a in outbound.cc]
        sender: dict[str, str] = {"email": inbox.address}
        if inbox.config.get("from_name"):
            sender["name"] = str(inbox.config["from_name"])
        content = [{"type": "text/plain", "value": outbound.content or " "}]
        if outbound.content_html:
            content.append({"type": "text/html", "value": outbound.content_html})
        body: dict[str, Any] = {
            "personalizations": [personalization],
            "from": sender,
            "subject": reply_subject(outbound, inbox) or " ",
            "content": content,
            "headers": {"Message-ID": message_id, **reply_headers(outbound)},
            "custom_args": {"threadline_message_id": outbound.idempotency_key},
        }
        attachments = [
            {
                "content": base64.b64encode(a.content).decode(),
                "filename": a.filename or "attachment",
                "type": a.content_type or "application/octet-stream",
                "disposition": "attachment",
            }
            for a in outbound.attachments
            if a.content is not None
        ]
        if attachments:
            body["attachments"] = attachments
        response = http.call(
            client,
            self.name,
            "POST",
            f"{inbox.api_base(API_BASE)}/v3/mail/send",
            _read_error,
            json=body,
            headers={"Authorization": f"Bearer {api_key}"},
        )
        sg_id = response.headers.get("x-message-id")
        return SendResult(
            external_message_id=sg_id,
            status=DeliveryStatus.SENT,
            channel_data={"message_id": message_id},
            raw={"status_code": response.status_code, "x_message_id": sg_id},
        )


def _json_field(fields: dict[str, str], name: str) -> dict[str, Any] | None:
    if not fields.get(name):
        return None
    try:
        value = json.loads(fields[name])
    except ValueError as exc:
        raise MalformedPayload(f"the {name!r} field is not JSON") from exc
    if not isinstance(value, dict):
        raise MalformedPayload(f"the {name!r} field is not a JSON object")
    return value


def _header_block(raw: str) -> dict[str, str]:
    """The raw header block SendGrid posts in 'headers', unfolded, first value per name."""
    headers: dict[str, str] = {}
    name = None
    for line in raw.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and name:
            headers[name] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip():
            name = key.strip()
            if name in headers:
                name = None
                continue
            headers[name] = value.strip()
    return headers


def _read_error(response: httpx.Response) -> tuple[str | None, str | None]:
    errors = http.json_body(response).get("errors") or []
    messages = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
    fields = [str(e.get("field")) for e in errors if isinstance(e, dict) and e.get("field")]
    return (fields[0] if fields else str(response.status_code), "; ".join(messages) or None)
