"""Plain SMTP: raw RFC 5322 messages in (from Threadline's own SMTP receiver), and sending
through the inbox's SMTP server.

There are no webhooks: ``threadline smtp`` receives mail and hands each message to
``parse_message``. Sending uses the stdlib ``smtplib`` (the delivery worker is synchronous,
like every other provider's ``send``): STARTTLS when the server offers it (or
``config.starttls``), implicit TLS with ``config.tls`` (port 465), login when the inbox
has a username.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from typing import ClassVar

import httpx

from threadline.channels.base import (
    Inbound,
    InboxConfig,
    Outbound,
    SendResult,
    WebhookRequest,
    WebhookResult,
)
from threadline.channels.email_common import build_mime, parse_raw
from threadline.domain.enums import Channel, DeliveryStatus
from threadline.domain.errors import MalformedPayload, ProviderError, SignatureInvalid

DEFAULT_TIMEOUT = 30.0


def parse_message(raw: bytes, inbox: InboxConfig, *, envelope_from: str | None = None) -> Inbound:
    """One received message as an ``Inbound`` (what the SMTP receiver stores)."""
    extra = {"envelope_from": envelope_from} if envelope_from else {}
    return parse_raw(raw, inbox, **extra)


class SMTP:
    name: ClassVar[str] = "smtp"
    channel: ClassVar[Channel] = Channel.EMAIL
    webhook_names: ClassVar[tuple[str, ...]] = ()
    required_credentials: ClassVar[tuple[str, ...]] = ("host",)
    generated_credentials: ClassVar[tuple[str, ...]] = ()
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ()

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        raise SignatureInvalid("smtp inboxes have no webhooks; mail arrives by SMTP")

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        raise MalformedPayload("smtp inboxes have no webhooks; mail arrives by SMTP")

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        host = inbox.credential("host")
        if host is None:
            raise ProviderError("smtp: the inbox has no host", retryable=False)
        tls = bool(inbox.config.get("tls"))
        port = int(inbox.credential("port") or (465 if tls else 587))
        timeout = float(inbox.config.get("timeout") or DEFAULT_TIMEOUT)
        msg = build_mime(outbound, inbox)
        context = ssl.create_default_context()
        try:
            server: smtplib.SMTP
            if tls:
                server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            else:
                server = smtplib.SMTP(host, port, timeout=timeout)
            with server:
                server.ehlo()
                if not tls and (server.has_extn("starttls") or inbox.config.get("starttls")):
                    server.starttls(context=context)
                    server.ehlo()
                user, password = inbox.credential("username"), inbox.credential("password")
                if user and password:
                    server.login(user, password)
                refused = server.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _error(code, text) from exc
        except smtplib.SMTPResponseException as exc:
            raise _error(exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
            timed_out = isinstance(exc, (socket.timeout, TimeoutError))
            what = "did not answer in time" if timed_out else f"unreachable ({exc})"
            raise ProviderError(f"smtp: the server {what}", retryable=True) from exc
        except smtplib.SMTPException as exc:
            raise ProviderError(f"smtp: {exc}", retryable=False) from exc
        if refused:
            code, text = next(iter(refused.values()))
            raise _error(code, text)
        message_id = str(msg["Message-ID"])
        return SendResult(
            external_message_id=message_id,
            status=DeliveryStatus.SENT,
            channel_data={"message_id": message_id},
        )


def _error(code: int, text: bytes | str) -> ProviderError:
    """4xx SMTP replies are temporary (retry), 5xx permanent: the opposite of HTTP."""
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return ProviderError(
        f"smtp: {code} {message}",
        retryable=400 <= code < 500,
        provider_code=str(code),
    )
