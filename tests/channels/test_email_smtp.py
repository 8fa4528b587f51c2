from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from threadline.channels import registry
from threadline.channels.base import Attachment, Outbound
from threadline.channels.email_smtp import parse_message
from threadline.domain.enums import Channel, DeliveryStatus
from threadline.domain.errors import MalformedPayload, ProviderError

from .fakes import fixture_bytes
from .helpers import inbox

smtp = registry.get("smtp")


class Recorder:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.reject: str | None = None

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.reject:
            return self.reject
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()  # aiosmtpd's start() connects to its own port, so it cannot be 0
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


def smtp_inbox(port: int):  # type: ignore[no-untyped-def]
    return inbox(
        "smtp",
        Channel.EMAIL,
        "support@shop.example",
        {"host": "127.0.0.1", "port": port},
        from_name="Shop Support",
        timeout=5,
    )


def test_raw_reply_is_parsed_threaded_and_stripped() -> None:
    box = smtp_inbox(25)
    mail = parse_message(fixture_bytes("email_reply.eml"), box, envelope_from="ann@example.com")
    assert mail.external_message_id == "<CAJ7pQ1Yx8f=reply-1@mail.example.com>"
    assert mail.external_conversation_id == "<thread-root-1042@shop.example>"
    assert mail.from_address == "ann.customer@example.com"
    assert mail.contact.name == "Ann Custömer"
    assert mail.content == "Thanks! Tuesday works \N{EM DASH} see you then."
    assert "Can we deliver on Tuesday?" in mail.channel_data["full_text"]
    assert mail.content_html is not None and "<script" not in mail.content_html
    assert mail.channel_data["cc"] == ["bob@example.com"]
    assert mail.channel_data["envelope_from"] == "ann@example.com"
    (pdf,) = mail.attachments
    assert (pdf.filename, pdf.content_type) == ("signed.pdf", "application/pdf")
    assert pdf.content is not None and pdf.content.startswith(b"%PDF-1.4")
    assert mail.occurred_at.isoformat() == "2025-11-25T10:02:03+00:00"


def test_mail_without_message_id_gets_a_stable_generated_one() -> None:
    raw = b"From: a@example.com\r\nTo: support@shop.example\r\nSubject: hi\r\n\r\nhello\r\n"
    first = parse_message(raw, smtp_inbox(25))
    again = parse_message(raw, smtp_inbox(25))
    assert first.external_message_id == again.external_message_id
    assert first.external_message_id.endswith("@threadline.invalid>")
    assert first.channel_data["message_id_generated"] is True


@pytest.mark.parametrize(
    "raw", [b"", b"Subject: no sender\r\n\r\nbody", b"From: not an address\r\n\r\nx"]
)
def test_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedPayload):
        parse_message(raw, smtp_inbox(25))


def test_send_through_a_real_smtp_server(smtp_server: tuple[Recorder, int]) -> None:
    recorder, port = smtp_server
    out = Outbound(
        "ann.customer@example.com",
        "0190f0c1-0000-7000-8000-000000000300",
        "See you Tuesday.",
        content_html="<p>See you Tuesday.</p>",
        subject="Your order #1042",
        in_reply_to="<CAJ7pQ1Yx8f=reply-1@mail.example.com>",
        references=["<thread-root-1042@shop.example>"],
        attachments=[Attachment(content_type="text/plain", filename="note.txt", content=b"hi")],
    )
    with httpx.Client() as c:
        result = smtp.send(out, smtp_inbox(port), c)
    assert result.status == DeliveryStatus.SENT
    assert result.external_message_id == "<0190f0c1-0000-7000-8000-000000000300@shop.example>"
    (env,) = recorder.envelopes
    assert env.mail_from == "support@shop.example"
    assert env.rcpt_tos == ["ann.customer@example.com"]
    assert isinstance(env.content, bytes)
    msg = message_from_bytes(env.content, policy=policy.default)
    assert msg["From"] == "Shop Support <support@shop.example>"
    assert msg["Subject"] == "Re: Your order #1042"
    assert msg["Message-ID"] == result.external_message_id
    assert msg["In-Reply-To"] == "<CAJ7pQ1Yx8f=reply-1@mail.example.com>"
    assert msg["References"].strip() == (
        "<thread-root-1042@shop.example> <CAJ7pQ1Yx8f=reply-1@mail.example.com>"
    )
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "See you Tuesday."
    assert [p.get_filename() for p in msg.iter_attachments()] == ["note.txt"]
    # What we sent is what we would parse back as the same thread.
    parsed = parse_message(env.content, smtp_inbox(port))
    assert parsed.external_conversation_id == "<thread-root-1042@shop.example>"


@pytest.mark.parametrize(
    ("reply", "retryable"), [("550 5.1.1 No such user", False), ("451 4.3.0 Try later", True)]
)
def test_refused_recipients(smtp_server: tuple[Recorder, int], reply: str, retryable: bool) -> None:
    recorder, port = smtp_server
    recorder.reject = reply
    with httpx.Client() as c, pytest.raises(ProviderError) as err:
        smtp.send(Outbound("nobody@example.com", "k", "hi", subject="s"), smtp_inbox(port), c)
    assert err.value.retryable is retryable
    assert err.value.provider_code == reply[:3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_retryable() -> None:
    port = free_port()
    with httpx.Client() as c, pytest.raises(ProviderError) as err:
        smtp.send(Outbound("a@example.com", "k", "hi", subject="s"), smtp_inbox(port), c)
    assert err.value.retryable is True
