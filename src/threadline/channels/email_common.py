"""What every email provider shares: threading headers, quoted-reply stripping, safe HTML,
attachments, and raw RFC 5322 messages in and out.

An inbound email becomes one ``Inbound`` whose ``content`` is the new reply alone (the quoted
history stripped) while ``channel_data["full_text"]`` keeps the whole body;
``external_message_id`` is the RFC ``Message-ID`` (a stable one is derived from the mail when
it has none), and ``external_conversation_id`` is the thread's root Message-ID (the first
of ``References``, else ``In-Reply-To``, else its own).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, parsedate_to_datetime
from typing import Any

import nh3
from mailparser_reply import EmailReplyParser

from threadline.channels.addresses import display_name, email_address, email_addresses
from threadline.channels.base import Attachment, Contact, Inbound, InboxConfig, Outbound, now
from threadline.domain.enums import MessageType
from threadline.domain.errors import MalformedPayload

#: Headers kept on the message's channel_data (the rest are noise for a conversation).
KEPT_HEADERS = (
    "message-id",
    "in-reply-to",
    "references",
    "date",
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "auto-submitted",
    "precedence",
    "list-id",
    "x-autoreply",
)

_MSGID = re.compile(r"<[^<>\s]+>")
_REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pt", "sv", "pl"]


def sanitize_html(html: str | None) -> str | None:
    """HTML safe to show in the dashboard (nh3: no scripts, handlers or remote tricks)."""
    if not html:
        return None
    return nh3.clean(html, link_rel="noopener noreferrer nofollow")


def html_to_text(html: str) -> str:
    """A plain-text fallback for HTML-only mail."""
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>|</tr>|</h\d>", "\n", html)
    text = nh3.clean(text, tags=set(), clean_content_tags={"script", "style", "head", "title"})
    text = (
        text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&#39;", "'")
        .replace("&amp;", "&")
    )
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.strip() for line in text.splitlines())).strip()


def strip_quoted(text: str) -> str:
    """The new part of a reply: quoted history ("On ... wrote:", ``>`` lines) removed."""
    if not text.strip():
        return ""
    try:
        reply = EmailReplyParser(languages=_REPLY_LANGUAGES).parse_reply(text)
    except Exception:  # the parser is heuristic; a body it chokes on is kept whole
        return text.strip()
    return (reply or text).strip()


def message_ids(value: str | None) -> list[str]:
    """The ``<id@host>`` tokens of a Message-ID, In-Reply-To or References header."""
    if not value:
        return []
    found = _MSGID.findall(value)
    if found:
        return found
    bare = value.strip()
    return [f"<{bare}>"] if bare and " " not in bare else []


def derived_message_id(*parts: str | None) -> str:
    """A stable Message-ID for mail that came without one (so retries stay idempotent)."""
    digest = hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()[:32]
    return f"<{digest}@threadline.invalid>"


def outbound_message_id(idempotency_key: str, from_address: str) -> str:
    """The Message-ID our mail goes out with: derived from our message id, so a resend is
    recognisably the same mail and a reply's In-Reply-To leads back to the message."""
    domain = from_address.rsplit("@", 1)[-1] if "@" in from_address else "threadline.invalid"
    return f"<{idempotency_key}@{domain}>"


def thread_root(message_id: str, in_reply_to: list[str], references: list[str]) -> str:
    if references:
        return references[0]
    if in_reply_to:
        return in_reply_to[0]
    return message_id


def email_inbound(
    *,
    inbox: InboxConfig,
    from_header: str | None,
    to: list[str],
    cc: list[str],
    subject: str | None,
    text: str | None,
    html: str | None,
    headers: Mapping[str, str],
    attachments: list[Attachment],
    occurred_at: datetime | None = None,
    stripped_reply: str | None = None,
    provider_data: dict[str, Any] | None = None,
) -> Inbound:
    """One normalized inbound email from the parts every provider gives us.

    ``headers`` are the mail's own headers (any case); ``stripped_reply`` is the provider's
    own quote-stripping where it has one (Postmark), else ours is used.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    sender = email_address(from_header)
    if sender is None:
        raise MalformedPayload("the email has no sender address")
    full_text = (text or "").strip() or (html_to_text(html) if html else "")
    own_ids = message_ids(lower.get("message-id"))
    date = occurred_at or _header_date(lower.get("date")) or now()
    message_id = (
        own_ids[0] if own_ids else derived_message_id(sender, lower.get("date"), subject, full_text)
    )
    in_reply_to = message_ids(lower.get("in-reply-to"))
    references = message_ids(lower.get("references"))
    reply = (stripped_reply or "").strip() or strip_quoted(full_text)
    recipient = email_address(inbox.address) or (to[0] if to else "")
    channel_data: dict[str, Any] = {
        "message_id": message_id,
        "in_reply_to": in_reply_to[0] if in_reply_to else None,
        "references": references,
        "to": to,
        "cc": cc,
        "full_text": full_text,
        "headers": {k: v for k, v in lower.items() if k in KEPT_HEADERS},
    }
    if not own_ids:
        channel_data["message_id_generated"] = True
    if provider_data:
        channel_data.update(provider_data)
    return Inbound(
        external_message_id=message_id,
        external_conversation_id=thread_root(message_id, in_reply_to, references),
        from_address=sender,
        to_address=recipient,
        occurred_at=date,
        content=reply,
        content_html=sanitize_html(html),
        subject=subject or None,
        message_type=MessageType.TEXT,
        contact=Contact(name=display_name(from_header), email=sender),
        attachments=attachments,
        channel_data=channel_data,
    )


def _header_date(value: str | None) -> datetime | None:
    if not value:
        return None
    # Postmark writes the offset as "-04:00"; RFC 5322 (and the parser) want "-0400".
    value = re.sub(r"([+-]\d\d):(\d\d)\s*$", r"\1\2", value.strip())
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_raw(raw: bytes, inbox: InboxConfig, **provider_data: Any) -> Inbound:
    """An RFC 5322 message (from SMTP, or SendGrid's raw mode) as one ``Inbound``."""
    if not raw.strip():
        raise MalformedPayload("the email is empty")
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the stdlib parser is lenient; this is belt and braces
        raise MalformedPayload("the email cannot be parsed") from exc
    if not isinstance(msg, EmailMessage) or msg.get("from") is None:
        raise MalformedPayload("the email has no From header")
    text, html, attachments = _walk(msg)
    headers = {name: str(value) for name, value in msg.items()}
    return email_inbound(
        inbox=inbox,
        from_header=str(msg.get("from")),
        to=email_addresses(_joined(msg.get_all("to"))),
        cc=email_addresses(_joined(msg.get_all("cc"))),
        subject=str(msg.get("subject") or "") or None,
        text=text,
        html=html,
        headers=headers,
        attachments=attachments,
        provider_data=provider_data or None,
    )


def _joined(values: Iterable[Any] | None) -> str:
    return ", ".join(str(v) for v in values or ())


def _walk(msg: EmailMessage) -> tuple[str | None, str | None, list[Attachment]]:
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        ctype = part.get_content_type()
        if disposition != "attachment" and ctype == "text/plain" and text is None:
            text = _content(part)
        elif disposition != "attachment" and ctype == "text/html" and html is None:
            html = _content(part)
        else:
            payload = part.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else b""
            attachments.append(
                Attachment(
                    content_type=ctype,
                    filename=part.get_filename(),
                    size=len(content),
                    provider_id=_strip_brackets(part.get("content-id")),
                    content=content,
                )
            )
    return text, html, attachments


def _content(part: Message) -> str:
    try:
        return str(part.get_content())  # type: ignore[attr-defined]
    except (LookupError, UnicodeDecodeError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _strip_brackets(value: Any) -> str | None:
    return str(value).strip().strip("<>") or None if value else None


def reply_headers(outbound: Outbound) -> dict[str, str]:
    """In-Reply-To and References for a reply, so the recipient's client threads it."""
    headers: dict[str, str] = {}
    if outbound.in_reply_to:
        headers["In-Reply-To"] = outbound.in_reply_to
    chain = list(outbound.references)
    if outbound.in_reply_to and outbound.in_reply_to not in chain:
        chain.append(outbound.in_reply_to)
    if chain:
        headers["References"] = " ".join(chain)
    return headers


def reply_subject(outbound: Outbound, inbox: InboxConfig) -> str:
    subject = outbound.subject or str(inbox.config.get("default_subject") or "")
    if outbound.in_reply_to and subject and not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    return subject


def from_header(inbox: InboxConfig) -> str:
    name = inbox.config.get("from_name")
    return formataddr((str(name), inbox.address)) if name else inbox.address


def build_mime(outbound: Outbound, inbox: InboxConfig) -> EmailMessage:
    """The outbound mail as an RFC 5322 message (the SMTP provider sends exactly this)."""
    msg = EmailMessage()
    msg["From"] = from_header(inbox)
    msg["To"] = outbound.to_address
    if outbound.cc:
        msg["Cc"] = ", ".join(outbound.cc)
    msg["Subject"] = reply_subject(outbound, inbox)
    msg["Date"] = format_datetime(now())
    msg["Message-ID"] = outbound_message_id(outbound.idempotency_key, inbox.address)
    for name, value in reply_headers(outbound).items():
        msg[name] = value
    msg.set_content(outbound.content or (html_to_text(outbound.content_html or "")))
    if outbound.content_html:
        msg.add_alternative(outbound.content_html, subtype="html")
    for att in outbound.attachments:
        if att.content is None:
            continue
        maintype, _, subtype = (att.content_type or "application/octet-stream").partition("/")
        msg.add_attachment(
            att.content, maintype=maintype, subtype=subtype or "octet-stream", filename=att.filename
        )
    return msg
