"""WhatsApp Cloud API (Meta): one ``inbound`` webhook for messages and statuses, and the
Graph API messages endpoint for sending.

- ``GET`` is Meta's subscription check: ``hub.mode=subscribe`` with the inbox's
  ``verify_token`` is answered with ``hub.challenge`` as plain text.
- ``POST`` bodies are signed in ``X-Hub-Signature-256: sha256=<hex>``, an HMAC-SHA256 of the
  raw body keyed with the app secret.
- Outside the 24-hour customer-service window only a template may be sent;
  ``window_open`` is the check the caller makes before queueing anything else.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from threadline.channels import http
from threadline.channels.addresses import e164
from threadline.channels.base import (
    Attachment,
    Contact,
    Inbound,
    InboxConfig,
    Outbound,
    SendResult,
    StatusUpdate,
    WebhookRequest,
    WebhookResponse,
    WebhookResult,
    utc_from_timestamp,
)
from threadline.domain.enums import Channel, DeliveryStatus, MessageType
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

API_BASE = "https://graph.facebook.com"
API_VERSION = "v21.0"
WINDOW = timedelta(hours=24)

STATUSES: dict[str, DeliveryStatus] = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
}
#: Graph error codes that say "try again later" whatever the HTTP status: unknown/service
#: errors, rate and throughput limits, and WhatsApp's own service-unavailable.
TRANSIENT_CODES = frozenset({"1", "2", "4", "80007", "130429", "131000", "131016", "133004"})
_MEDIA = {
    "image": MessageType.IMAGE,
    "sticker": MessageType.IMAGE,
    "audio": MessageType.AUDIO,
    "voice": MessageType.AUDIO,
    "video": MessageType.FILE,
    "document": MessageType.FILE,
}


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether a free-form message may be sent: the contact wrote less than 24 hours ago."""
    return last_inbound_at is not None and now - last_inbound_at < WINDOW


def signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class WhatsAppCloud:
    name: ClassVar[str] = "meta"
    channel: ClassVar[Channel] = Channel.WHATSAPP
    webhook_names: ClassVar[tuple[str, ...]] = ("inbound",)
    required_credentials: ClassVar[tuple[str, ...]] = ("access_token", "app_secret", "verify_token")
    generated_credentials: ClassVar[tuple[str, ...]] = ()
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ()

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        if request.method.upper() == "GET":
            expected = inbox.credential("verify_token")
            given = request.query.get("hub.verify_token") or ""
            if request.query.get("hub.mode") != "subscribe" or expected is None:
                raise SignatureInvalid("not a subscription check this inbox can answer")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise SignatureInvalid("hub.verify_token does not match the inbox's verify_token")
            return
        secret = inbox.credential("app_secret")
        header = request.header("x-hub-signature-256")
        if secret is None:
            raise SignatureInvalid("the inbox has no app_secret to check signatures with")
        if not header:
            raise SignatureInvalid("missing X-Hub-Signature-256")
        if not hmac.compare_digest(signature(secret, request.body).encode(), header.encode()):
            raise SignatureInvalid("X-Hub-Signature-256 does not match the body")

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        if request.method.upper() == "GET":
            challenge = request.query.get("hub.challenge")
            if not challenge:
                raise MalformedPayload("a subscription check without hub.challenge")
            return WebhookResult(response=WebhookResponse(200, challenge.encode(), "text/plain"))
        payload = request.json_object()
        if payload.get("object") != "whatsapp_business_account":
            raise MalformedPayload("not a WhatsApp Business Account notification")
        entries = payload.get("entry")
        if not isinstance(entries, list):
            raise MalformedPayload("the notification has no entry list")
        inbound: list[Inbound] = []
        statuses: list[StatusUpdate] = []
        for entry in entries:
            for change in _list(_dict(entry, "entry").get("changes"), "changes"):
                change = _dict(change, "change")
                if change.get("field") != "messages":
                    continue
                value = _dict(change.get("value"), "value")
                metadata = _dict(value.get("metadata") or {}, "metadata")
                to_id = str(metadata.get("phone_number_id") or inbox.address)
                profiles = {
                    str(c.get("wa_id")): _dict(c.get("profile") or {}, "profile").get("name")
                    for c in _list(value.get("contacts") or [], "contacts")
                    if isinstance(c, dict)
                }
                for message in _list(value.get("messages") or [], "messages"):
                    inbound.append(self._message(_dict(message, "message"), to_id, profiles, inbox))
                for status in _list(value.get("statuses") or [], "statuses"):
                    statuses.append(self._status(_dict(status, "status")))
        return WebhookResult(inbound=inbound, statuses=statuses)

    def _message(
        self, m: dict[str, Any], to_id: str, profiles: dict[str, Any], inbox: InboxConfig
    ) -> Inbound:
        wamid, sender, kind = m.get("id"), m.get("from"), m.get("type")
        if not wamid or not sender or not kind:
            raise MalformedPayload("a WhatsApp message needs id, from and type")
        phone = e164(str(sender))
        content = ""
        message_type = MessageType.TEXT
        attachments: list[Attachment] = []
        data: dict[str, Any] = {"type": kind, "wa_id": sender}
        body = m.get(kind) if isinstance(m.get(kind), dict) else {}
        assert isinstance(body, dict)
        if kind == "text":
            content = str(body.get("body") or "")
        elif kind in _MEDIA:
            message_type = _MEDIA[kind]
            content = str(body.get("caption") or "")
            attachments.append(
                Attachment(
                    content_type=body.get("mime_type"),
                    filename=body.get("filename"),
                    provider_id=str(body["id"]) if body.get("id") else None,
                )
            )
            if body.get("sha256"):
                data["sha256"] = body["sha256"]
            if body.get("voice"):
                data["voice"] = True
        elif kind == "location":
            data["location"] = {
                k: body.get(k) for k in ("latitude", "longitude", "name", "address", "url")
            }
            label = ", ".join(str(body[k]) for k in ("name", "address") if body.get(k))
            content = label or f"{body.get('latitude')},{body.get('longitude')}"
        elif kind == "button":
            content = str(body.get("text") or "")
            data["button_payload"] = body.get("payload")
        elif kind == "interactive":
            reply = body.get(str(body.get("type"))) or {}
            content = str(reply.get("title") or "")
            data["interactive"] = {"type": body.get("type"), **reply}
        elif kind == "reaction":
            message_type = MessageType.EVENT
            content = str(body.get("emoji") or "")
            data["reaction"] = {"message_id": body.get("message_id"), "emoji": body.get("emoji")}
        elif kind == "contacts":
            data["contacts"] = m.get("contacts")
            content = ", ".join(
                str(_dict(c, "contact").get("name", {}).get("formatted_name") or "")
                for c in _list(m.get("contacts") or [], "contacts")
            )
        else:  # "unsupported", "system", "order" ...: kept, not interpreted
            message_type = MessageType.EVENT
            data["payload"] = body or None
        if m.get("context"):
            data["context"] = m["context"]
        if m.get("errors"):
            data["errors"] = m["errors"]
        if m.get("referral"):
            data["referral"] = m["referral"]
        return Inbound(
            external_message_id=str(wamid),
            from_address=phone or str(sender),
            to_address=to_id,
            occurred_at=utc_from_timestamp(m.get("timestamp")),
            content=content,
            message_type=message_type,
            contact=Contact(name=profiles.get(str(sender)), phone=phone),
            attachments=attachments,
            channel_data=data,
        )

    def _status(self, s: dict[str, Any]) -> StatusUpdate:
        wamid, provider_status = s.get("id"), s.get("status")
        if not wamid or not provider_status:
            raise MalformedPayload("a WhatsApp status needs id and status")
        errors = s.get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        details = (first.get("error_data") or {}).get("details")
        message = " - ".join(str(x) for x in (first.get("title"), details) if x) or None
        return StatusUpdate(
            external_message_id=str(wamid),
            status=STATUSES.get(str(provider_status)),
            provider_status=str(provider_status),
            occurred_at=utc_from_timestamp(s.get("timestamp")),
            error_code=str(first["code"]) if first.get("code") is not None else None,
            error_message=message,
            recipient=s.get("recipient_id"),
            message_ref=s.get("biz_opaque_callback_data"),
            raw=s,
        )

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        token = inbox.credential("access_token")
        if token is None:
            raise ProviderError("meta: the inbox has no access_token", retryable=False)
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": outbound.to_address.lstrip("+"),
            "biz_opaque_callback_data": outbound.idempotency_key,
        }
        if outbound.template is not None:
            template: dict[str, Any] = {
                "name": outbound.template.name,
                "language": {"code": outbound.template.language},
            }
            if outbound.template.components:
                template["components"] = outbound.template.components
            body.update(type="template", template=template)
        elif outbound.attachments and outbound.attachments[0].url:
            att = outbound.attachments[0]
            kind = _outbound_media_kind(att.content_type)
            media: dict[str, Any] = {"link": att.url}
            if outbound.content and kind != "audio":
                media["caption"] = outbound.content
            if kind == "document" and att.filename:
                media["filename"] = att.filename
            body.update(type=kind, **{kind: media})
        elif outbound.content:
            preview = "http://" in outbound.content or "https://" in outbound.content
            body.update(type="text", text={"preview_url": preview, "body": outbound.content})
        else:
            raise ProviderError(
                "meta: nothing to send (no text, media or template)", retryable=False
            )
        if outbound.reply_to_external_id:
            body["context"] = {"message_id": outbound.reply_to_external_id}
        version = str(inbox.config.get("api_version") or API_VERSION)
        url = f"{inbox.api_base(API_BASE)}/{version}/{inbox.address}/messages"
        try:
            response = http.call(
                client,
                self.name,
                "POST",
                url,
                _read_error,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        except ProviderError as exc:
            if exc.retryable or exc.provider_code not in TRANSIENT_CODES:
                raise
            raise ProviderError(
                exc.message,
                retryable=True,
                provider_code=exc.provider_code,
                status_code=exc.status_code,
                provider=self.name,
            ) from exc
        answer = http.json_body(response)
        messages = answer.get("messages") or []
        if not messages or not isinstance(messages[0], dict) or not messages[0].get("id"):
            raise ProviderError("meta: the answer has no message id", retryable=False)
        return SendResult(
            external_message_id=str(messages[0]["id"]),
            status=DeliveryStatus.SENT,
            channel_data={"wa_id": (answer.get("contacts") or [{}])[0].get("wa_id")},
            raw=answer,
        )


def _outbound_media_kind(content_type: str | None) -> str:
    kind = (content_type or "").split("/")[0]
    return kind if kind in ("image", "audio", "video") else "document"


def _read_error(response: httpx.Response) -> tuple[str | None, str | None]:
    error = http.json_body(response).get("error") or {}
    if not isinstance(error, dict):
        return None, None
    code = error.get("code")
    details = (error.get("error_data") or {}).get("details")
    message = " - ".join(str(x) for x in (error.get("message"), details) if x) or None
    return (str(code) if code is not None else None, message)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload(f"a WhatsApp {what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedPayload(f"WhatsApp {what} is not a list")
    return value
