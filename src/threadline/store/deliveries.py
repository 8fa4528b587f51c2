"""The outbound queue: ``message_deliveries`` rows that a worker claims, sends and settles.

A delivery's life, one row per outbound message sent with ``"send": true``:

- ``queued``, ``next_attempt_at`` = now: written by ``prepare`` in the message's own
  transaction (``store/messages.py``), so a committed outbound message always has its job
  and a job never names an uncommitted message;
- ``pending``: claimed by a worker (``claim``), ``attempts`` + 1 and ``next_attempt_at``
  pushed out by the lease. The claim commits *before* the provider is called;
- then one of: ``sent`` (or what the provider answered) with its ``external_message_id``
  (``record_sent``); ``queued`` again with an exponential backoff for a retryable error
  (``record_retry``); ``failed`` with the provider's code and text (``record_failed``).

A worker that dies mid-send leaves the row ``pending``; once its lease runs out the next
claim hands it out again marked ``interrupted``, and the worker asks the provider what
happened instead of sending again blindly (``jobs/lookup.py``). Every record is fenced by
``attempts``: a worker whose lease was taken over cannot overwrite its successor's outcome.

PostgreSQL workers share the queue with ``SELECT ... FOR UPDATE SKIP LOCKED``; on SQLite a
claim is one write transaction. The queue index (``ix_message_deliveries_due``) is partial,
on exactly the predicate the claim queries use, so it holds only what is still to send.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from threadline.channels.whatsapp import window_open
from threadline.domain.enums import Channel, DeliveryStatus, Direction, MessageType
from threadline.domain.errors import InvalidInput, NotFound, WindowClosed
from threadline.domain.ids import new_id
from threadline.store import events as tenant_events
from threadline.store import statuses
from threadline.store.database import Database
from threadline.store.models import (
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    MessageDelivery,
    MessageStatusEvent,
)
from threadline.store.types import utcnow

deliveries = cast(sa.Table, MessageDelivery.__table__)
events = cast(sa.Table, MessageStatusEvent.__table__)
messages_table = cast(sa.Table, Message.__table__)
conversations = cast(sa.Table, Conversation.__table__)
contacts = cast(sa.Table, Contact.__table__)
identities = cast(sa.Table, ContactIdentity.__table__)

#: The queue index's own predicate, spelt the same so both backends use the partial index.
_DUE = sa.text("status IN ('pending', 'queued')")


# -- queueing (inside the append's transaction) ----------------------------------------


def prepare(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    conversation: dict[str, Any],
    new: Sequence[dict[str, Any]],
    now: datetime,
) -> None:
    """Check that ``new`` messages may be sent through the conversation's inbox and make
    each one's delivery row a job due now. Raises before anything is written."""
    if not new:
        return
    if conversation["inbox_id"] is None:
        raise InvalidInput(
            "the conversation has no inbox to send through: start it with an inbox_id",
            conversation_id=str(conversation["id"]),
        )
    for fields in new:
        if fields["direction"] != Direction.OUTBOUND:
            raise InvalidInput(
                "only outbound messages can be sent", direction=str(fields["direction"])
            )
    if conversation["channel"] == Channel.WHATSAPP:
        _check_whatsapp(conn, tenant_id, conversation["id"], new, now)
    for fields in new:
        fields.update(
            delivery_status=DeliveryStatus.QUEUED,
            delivery_error=None,
            sent_at=None,
            delivered_at=None,
            read_at=None,
            next_attempt_at=now,
        )


def _check_whatsapp(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    new: Sequence[dict[str, Any]],
    now: datetime,
) -> None:
    free_form = [f for f in new if f["message_type"] != MessageType.TEMPLATE]
    for fields in new:
        if fields["message_type"] == MessageType.TEMPLATE:
            template = (fields.get("channel_data") or {}).get("template")
            if not isinstance(template, dict) or not template.get("name"):
                raise InvalidInput(
                    "a template message needs channel_data.template with its name "
                    "(and language, components)"
                )
    if not free_form:
        return
    last_inbound = conn.execute(
        sa.select(messages_table.c.occurred_at)
        .where(
            messages_table.c.tenant_id == tenant_id,
            messages_table.c.conversation_id == conversation_id,
            messages_table.c.direction == Direction.INBOUND,
        )
        .order_by(messages_table.c.seq.desc())
        .limit(1)
    ).scalar()
    if not window_open(last_inbound, now):
        raise WindowClosed(
            "the WhatsApp 24-hour window is closed: the contact last wrote more than 24 hours "
            "ago (or never), so only a template message may be sent "
            '(message_type "template" with channel_data.template)',
            conversation_id=str(conversation_id),
            last_inbound_at=last_inbound.isoformat() if last_inbound else None,
        )


# -- the worker's side -----------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One delivery handed to a worker until ``lease_until``.

    ``interrupted``: the previous worker claimed it and never recorded an outcome (it was
    killed, or lost its database), so the provider may already have the message.
    """

    id: uuid.UUID
    tenant_id: uuid.UUID
    message_id: uuid.UUID
    inbox_id: uuid.UUID | None
    attempts: int
    interrupted: bool
    lease_until: datetime
    #: When the message was queued: no attempt to send it can be older.
    queued_at: datetime


_PEEK = (
    sa.select(deliveries.c.id)
    .where(_DUE, deliveries.c.next_attempt_at <= sa.bindparam("now"))
    .limit(1)
)
_CLAIMABLE = (
    sa.select(
        deliveries.c.id,
        deliveries.c.tenant_id,
        deliveries.c.message_id,
        deliveries.c.inbox_id,
        deliveries.c.attempts,
        deliveries.c.created_at,
        sa.type_coerce(deliveries.c.status, sa.String()).label("status"),
    )
    .where(_DUE, deliveries.c.next_attempt_at <= sa.bindparam("now"))
    .order_by(deliveries.c.next_attempt_at)
    .limit(sa.bindparam("n"))
)


def claim(
    db: Database, *, limit: int, lease: timedelta, now: datetime | None = None
) -> list[Claim]:
    """Take up to ``limit`` due deliveries for ``lease``, committed before this returns.

    An idle queue costs one read (no write transaction, no lock) per call.
    """
    now = now or utcnow()
    with db.connect() as conn:
        if conn.execute(_PEEK, {"now": now}).first() is None:
            return []
    until = now + lease

    def work(conn: sa.Connection) -> list[Claim]:
        q = _CLAIMABLE
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = conn.execute(q, {"now": now, "n": limit}).mappings().all()
        if not rows:
            return []
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_([r["id"] for r in rows]))
            .values(
                status=DeliveryStatus.PENDING,
                attempts=deliveries.c.attempts + 1,
                next_attempt_at=until,
                updated_at=now,
            )
        )
        return [
            Claim(
                id=r["id"],
                tenant_id=r["tenant_id"],
                message_id=r["message_id"],
                inbox_id=r["inbox_id"],
                attempts=r["attempts"] + 1,
                interrupted=r["status"] == DeliveryStatus.PENDING,
                lease_until=until,
                queued_at=r["created_at"],
            )
            for r in rows
        ]

    return db.run_write(work)


def _fenced(c: Claim) -> sa.ColumnElement[bool]:
    return sa.and_(
        deliveries.c.id == c.id,
        deliveries.c.attempts == c.attempts,
        deliveries.c.status == DeliveryStatus.PENDING,
    )


def _event(
    c: Claim,
    status: DeliveryStatus | None,
    now: datetime,
    *,
    external_message_id: str | None = None,
    provider_status: str | None = None,
    error_code: str | None = None,
    error: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "tenant_id": c.tenant_id,
        "message_id": c.message_id,
        "inbox_id": c.inbox_id,
        "external_message_id": external_message_id,
        "status": status,
        "provider_status": provider_status,
        "error_code": error_code,
        "error": error,
        "provider_data": {"attempt": c.attempts, **(data or {})},
        "occurred_at": now,
        "created_at": now,
    }


def record_sent(
    db: Database,
    c: Claim,
    *,
    status: DeliveryStatus,
    external_message_id: str | None,
    provider: str,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """The provider took the message: its status and id, a ``sent_at``, and an event.

    ``status`` ``queued`` is a pull-based provider's answer (the Zapier outbox): the row
    stays ``queued`` with no next attempt, for the outbox to hand out. Status callbacks
    that arrived for ``external_message_id`` before this (a fast provider calls back
    before its API answer reaches us) are attached to the message and applied in the
    same transaction (``statuses.adopt``). Answers whether the claim was still this
    worker's.
    """
    now = now or utcnow()
    values: dict[str, Any] = {
        "status": status,
        "external_message_id": external_message_id,
        "next_attempt_at": None,
        "error": None,
        "error_code": None,
        "updated_at": now,
    }
    if status != DeliveryStatus.QUEUED:
        values["sent_at"] = now

    def work(conn: sa.Connection) -> bool:
        done = conn.execute(deliveries.update().where(_fenced(c)).values(**values)).rowcount
        if done and status != DeliveryStatus.QUEUED:
            event = _event(
                c,
                status,
                now,
                external_message_id=external_message_id,
                provider_status="accepted",
                data={"provider": provider, **(data or {})},
            )
            conn.execute(events.insert(), event)
            tenant_events.record_status_updates(conn, c.tenant_id, [event])
        if done and external_message_id and c.inbox_id is not None:
            statuses.adopt(conn, c.tenant_id, c.inbox_id, external_message_id, c.message_id)
        return bool(done)

    return db.run_write(work)


def record_retry(
    db: Database,
    c: Claim,
    *,
    retry_at: datetime,
    error_code: str | None,
    error: str,
    uncertain: bool = False,
    now: datetime | None = None,
) -> bool:
    """A retryable failure: ``queued`` again until ``retry_at``, the error kept (and an
    event, so the message's events show every attempt).

    ``uncertain``: the request may have reached the provider (it timed out after being
    written, or the connection dropped mid-answer). The row then stays ``pending`` until
    ``retry_at``, so the next claim is ``interrupted`` and checks with the provider first.
    """
    now = now or utcnow()
    status = DeliveryStatus.PENDING if uncertain else DeliveryStatus.QUEUED

    def work(conn: sa.Connection) -> bool:
        done = conn.execute(
            deliveries.update()
            .where(_fenced(c))
            .values(
                status=status,
                next_attempt_at=retry_at,
                error=error,
                error_code=error_code,
                updated_at=now,
            )
        ).rowcount
        if done:
            event = _event(
                c,
                DeliveryStatus.QUEUED,
                now,
                provider_status="retrying",
                error_code=error_code,
                error=error,
                data={"retry_at": retry_at.isoformat(), "uncertain": uncertain},
            )
            conn.execute(events.insert(), event)
            tenant_events.record_status_updates(conn, c.tenant_id, [event])
        return bool(done)

    return db.run_write(work)


def record_failed(
    db: Database,
    c: Claim,
    *,
    error_code: str | None,
    error: str,
    provider_status: str = "failed",
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """A final failure, with the provider's code and text."""
    now = now or utcnow()

    def work(conn: sa.Connection) -> bool:
        done = conn.execute(
            deliveries.update()
            .where(_fenced(c))
            .values(
                status=DeliveryStatus.FAILED,
                next_attempt_at=None,
                error=error,
                error_code=error_code,
                updated_at=now,
            )
        ).rowcount
        if done:
            event = _event(
                c,
                DeliveryStatus.FAILED,
                now,
                provider_status=provider_status,
                error_code=error_code,
                error=error,
                data=data,
            )
            conn.execute(events.insert(), event)
            tenant_events.record_status_updates(conn, c.tenant_id, [event])
        return bool(done)

    return db.run_write(work)


# -- what the worker reads to build the provider call ----------------------------------


@dataclass(frozen=True)
class Job:
    """A claimed delivery's message with what addressing it needs."""

    message: dict[str, Any]
    conversation: dict[str, Any]
    contact: dict[str, Any] | None
    #: The contact's addresses on the conversation's channel, oldest first.
    addresses: list[str]
    #: The newest inbound message of the conversation (email threading, WhatsApp context).
    last_inbound: dict[str, Any] | None


def load_job(db: Database, c: Claim) -> Job | None:
    """The message behind a claim, or ``None`` if it is gone (erased with its contact)."""
    m, conv = messages_table.c, conversations.c
    with db.connect() as conn:
        row = (
            conn.execute(
                sa.select(
                    m.id,
                    m.conversation_id,
                    sa.type_coerce(m.message_type, sa.String()).label("message_type"),
                    m.content,
                    m.content_html,
                    m.attachments,
                    m.channel_data,
                    m.external_message_id,
                ).where(m.tenant_id == c.tenant_id, m.id == c.message_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        message = dict(row)
        conversation = dict(
            conn.execute(
                sa.select(
                    conv.id,
                    conv.contact_id,
                    conv.inbox_id,
                    sa.type_coerce(conv.channel, sa.String()).label("channel"),
                    conv.title,
                    conv.external_conversation_id,
                ).where(conv.tenant_id == c.tenant_id, conv.id == message["conversation_id"])
            )
            .mappings()
            .one()
        )
        contact, addresses = None, []
        if conversation["contact_id"] is not None:
            found = (
                conn.execute(
                    sa.select(contacts.c.name, contacts.c.phone, contacts.c.email).where(
                        contacts.c.tenant_id == c.tenant_id,
                        contacts.c.id == conversation["contact_id"],
                    )
                )
                .mappings()
                .first()
            )
            contact = dict(found) if found else None
            addresses = list(
                conn.scalars(
                    sa.select(identities.c.address)
                    .where(
                        identities.c.tenant_id == c.tenant_id,
                        identities.c.contact_id == conversation["contact_id"],
                        identities.c.channel == conversation["channel"],
                    )
                    .order_by(identities.c.created_at)
                )
            )
        inbound = (
            conn.execute(
                sa.select(m.external_message_id, m.channel_data, m.occurred_at)
                .where(
                    m.tenant_id == c.tenant_id,
                    m.conversation_id == conversation["id"],
                    m.direction == Direction.INBOUND,
                )
                .order_by(m.seq.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return Job(message, conversation, contact, addresses, dict(inbound) if inbound else None)


def known_external_ids(
    db: Database, tenant_id: uuid.UUID, inbox_id: uuid.UUID | None, candidates: Sequence[str]
) -> set[str]:
    """Which of the provider's message ids are already some delivery's (a status check must
    not adopt another message's send)."""
    if not candidates:
        return set()
    with db.connect() as conn:
        return set(
            conn.scalars(
                sa.select(deliveries.c.external_message_id).where(
                    deliveries.c.tenant_id == tenant_id,
                    deliveries.c.inbox_id == inbox_id,
                    deliveries.c.external_message_id.in_(list(candidates)),
                )
            )
        )


# -- reading ---------------------------------------------------------------------------


_EVENT_FIELDS = (
    events.c.id,
    events.c.message_id,
    sa.type_coerce(events.c.status, sa.String()).label("status"),
    events.c.provider_status,
    events.c.error_code,
    events.c.error,
    events.c.external_message_id,
    events.c.provider_data,
    events.c.occurred_at,
    events.c.created_at,
)


def events_for(db: Database, tenant_id: uuid.UUID, message_id: uuid.UUID) -> list[dict[str, Any]]:
    """A message's delivery status events in the order they happened; ``NotFound`` for a
    message that is not the tenant's."""
    with db.connect() as conn:
        exists = conn.execute(
            sa.select(messages_table.c.id).where(
                messages_table.c.tenant_id == tenant_id, messages_table.c.id == message_id
            )
        ).first()
        if exists is None:
            raise NotFound("message not found", message_id=str(message_id))
        rows = conn.execute(
            sa.select(*_EVENT_FIELDS)
            .where(events.c.tenant_id == tenant_id, events.c.message_id == message_id)
            .order_by(events.c.occurred_at, events.c.created_at, events.c.id)
        ).mappings()
        return [dict(r) for r in rows]


def get(db: Database, tenant_id: uuid.UUID, message_id: uuid.UUID) -> dict[str, Any] | None:
    """A message's delivery row as a dict (tests, the CLI)."""
    with db.connect() as conn:
        row = (
            conn.execute(
                sa.select(deliveries).where(
                    deliveries.c.tenant_id == tenant_id, deliveries.c.message_id == message_id
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None
