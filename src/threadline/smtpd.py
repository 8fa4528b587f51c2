"""The built-in SMTP receiver (``threadline smtp``): mail for the address of an ``smtp``
inbox is stored like any other inbound message, for self-hosters without an email API.

aiosmtpd speaks SMTP; each recipient is checked at ``RCPT TO`` (an address no active
``smtp`` inbox has is refused with 550, so the sending server bounces it at once), and each
accepted message is parsed (``channels/email_smtp.parse_message``) and stored through the
same path as webhooks (``receive.Receiver.store``) before ``250`` is answered: a message
the server accepted is committed. A message that cannot be parsed is refused with 554, one
over the size limit with 552, and a database that cannot take it now with 451 (the sender
retries later).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from threadline.channels.addresses import email_address
from threadline.channels.email_smtp import parse_message
from threadline.domain.errors import MalformedPayload, PayloadTooLarge
from threadline.logs import get_logger
from threadline.receive import Receiver
from threadline.store import inboxes

log = get_logger(__name__)

PROVIDER = "smtp"


class InboundMail:
    """The aiosmtpd handler: recipients by inbox, messages through the receiver."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def _inboxes(self, address: str) -> list[inboxes.Located]:
        return inboxes.by_address(self.receiver.db, self.receiver.settings, PROVIDER, address)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        mailbox = email_address(address)
        loop = asyncio.get_running_loop()
        if mailbox is None or not await loop.run_in_executor(None, self._inboxes, mailbox):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(
                None, self.deliver, data, envelope.mail_from, list(envelope.rcpt_tos)
            )
        except MalformedPayload:
            return "554 5.6.0 the message cannot be parsed"
        except PayloadTooLarge:
            return "552 5.3.4 the message is too big"
        except Exception as exc:
            log.error("smtp_store_failed", error_type=type(exc).__name__, exc_info=exc)
            return "451 4.3.0 cannot store the message now, try again later"
        log.info("smtp_received", stored=stored, recipients=len(envelope.rcpt_tos))
        return "250 OK message accepted"

    def deliver(self, raw: bytes, mail_from: str | None, recipients: list[str]) -> int:
        """Store one message for every inbox among its recipients; answers how many."""
        stored = 0
        seen: set[Any] = set()
        for rcpt in recipients:
            mailbox = email_address(rcpt)
            for located in self._inboxes(mailbox) if mailbox else []:
                if located.inbox_id in seen:
                    continue
                seen.add(located.inbox_id)
                inbound = parse_message(raw, located.config, envelope_from=mail_from)
                self.receiver.store(located, inbound)
                stored += 1
        return stored


def controller(receiver: Receiver, host: str, port: int) -> Controller:
    """An SMTP server on ``host:port`` (``start()`` it; ``stop()`` when done)."""
    return Controller(
        InboundMail(receiver),
        hostname=host,
        port=port,
        data_size_limit=receiver.settings.max_body_bytes,
        server_hostname="threadline",
        ready_timeout=10,
    )
