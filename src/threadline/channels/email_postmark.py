"""Postmark: inbound email as JSON (``inbound``), delivery/bounce/open/spam webhooks
(``events``), and sending through ``POST /email``.

Postmark cannot sign its webhooks; it sends HTTP Basic credentials put in the webhook URL
(``https://user:pass@host/...``), which we compare with the inbox's ``webhook_username``
and ``webhook_password``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any, ClassVar

import httpx

from threadline.channels import http
from threadline.channels.addresses import email_address, email_addresses
from threadline.channels.base import (
    Attachment,
    InboxConfig,
    Outbound,
    SendResult,
    StatusUpdate,
    WebhookRequest,
    WebhookResult,
    now,
    utc_from_iso,
)
from threadline.channels.email_common import (
    email_inbound,
    from_header,
    outbound_message_id,
    reply_headers,
    reply_subject,
)
from threadline.domain.enums import Channel, DeliveryStatus
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

API_BASE = "https://api.postmarkapp.com"

#: Postmark's RecordType -> our delivery status (None: kept as an event, no status change).
RECORD_TYPES: dict[str, DeliveryStatus | None] = {
    "Delivery": DeliveryStatus.DELIVERED,
    "Bounce": DeliveryStatus.FAILED,
    "Open": DeliveryStatus.READ,
    "SpamComplaint": None,
    "Click": None,
    "SubscriptionChange": None,
}
#: Bounce types that are not a failed delivery (auto-replies, soft notices).
NOT_FAILURES = frozenset(
    {"AutoResponder", "Transient", "SoftBounce", "DnsError", "OpenRelayTest", "Unknown"}
)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class Postmark:
    name: ClassVar[str] = "postmark"
    channel: ClassVar[Channel] = Channel.EMAIL
    webhook_names: ClassVar[tuple[str, ...]] = ("inbound", "events")
    required_credentials: ClassVar[tuple[str, ...]] = ("server_token",)
    generated_credentials: ClassVar[tuple[str, ...]] = ("webhook_username", "webhook_password")
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ()

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        user, password = inbox.credential("webhook_username"), inbox.credential("webhook_password")
        if not user or not password:
            raise SignatureInvalid("the inbox has no webhook_username/webhook_password")
        given = basic_credentials(request.header("authorization"))
        if given is None:
            raise SignatureInvalid("missing HTTP Basic credentials")
        ok_user = hmac.compare_digest(given[0].encode(), user.encode())
        ok_password = hmac.compare_digest(given[1].encode(), password.encode())
        if not (ok_user and ok_password):
            raise SignatureInvalid("wrong HTTP Basic credentials")

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        data = request.json_object()
        if name == "inbound":
            return WebhookResult(inbound=[self._inbound(data, inbox)])
        if name == "events":
            status = self._event(data)
            return WebhookResult(statuses=[status] if status else [])
        raise MalformedPayload(f"postmark has no webhook named {name!r}")

    def _inbound(self, data: dict[str, Any], inbox: InboxConfig) -> Any:
        if not data.get("From") and not data.get("FromFull"):
            raise MalformedPayload("a Postmark inbound email needs From")
        headers = {
            str(h.get("Name")): str(h.get("Value"))
            for h in _list(data.get("Headers"), "Headers")
            if isinstance(h, dict)
        }
        if data.get("MessageID") and "message-id" not in {k.lower() for k in headers}:
            headers.setdefault("Message-ID", f"<{data['MessageID']}@inbound.postmarkapp.com>")
        from_full = data.get("FromFull") or {}
        sender = from_full.get("Email") or data.get("From")
        from_value = f'"{from_full["Name"]}" <{sender}>' if from_full.get("Name") else sender
        attachments = []
        for att in _list(data.get("Attachments"), "Attachments"):
            if not isinstance(att, dict):
                raise MalformedPayload("a Postmark attachment is not an object")
            try:
                content = base64.b64decode(att.get("Content") or "", validate=True)
            except binascii.Error as exc:
                raise MalformedPayload("an attachment's Content is not base64") from exc
            attachments.append(
                Attachment(
                    content_type=att.get("ContentType"),
                    filename=att.get("Name"),
                    size=len(content),
                    provider_id=(att.get("ContentID") or None),
                    content=content,
                )
            )
        date = data.get("Date")
        return email_inbound(
            inbox=inbox,
            from_header=from_value,
            to=_addresses(data.get("ToFull"), data.get("To")),
            cc=_addresses(data.get("CcFull"), data.get("Cc")),
            subject=data.get("Subject"),
            text=data.get("TextBody"),
            html=data.get("HtmlBody"),
            headers={**headers, **({"Date": date} if date else {})},
            attachments=attachments,
            stripped_reply=data.get("StrippedTextReply"),
            provider_data={
                "postmark_message_id": data.get("MessageID"),
                "mailbox_hash": data.get("MailboxHash") or None,
                "original_recipient": data.get("OriginalRecipient"),
            },
        )

    def _event(self, data: dict[str, Any]) -> StatusUpdate | None:
        record_type = data.get("RecordType")
        message_id = data.get("MessageID")
        if not isinstance(record_type, str) or not message_id:
            raise MalformedPayload("a Postmark event needs RecordType and MessageID")
        if record_type not in RECORD_TYPES:
            return None
        status = RECORD_TYPES[record_type]
        error_code = error_message = None
        if record_type == "Bounce":
            if data.get("Type") in NOT_FAILURES:
                status = None
            error_code = str(data.get("TypeCode")) if data.get("TypeCode") is not None else None
            error_message = (
                " - ".join(str(x) for x in (data.get("Name"), data.get("Description")) if x) or None
            )
        when = next(
            (data[k] for k in ("DeliveredAt", "BouncedAt", "ReceivedAt") if data.get(k)), None
        )
        metadata = data.get("Metadata") if isinstance(data.get("Metadata"), dict) else {}
        assert isinstance(metadata, dict)
        return StatusUpdate(
            external_message_id=str(message_id),
            status=status,
            provider_status=record_type
            + (f":{data['Type']}" if record_type == "Bounce" and data.get("Type") else ""),
            occurred_at=utc_from_iso(when) if when else now(),
            error_code=error_code,
            error_message=error_message,
            recipient=data.get("Recipient") or data.get("Email"),
            message_ref=metadata.get("threadline_message_id"),
            raw=data,
        )

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        token = inbox.credential("server_token")
        if token is None:
            raise ProviderError("postmark: the inbox has no server_token", retryable=False)
        message_id = outbound_message_id(outbound.idempotency_key, inbox.address)
        headers = {"Message-ID": message_id, **reply_headers(outbound)}
        body: dict[str, Any] = {
            "From": from_header(inbox),
            "To": outbound.to_address,
            "Subject": reply_subject(outbound, inbox),
            "TextBody": outbound.content or None,
            "HtmlBody": outbound.content_html or None,
            "Headers": [{"Name": k, "Value": v} for k, v in headers.items()],
            "Metadata": {"threadline_message_id": outbound.idempotency_key},
            "MessageStream": str(inbox.config.get("message_stream") or "outbound"),
        }
        if outbound.cc:
            body["Cc"] = ", ".join(outbound.cc)
        if inbox.config.get("track_opens") is not None:
            body["TrackOpens"] = bool(inbox.config["track_opens"])
        attachments = [
            {
                "Name": a.filename or "attachment",
                "Content": base64.b64encode(a.content).decode(),
                "ContentType": a.content_type or "application/octet-stream",
            }
            for a in outbound.attachments
            if a.content is not None
        ]
        if attachments:
            body["Attachments"] = attachments
        body = {k: v for k, v in body.items() if v is not None}
        response = http.call(
            client,
            self.name,
            "POST",
            f"{inbox.api_base(API_BASE)}/email",
            _read_error,
            json=body,
            headers={"Accept": "application/json", "X-Postmark-Server-Token": token},
        )
        answer = http.json_body(response)
        if answer.get("ErrorCode") not in (0, None) or not answer.get("MessageID"):
            raise ProviderError(
                f"postmark: {answer.get('Message') or 'no MessageID in the answer'}",
                retryable=False,
                provider_code=str(answer.get("ErrorCode")),
            )
        return SendResult(
            external_message_id=str(answer["MessageID"]),
            status=DeliveryStatus.SENT,
            channel_data={"message_id": message_id},
            raw=answer,
        )


def _addresses(full: Any, plain: Any) -> list[str]:
    if isinstance(full, list) and full:
        return [
            a for a in (email_address(f.get("Email")) for f in full if isinstance(f, dict)) if a
        ]
    return email_addresses(plain if isinstance(plain, str) else None)


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"Postmark {what} is not a list")
    return value


def _read_error(response: httpx.Response) -> tuple[str | None, str | None]:
    body = http.json_body(response)
    code = body.get("ErrorCode")
    return (str(code) if code is not None else None, body.get("Message"))
