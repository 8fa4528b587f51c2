"""Delivery: the worker that sends queued outbound messages through their inbox's provider.

An outbox table drained by workers, not a job library: the job row has to be written in
the message's own transaction on SQLite and PostgreSQL alike (procrastinate is
PostgreSQL-only, huey keeps its queue in its own store), and the row the worker settles is
the message's delivery state itself (``store/deliveries.py``).

One round (``Deliverer.run_once``) claims up to ``delivery_concurrency`` due deliveries,
sends them at once on a thread pool through one shared ``httpx.Client``, and records each
outcome:

- accepted: ``sent`` (or what the provider answered) with its message id;
- a retryable ``ProviderError`` (timeouts, connection errors, 429, 5xx; SMTP 4xx): queued
  again after ``delivery_backoff_seconds * 2**(attempt-1)`` (at most an hour), jittered to
  50-100 %, until ``delivery_max_attempts``; then ``failed``;
- any other ``ProviderError`` (4xx): ``failed`` at once, with the provider's code and text.

A retry whose request may have reached the provider (a read timeout, a connection dropped
mid-answer), and a claim a dead worker left behind, first ask the provider whether it has
the message (``jobs/lookup.py``). ``deliver_forever`` polls: at once after a round that
found work, every ``delivery_poll_seconds`` when idle.
"""

from __future__ import annotations

import random
import smtplib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx

from threadline.channels import registry
from threadline.channels.base import Attachment, InboxConfig, Outbound, Template
from threadline.domain.enums import Channel, DeliveryStatus, MessageType
from threadline.domain.errors import NotFound, ProviderError, UnknownProvider
from threadline.jobs import lookup
from threadline.jobs.poll import poll_forever
from threadline.logs import get_logger
from threadline.settings import Settings
from threadline.store import deliveries, inboxes
from threadline.store.database import Database
from threadline.store.deliveries import Claim, Job
from threadline.store.types import utcnow

log = get_logger(__name__)

#: The longest wait between two attempts.
MAX_BACKOFF = timedelta(hours=1)

#: Loads an inbox as its provider sees it: (db, tenant_id, inbox_id) -> InboxConfig.
InboxLoader = Callable[[Database, uuid.UUID, uuid.UUID], InboxConfig]


def inbox_loader(settings: Settings) -> InboxLoader:
    """``store.inboxes.config_for`` with the worker's settings: the inbox with its
    decrypted credentials and webhook URLs."""

    def load(db: Database, tenant_id: uuid.UUID, inbox_id: uuid.UUID) -> InboxConfig:
        return inboxes.config_for(db, tenant_id, inbox_id, settings)

    return load


def backoff(attempt: int, base: float, rng: Callable[[], float] = random.random) -> timedelta:
    """The wait after failed attempt ``attempt`` (1, 2 ...): exponential, capped, jittered."""
    delay = min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF.total_seconds())
    return timedelta(seconds=delay * (0.5 + 0.5 * rng()))


def uncertain(exc: ProviderError) -> bool:
    """Whether the failed request may still have reached the provider: it was written and
    then timed out, or the connection broke before the answer. Refused connections, connect
    timeouts and answered errors are certain: nothing was sent."""
    cause = exc.__cause__
    if cause is None:
        return False
    if isinstance(
        cause,
        (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            ConnectionRefusedError,
            smtplib.SMTPConnectError,
        ),
    ):
        return False
    return isinstance(cause, (httpx.TransportError, OSError, smtplib.SMTPServerDisconnected))


def recipient(job: Job, channel: Channel) -> str | None:
    """Where the message goes: the contact's address on the channel (an identity first,
    then the contact's phone or email); a Yelp lead is its lead id."""
    contact = job.contact or {}
    if channel == Channel.YELP:
        lead = job.conversation["external_conversation_id"]
        return f"yelp:{lead}" if lead else (job.addresses[0] if job.addresses else None)
    if job.addresses:
        return job.addresses[0]
    if channel == Channel.EMAIL:
        return contact.get("email")
    if channel in (Channel.SMS, Channel.WHATSAPP):
        return contact.get("phone")
    return contact.get("phone") or contact.get("email")


def build_outbound(job: Job, inbox: InboxConfig) -> Outbound:
    """The provider call's input from the stored message and its conversation.

    Email replies carry ``In-Reply-To``/``References`` from the conversation's newest
    inbound mail; a template message takes ``channel_data.template``; the subject is
    ``channel_data.subject`` or the conversation's title.
    """
    message = job.message
    data = message["channel_data"] if isinstance(message["channel_data"], dict) else {}
    channel = Channel(job.conversation["channel"])
    to = recipient(job, channel)
    if not to:
        what = {Channel.EMAIL: "email address", Channel.SMS: "phone number"}.get(channel, "address")
        raise ProviderError(
            f"the contact has no {what} on {channel.value} to send to",
            retryable=False,
            provider_code="no_recipient",
        )
    template = None
    if message["message_type"] == MessageType.TEMPLATE and isinstance(data.get("template"), dict):
        spec = data["template"]
        template = Template(
            name=str(spec["name"]),
            language=str(spec.get("language") or "en_US"),
            components=list(spec.get("components") or []),
        )
    in_reply_to, references = None, []
    if channel == Channel.EMAIL and job.last_inbound:
        last = job.last_inbound["channel_data"] or {}
        in_reply_to = last.get("message_id") or job.last_inbound["external_message_id"]
        references = [str(r) for r in last.get("references") or []]
    attachments = [
        Attachment(
            url=a.get("url"),
            content_type=a.get("content_type"),
            filename=a.get("filename"),
            size=a.get("size"),
        )
        for a in message["attachments"] or []
        if isinstance(a, dict)
    ]
    return Outbound(
        to_address=to,
        idempotency_key=str(message["id"]),
        content=message["content"] or "",
        content_html=message["content_html"],
        subject=data.get("subject") or job.conversation["title"],
        attachments=attachments,
        template=template,
        in_reply_to=in_reply_to,
        references=references,
        cc=[str(a) for a in data.get("cc") or []],
        reply_to_external_id=data.get("reply_to_external_id"),
    )


class Deliverer:
    """Claims due deliveries and sends them; ``run_once`` is one round."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        client: httpx.Client,
        *,
        load_inbox: InboxLoader | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.db = db
        self.settings = settings
        self.client = client
        self.load_inbox = load_inbox or inbox_loader(settings)
        self.rng = rng
        self.lease = timedelta(seconds=settings.delivery_lease_seconds)
        self._pool = ThreadPoolExecutor(
            settings.delivery_concurrency, thread_name_prefix="threadline-deliver"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def run_once(self) -> int:
        """Claim and settle one round of deliveries; answers how many were claimed."""
        claims = deliveries.claim(
            self.db, limit=self.settings.delivery_concurrency, lease=self.lease
        )
        if len(claims) == 1:
            self.deliver(claims[0])
        elif claims:
            list(self._pool.map(self.deliver, claims))
        return len(claims)

    def deliver(self, c: Claim) -> None:
        """Settle one claim. An unexpected error leaves it claimed: when the lease runs out
        the next worker checks with the provider before sending, as after a crash."""
        try:
            self._deliver(c)
        except Exception as exc:
            log.error(
                "delivery_error",
                message_id=str(c.message_id),
                error_type=type(exc).__name__,
                exc_info=exc,
            )

    def _fail(self, c: Claim, code: str | None, error: str, **data: Any) -> None:
        deliveries.record_failed(self.db, c, error_code=code, error=error, data=data or None)
        log.warning("message_failed", message_id=str(c.message_id), code=code, attempts=c.attempts)

    def _deliver(self, c: Claim) -> None:
        job = deliveries.load_job(self.db, c)
        if job is None:
            return  # the message was erased; its delivery row went with it
        if c.inbox_id is None:
            self._fail(c, "no_inbox", "the conversation's inbox was deleted")
            return
        try:
            inbox = self.load_inbox(self.db, c.tenant_id, c.inbox_id)
            provider = registry.get(inbox.provider)
            outbound = build_outbound(job, inbox)
        except NotFound:
            self._fail(c, "no_inbox", "the conversation's inbox was deleted")
            return
        except UnknownProvider as exc:
            self._fail(c, "unknown_provider", exc.message)
            return
        except ProviderError as exc:
            self._fail(c, exc.provider_code, exc.message)
            return
        if c.interrupted and not self._settle_uncertain(c, provider.name, outbound, inbox):
            return
        try:
            result = provider.send(outbound, inbox, self.client)
        except ProviderError as exc:
            self._failed_send(c, exc)
            return
        deliveries.record_sent(
            self.db,
            c,
            status=result.status,
            external_message_id=result.external_message_id,
            provider=provider.name,
            data={"channel_data": result.channel_data} if result.channel_data else None,
        )
        log.info(
            "message_sent",
            message_id=str(c.message_id),
            provider=provider.name,
            status=str(result.status),
            attempts=c.attempts,
        )

    def _settle_uncertain(
        self, c: Claim, provider: str, outbound: Outbound, inbox: InboxConfig
    ) -> bool:
        """The last attempt may have reached the provider: ask it. Answers whether to send."""

        def known(ids: list[str]) -> set[str]:
            return deliveries.known_external_ids(self.db, c.tenant_id, c.inbox_id, ids)

        try:
            answer = lookup.check(provider, outbound, inbox, self.client, c.queued_at, known)
        except ProviderError as exc:
            if c.attempts >= self.settings.delivery_max_attempts:
                self._fail(c, "outcome_unknown", f"could not check with {provider}: {exc.message}")
            else:  # stays uncertain: the next claim asks again
                retry_at = utcnow() + backoff(c.attempts, self.settings.delivery_backoff_seconds)
                deliveries.record_retry(
                    self.db,
                    c,
                    retry_at=retry_at,
                    error_code=exc.provider_code,
                    error=f"could not check with {provider}: {exc.message}",
                    uncertain=True,
                )
            return False
        if answer.outcome is lookup.Outcome.FOUND:
            deliveries.record_sent(
                self.db,
                c,
                status=DeliveryStatus.SENT,
                external_message_id=answer.external_message_id,
                provider=provider,
                data={"found_by": answer.how},
            )
            log.info("message_found", message_id=str(c.message_id), provider=provider)
            return False
        if answer.outcome is lookup.Outcome.UNKNOWN:
            self._fail(
                c,
                "outcome_unknown",
                "an earlier attempt may have reached the provider and "
                f"{answer.how}; not sent again, to never send it twice",
            )
            return False
        return True

    def _failed_send(self, c: Claim, exc: ProviderError) -> None:
        code = exc.provider_code or (str(exc.status_code) if exc.status_code else None)
        if exc.retryable and c.attempts < self.settings.delivery_max_attempts:
            wait = backoff(c.attempts, self.settings.delivery_backoff_seconds, self.rng)
            deliveries.record_retry(
                self.db,
                c,
                retry_at=utcnow() + wait,
                error_code=code,
                error=exc.message,
                uncertain=uncertain(exc),
            )
            log.info(
                "message_retry",
                message_id=str(c.message_id),
                attempts=c.attempts,
                wait_seconds=round(wait.total_seconds(), 1),
            )
            return
        self._fail(c, code, exc.message, status_code=exc.status_code)


def client_for(settings: Settings) -> httpx.Client:
    """The worker's one HTTP client: pooled connections, the delivery timeout."""
    timeout = settings.delivery_timeout_seconds
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))


async def deliver_forever(db: Database, settings: Settings) -> None:
    """Send due deliveries until cancelled: at once after a round with work, every
    ``delivery_poll_seconds`` when idle."""
    client = client_for(settings)
    deliverer = Deliverer(db, settings, client)
    try:
        await poll_forever(
            deliverer.run_once, idle=settings.delivery_poll_seconds, failed="delivery_round_failed"
        )
    finally:
        deliverer.close()
        client.close()
