"""Outgoing webhooks: the loop that sends the tenant's events to its endpoints.

Each round (``WebhookSender.run_once``) first turns the events each endpoint has not read
into deliveries (``store/webhooks_out.fan_out``), then claims the due deliveries and POSTs
each one, signed per the Standard Webhooks spec (``standardwebhooks``): the headers
``webhook-id`` (the event id, the same on every retry, so a receiver can drop repeats),
``webhook-timestamp`` and ``webhook-signature`` (``v1,`` + HMAC-SHA256 of
``id.timestamp.body`` with the endpoint's secret).

The body is ``{"type", "timestamp", "data"}``: the event's own facts (ids, status) plus the
message, conversation or suggestion it is about, read at the attempt and shaped as the API
returns them (a row deleted since is null).

Outcomes: a 2xx is ``delivered``; a timeout, a connection error, a 429 or a 5xx is tried
again after ``webhook_backoff_seconds * 2**(attempt-1)`` (at most an hour), jittered to
50-100 %, until ``webhook_max_attempts``, then ``failed``; any other answer fails at once.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
from standardwebhooks import Webhook

from threadline.domain.errors import NotFound
from threadline.jobs.deliver import backoff
from threadline.jobs.poll import poll_forever
from threadline.logs import get_logger
from threadline.schemas.agents import SuggestionRead
from threadline.schemas.conversations import ConversationRead
from threadline.schemas.messages import MessageRead
from threadline.settings import Settings
from threadline.store import conversations, messages, suggestions, webhooks_out
from threadline.store.database import Database
from threadline.store.types import utcnow
from threadline.store.webhooks_out import DELIVERED, FAILED, PENDING, Claim

log = get_logger(__name__)

#: How old an event must be before it is read (see ``store/webhooks_out.py``).
SETTLE = timedelta(seconds=1)
#: Deliveries sent at once.
CONCURRENCY = 4
#: The most of a receiver's answer kept in the delivery log.
ERROR_CHARS = 500

USER_AGENT = "Threadline-Webhooks/1"


def _message(db: Database, tenant_id: uuid.UUID, message_id: str) -> dict[str, Any] | None:
    table = messages.messages_table
    q = messages.SELECT.where(table.c.tenant_id == tenant_id, table.c.id == uuid.UUID(message_id))
    with db.connect() as conn:
        row = conn.execute(q).mappings().first()
    return None if row is None else MessageRead.model_validate(dict(row)).model_dump(mode="json")


def payload(db: Database, c: Claim) -> dict[str, Any]:
    """The body sent for one delivery, read now."""
    data: dict[str, Any] = dict(c.event_data or {})
    if c.conversation_id is not None:
        data["conversation_id"] = str(c.conversation_id)
    try:
        if "message_id" in data:
            data["message"] = _message(db, c.tenant_id, str(data["message_id"]))
        if "suggestion_id" in data:
            row = suggestions.get(db, c.tenant_id, uuid.UUID(str(data["suggestion_id"])))
            data["suggestion"] = SuggestionRead.model_validate(row).model_dump(mode="json")
        if c.conversation_id is not None and c.event_type.startswith("conversation."):
            conv = conversations.get(db, c.tenant_id, c.conversation_id)
            data["conversation"] = ConversationRead.model_validate(conv).model_dump(mode="json")
    except NotFound:
        pass  # deleted since: the event's own facts still go out
    return {"type": c.event_type, "timestamp": c.event_created_at.isoformat(), "data": data}


def sign(secret: str, msg_id: str, when: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for ``body``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body),
    }


class WebhookSender:
    """Fans events out to deliveries and sends the due ones; ``run_once`` is one round."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        client: httpx.Client,
        *,
        settle: timedelta = SETTLE,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.db = db
        self.settings = settings
        self.client = client
        self.settle = settle
        self.rng = rng
        self.lease = timedelta(seconds=settings.webhook_timeout_seconds * 2 + 30)
        self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="threadline-webhooks")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def run_once(self) -> int:
        """One round; answers how many deliveries were made or sent."""
        made = webhooks_out.fan_out(self.db, settle=self.settle)
        claims = webhooks_out.claim(self.db, limit=CONCURRENCY * 4, lease=self.lease)
        list(self._pool.map(self.send, claims))
        return made + len(claims)

    def send(self, c: Claim) -> None:
        """One attempt. An unexpected error leaves the claim to run out and be retried."""
        try:
            self._send(c)
        except Exception as exc:
            log.error(
                "webhook_error", delivery_id=str(c.id), error_type=type(exc).__name__, exc_info=exc
            )

    def _send(self, c: Claim) -> None:
        body = json.dumps(payload(self.db, c), separators=(",", ":"), ensure_ascii=False)
        headers = sign(c.secret, str(c.event_id), utcnow(), body)
        headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
        try:
            answer = self.client.post(c.url, content=body.encode(), headers=headers)
        except httpx.TimeoutException:
            self._retry_or_fail(c, None, "timed out")
            return
        except httpx.TransportError as exc:
            self._retry_or_fail(c, None, f"could not connect: {type(exc).__name__}")
            return
        code = answer.status_code
        if 200 <= code < 300:
            webhooks_out.record(self.db, c, status=DELIVERED, status_code=code, error=None)
            log.info("webhook_delivered", delivery_id=str(c.id), attempts=c.attempts)
            return
        error = f"HTTP {code}: {answer.text[:ERROR_CHARS]}".rstrip(": ")
        if code >= 500 or code in (408, 429):
            self._retry_or_fail(c, code, error)
        else:
            webhooks_out.record(self.db, c, status=FAILED, status_code=code, error=error)
            log.warning("webhook_failed", delivery_id=str(c.id), status_code=code)

    def _retry_or_fail(self, c: Claim, code: int | None, error: str) -> None:
        if c.attempts >= self.settings.webhook_max_attempts:
            webhooks_out.record(self.db, c, status=FAILED, status_code=code, error=error)
            log.warning("webhook_failed", delivery_id=str(c.id), attempts=c.attempts)
            return
        wait = backoff(c.attempts, self.settings.webhook_backoff_seconds, self.rng)
        webhooks_out.record(
            self.db, c, status=PENDING, status_code=code, error=error, retry_at=utcnow() + wait
        )
        log.info(
            "webhook_retry",
            delivery_id=str(c.id),
            attempts=c.attempts,
            wait_seconds=round(wait.total_seconds(), 1),
        )


def client_for(settings: Settings) -> httpx.Client:
    """No redirects followed: an endpoint answers where it was registered."""
    timeout = settings.webhook_timeout_seconds
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), follow_redirects=False
    )


async def webhooks_forever(db: Database, settings: Settings) -> None:
    """Send the tenant events to their endpoints until cancelled: at once after a round with
    work, every ``delivery_poll_seconds`` when idle."""
    client = client_for(settings)
    sender = WebhookSender(db, settings, client)
    try:
        await poll_forever(
            sender.run_once, idle=settings.delivery_poll_seconds, failed="webhook_round_failed"
        )
    finally:
        sender.close()
        client.close()
