"""Everything a channel delivers comes in here: webhooks and the SMTP receiver.

For one webhook ``/webhooks/{provider}/{inbox_id}/{name}[/{secret}]``:

1. the inbox: an active inbox of that provider (else ``NotFound``, 404) serving a webhook
   of that name (a URL-secret webhook needs its secret segment, others must not have one);
2. ``provider.verify`` (``SignatureInvalid``, 403), then ``provider.parse``
   (``MalformedPayload``, 400);
3. each ``Inbound``: its contact and conversation (``store/inbound.py``), then
   ``Ingest.append`` (limits, idempotency by ``external_message_id`` in the inbox); a
   voice call's function calls become action log rows in the same transaction; email
   attachment bytes are kept as files beforehand (``store/attachments.py``);
4. each ``StatusUpdate``: its delivery moves and the callback is kept
   (``store/statuses.py``);
5. the provider's expected answer (``result.response``).

Everything in 3 and 4 is committed before the answer. What is slow (an AI reply, media
download, scoring) runs after it: the route calls ``after`` with what was stored, which
hands it to every listener in ``listeners`` (none by default).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from threadline.channels import registry, zapier_yelp
from threadline.channels.base import (
    Inbound,
    Provider,
    WebhookRequest,
    WebhookResponse,
)
from threadline.domain.enums import Direction, Role, SenderType
from threadline.domain.errors import NotFound, SignatureInvalid, UnknownProvider
from threadline.ingest import Ingest
from threadline.logs import get_logger
from threadline.settings import Settings
from threadline.store import inbound as resolution
from threadline.store import inboxes, outbox, statuses
from threadline.store.attachments import Files
from threadline.store.database import Database
from threadline.store.inboxes import Located

log = get_logger(__name__)


@dataclass(frozen=True)
class StoredMessage:
    """One inbound message as stored (``created`` False for a replay)."""

    tenant_id: uuid.UUID
    inbox_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    contact_id: uuid.UUID | None
    created: bool


@dataclass
class Received:
    """What one request stored: for the work that runs after the answer."""

    messages: list[StoredMessage] = field(default_factory=list)
    statuses: list[statuses.Applied] = field(default_factory=list)

    @property
    def new_messages(self) -> list[StoredMessage]:
        return [m for m in self.messages if m.created]


Listener = Callable[[Received], None]


def message_fields(
    inbound: Inbound, attachments: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An ``Inbound`` as the fields ``Ingest.append`` takes; ``attachments`` is the
    attachments' metadata once their files are kept (``store/attachments.py``)."""
    if attachments is None:
        attachments = [a.to_dict() for a in inbound.attachments]
    outbound = inbound.direction == Direction.OUTBOUND
    channel_data = dict(inbound.channel_data)
    if inbound.subject:
        channel_data.setdefault("subject", inbound.subject)
    if inbound.contact.name and not outbound:
        channel_data.setdefault("sender_name", inbound.contact.name)
    return {
        "role": Role.ASSISTANT if outbound else Role.USER,
        "direction": inbound.direction,
        # a reply the business typed on the provider's own site (Yelp) was written by a person
        "sender_type": SenderType.HUMAN if outbound else SenderType.CONTACT,
        "message_type": inbound.message_type,
        "content": inbound.content,
        "content_html": inbound.content_html,
        "external_message_id": resolution.external_id(inbound.external_message_id),
        "external_conversation_id": resolution.external_id(inbound.external_conversation_id),
        "attachments": attachments or None,
        "channel_data": channel_data or None,
        "occurred_at": inbound.occurred_at,
    }


class Receiver:
    """Stores what providers deliver (see the module docstring)."""

    def __init__(self, db: Database, settings: Settings, ingest: Ingest) -> None:
        self.db = db
        self.settings = settings
        self.ingest = ingest
        self.files = Files.from_settings(settings)
        self.listeners: list[Listener] = []

    # --- webhooks ---------------------------------------------------------------------------

    def locate(
        self, provider_name: str, inbox_id: str, name: str, secret: str | None
    ) -> tuple[Provider, Located]:
        try:
            provider = registry.get(provider_name)
        except UnknownProvider:
            raise NotFound("no such webhook", provider=provider_name[:64]) from None
        try:
            ident = uuid.UUID(inbox_id)
        except ValueError:
            raise NotFound("inbox not found", inbox_id=inbox_id[:64]) from None
        located = inboxes.for_webhook(self.db, self.settings, provider.name, ident)
        if name not in provider.webhook_names:
            raise NotFound("no such webhook", webhook=name[:64])
        if name in provider.url_secret_webhooks:
            if secret is None:
                raise SignatureInvalid(
                    "this webhook's URL carries a secret", provider=provider.name
                )
        elif secret is not None:
            raise NotFound("no such webhook", webhook=name[:64])
        return provider, located

    def webhook(
        self,
        provider_name: str,
        inbox_id: str,
        name: str,
        secret: str | None,
        request: WebhookRequest,
    ) -> tuple[WebhookResponse, Received]:
        """Verify, parse and store one webhook; the answer for the provider and what was
        stored (everything committed)."""
        provider, located = self.locate(provider_name, inbox_id, name, secret)
        provider.verify(name, request, located.config)
        if provider.name == zapier_yelp.ZapierYelp.name and name == "outbox":
            return self._outbox(located, request), Received()
        result = provider.parse(name, request, located.config)
        received = Received()
        for item in result.inbound:
            received.messages.append(self.store(located, item))
        received.statuses = statuses.apply(
            self.db, located.tenant_id, located.inbox_id, result.statuses, provider=provider.name
        )
        return result.response, received

    def _outbox(self, located: Located, request: WebhookRequest) -> WebhookResponse:
        ask = zapier_yelp.outbox_request(request)
        if ask.ack:
            n = outbox.ack(self.db, located.tenant_id, located.inbox_id, ask.ack)
            return _json({"acknowledged": n})
        items = outbox.claim(self.db, located.tenant_id, located.inbox_id, limit=ask.limit)
        body = [
            zapier_yelp.outbox_item(str(i["id"]), i["external_conversation_id"], i["content"] or "")
            for i in items
        ]
        return _json(body)

    # --- the common path (webhooks and the SMTP receiver) -----------------------------------

    def store(self, located: Located, item: Inbound) -> StoredMessage:
        """Resolve the contact and conversation of ``item`` and append it (idempotent).

        Attachment bytes (email) are written to disk first, outside the append's
        transaction (``store/attachments.py``)."""
        attachments = self.files.keep_all(item.attachments)
        idle = timedelta(hours=self.settings.conversation_idle_hours)
        target = resolution.resolve(
            self.db, located.tenant_id, located.inbox_id, located.channel, item, idle=idle
        )
        appended = self.ingest.append(
            located.tenant_id,
            target.conversation_id,
            [message_fields(item, attachments)],
            extra=resolution.write_actions(located.tenant_id, item) if item.actions else None,
        )
        message = appended.messages[0]
        stored = StoredMessage(
            tenant_id=located.tenant_id,
            inbox_id=located.inbox_id,
            conversation_id=message["conversation_id"],
            message_id=message["id"],
            contact_id=target.contact_id,
            created=appended.created,
        )
        return stored

    def after(self, received: Received) -> None:
        """Run the listeners (after the answer): a failing one is logged, the others run."""
        for listener in self.listeners:
            try:
                listener(received)
            except Exception as exc:
                log.error(
                    "after_receive_failed",
                    listener=getattr(listener, "__qualname__", repr(listener)),
                    error_type=type(exc).__name__,
                    exc_info=exc,
                )


def _json(data: Any) -> WebhookResponse:
    import json

    return WebhookResponse(200, json.dumps(data, default=str).encode(), "application/json")
