"""Where an inbound message belongs: its contact and its conversation.

``resolve`` runs in one write transaction, before the message is appended:

1. a message already stored under the same ``external_message_id`` in the inbox is a replay:
   its conversation is the answer and nothing is created;
2. the contact: the owner of the first identity that matches (phone, as channel ``sms``,
   whatever channel it came on; email case-folded; else the provider's own address, such as
   a Yelp lead), linked to the other identities the message carries; else a new contact
   with those identities. A Yelp masked number or email is an identity like any other;
3. the conversation, by channel:

   - threaded providers (a Yelp lead, a call) by ``external_conversation_id``;
   - email by thread: a conversation holding a message whose Message-ID the mail names in
     ``In-Reply-To``/``References``, else one whose thread root is among them, else (for a
     reply whose thread we never saw) the contact's open conversation on the inbox with the
     same subject;
   - SMS, WhatsApp and the rest: the contact's newest open conversation on the inbox unless
     it has been silent longer than ``idle``.

Races. Two first deliveries of the same message (a provider retrying while the first try is
still running) must not make two contacts or conversations. On SQLite every write of the
process takes one turn, so resolution is serial. On PostgreSQL the transaction takes an
advisory lock on (inbox, thread or sender) first, so two resolutions of the same thread or
sender run one after the other and the second finds what the first made. Identities are
unique per tenant: a contact created at the same moment by another inbox (the same phone
on SMS and WhatsApp) loses the insert, is removed, and the winner's contact is used.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from threadline.channels.base import Inbound
from threadline.domain.enums import Channel, ConversationStatus, EventType
from threadline.domain.ids import new_id
from threadline.store.database import Database
from threadline.store.models import (
    ActionLog,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationEvent,
    Message,
    MessageDelivery,
)
from threadline.store.types import utcnow

contacts = cast(sa.Table, Contact.__table__)
identities = cast(sa.Table, ContactIdentity.__table__)
conversations = cast(sa.Table, Conversation.__table__)
events = cast(sa.Table, ConversationEvent.__table__)
messages = cast(sa.Table, Message.__table__)
deliveries = cast(sa.Table, MessageDelivery.__table__)
actions = cast(sa.Table, ActionLog.__table__)

#: Channels whose conversations follow the provider's own thread id.
THREADED = frozenset({Channel.YELP, Channel.VOICE})
#: Longest external id a column holds; longer ones (odd Message-IDs) are shortened stably.
MAX_EXTERNAL_ID = 255
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|fw|fwd|wg|tr)\s*(\[\d+\])?\s*:\s*)+", re.I)


@dataclass(frozen=True)
class Target:
    """Where a message goes: its conversation and contact; ``replay`` when it is stored."""

    conversation_id: uuid.UUID
    contact_id: uuid.UUID | None
    replay: bool
    created_conversation: bool = False


def external_id(value: str | None) -> str | None:
    """``value`` as stored: at most 255 characters (a longer one keeps a prefix and a hash)."""
    if value is None or len(value) <= MAX_EXTERNAL_ID:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"{value[: MAX_EXTERNAL_ID - 33]}#{digest}"


def normalize_subject(subject: str | None) -> str:
    return _REPLY_PREFIX.sub("", subject or "").strip().casefold()


def resolve(
    db: Database,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    channel: Channel,
    inbound: Inbound,
    *,
    idle: timedelta,
) -> Target:
    """The conversation and contact of ``inbound``, created where there are none yet."""

    def work(conn: sa.Connection) -> Target:
        return _resolve(conn, tenant_id, inbox_id, channel, inbound, idle)

    for attempt in (1, 2):
        try:
            return db.run_write(work)
        except IntegrityError:  # another process took an identity first: find theirs
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _lock(conn: sa.Connection, *parts: object) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite: the write transaction already serialises every writer
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    conn.execute(
        sa.select(sa.func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True)))
    )


def _resolve(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    channel: Channel,
    inbound: Inbound,
    idle: timedelta,
) -> Target:
    _lock(conn, tenant_id, inbox_id, inbound.external_conversation_id or inbound.from_address)
    stored = conn.execute(
        sa.select(conversations.c.id, conversations.c.contact_id)
        .select_from(
            messages.join(
                conversations,
                sa.and_(
                    conversations.c.tenant_id == messages.c.tenant_id,
                    conversations.c.id == messages.c.conversation_id,
                ),
            )
        )
        .where(
            messages.c.tenant_id == tenant_id,
            messages.c.inbox_id == inbox_id,
            messages.c.external_message_id == external_id(inbound.external_message_id),
        )
    ).first()
    if stored is not None:
        return Target(stored.id, stored.contact_id, replay=True)
    now = utcnow()
    contact_id = _contact(conn, tenant_id, channel, inbound, now)
    conversation_id = _find_conversation(
        conn, tenant_id, inbox_id, channel, contact_id, inbound, idle, now
    )
    if conversation_id is not None:
        return Target(conversation_id, contact_id, replay=False)
    conversation_id = _create_conversation(
        conn, tenant_id, inbox_id, channel, contact_id, inbound, now
    )
    return Target(conversation_id, contact_id, replay=False, created_conversation=True)


# --- contacts -------------------------------------------------------------------------------


def identity_keys(channel: Channel, inbound: Inbound) -> list[tuple[Channel, str]]:
    """The identities a message carries, strongest first: phone, email, provider address."""
    keys: list[tuple[Channel, str]] = []
    if inbound.contact.phone:
        keys.append((Channel.SMS, inbound.contact.phone))
    if inbound.contact.email:
        keys.append((Channel.EMAIL, inbound.contact.email.casefold()))
    if not keys and inbound.from_address not in ("", "unknown"):
        keys.append((channel, inbound.from_address[:320]))
    return keys


def _insert_ignore(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


def _owners(
    conn: sa.Connection, tenant_id: uuid.UUID, keys: Sequence[tuple[Channel, str]]
) -> dict[tuple[Channel, str], uuid.UUID]:
    if not keys:
        return {}
    rows = conn.execute(
        sa.select(identities.c.channel, identities.c.address, identities.c.contact_id).where(
            identities.c.tenant_id == tenant_id,
            sa.tuple_(identities.c.channel, identities.c.address).in_(
                [(c.value, a) for c, a in keys]
            ),
        )
    )
    return {(Channel(r.channel), r.address): r.contact_id for r in rows}


def _identity_rows(
    tenant_id: uuid.UUID, contact_id: uuid.UUID, keys: Sequence[tuple[Channel, str]], now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "contact_id": contact_id,
            "channel": channel,
            "address": address,
            "created_at": now,
        }
        for channel, address in keys
    ]


def _contact(
    conn: sa.Connection, tenant_id: uuid.UUID, channel: Channel, inbound: Inbound, now: datetime
) -> uuid.UUID | None:
    keys = identity_keys(channel, inbound)
    owners = _owners(conn, tenant_id, keys)
    found = next((owners[k] for k in keys if k in owners), None)
    if found is not None:
        _insert_ignore(
            conn,
            identities,
            _identity_rows(tenant_id, found, [k for k in keys if k not in owners], now),
        )
        _fill_blanks(conn, tenant_id, found, inbound, now)
        return found
    new = new_id()
    conn.execute(
        contacts.insert(),
        {
            "id": new,
            "tenant_id": tenant_id,
            "name": (inbound.contact.name or None) and inbound.contact.name[:200],  # type: ignore[index]
            "phone": inbound.contact.phone,
            "email": inbound.contact.email.casefold() if inbound.contact.email else None,
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        },
    )
    if not keys:
        return new
    _insert_ignore(conn, identities, _identity_rows(tenant_id, new, keys, now))
    winner = _owners(conn, tenant_id, keys[:1]).get(keys[0], new)
    if winner != new:  # another transaction made this person a moment ago: use theirs
        conn.execute(
            contacts.delete().where(contacts.c.tenant_id == tenant_id, contacts.c.id == new)
        )
        return winner
    return new


def _fill_blanks(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    contact_id: uuid.UUID,
    inbound: Inbound,
    now: datetime,
) -> None:
    """Give a known contact the name, phone or email it lacks and this message carries."""
    values = {
        "name": inbound.contact.name[:200] if inbound.contact.name else None,
        "phone": inbound.contact.phone,
        "email": inbound.contact.email.casefold() if inbound.contact.email else None,
    }
    for column, value in values.items():
        if value:
            conn.execute(
                contacts.update()
                .where(
                    contacts.c.tenant_id == tenant_id,
                    contacts.c.id == contact_id,
                    contacts.c[column].is_(None),
                )
                .values({column: value, "updated_at": now})
            )


# --- conversations --------------------------------------------------------------------------


def _open_on_inbox(tenant_id: uuid.UUID, inbox_id: uuid.UUID) -> Any:
    return sa.select(conversations.c.id).where(
        conversations.c.tenant_id == tenant_id,
        conversations.c.inbox_id == inbox_id,
    )


def _find_conversation(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    channel: Channel,
    contact_id: uuid.UUID | None,
    inbound: Inbound,
    idle: timedelta,
    now: datetime,
) -> uuid.UUID | None:
    ext = external_id(inbound.external_conversation_id)
    if channel == Channel.EMAIL:
        return _email_thread(conn, tenant_id, inbox_id, contact_id, inbound)
    if channel in THREADED or (ext and channel not in (Channel.SMS, Channel.WHATSAPP)):
        if not ext:
            return None
        return conn.scalar(
            _open_on_inbox(tenant_id, inbox_id)
            .where(conversations.c.external_conversation_id == ext)
            .order_by(conversations.c.last_activity_at.desc())
            .limit(1)
        )
    if contact_id is None:
        return None
    # silence measured between messages (their own times), so a backfill threads as it was
    since = min(inbound.occurred_at, now) - idle
    last = sa.func.coalesce(conversations.c.last_message_at, conversations.c.created_at)
    return conn.scalar(
        _open_on_inbox(tenant_id, inbox_id)
        .where(
            conversations.c.contact_id == contact_id,
            conversations.c.status != ConversationStatus.ARCHIVED.value,
            last >= since,
        )
        .order_by(conversations.c.last_activity_at.desc())
        .limit(1)
    )


def _email_thread(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    contact_id: uuid.UUID | None,
    inbound: Inbound,
) -> uuid.UUID | None:
    data = inbound.channel_data
    named = [data.get("in_reply_to"), *(data.get("references") or [])]
    refs = [r for r in dict.fromkeys(external_id(str(n)) for n in named if n) if r]
    if refs:
        # a message of ours or theirs that the mail replies to
        by_message = conn.scalar(
            sa.select(messages.c.conversation_id)
            .where(
                messages.c.tenant_id == tenant_id,
                messages.c.inbox_id == inbox_id,
                messages.c.external_message_id.in_(refs),
            )
            .limit(1)
        )
        if by_message is not None:
            return by_message  # type: ignore[no-any-return]
        by_delivery = conn.scalar(
            sa.select(messages.c.conversation_id)
            .select_from(
                deliveries.join(
                    messages,
                    sa.and_(
                        messages.c.tenant_id == deliveries.c.tenant_id,
                        messages.c.id == deliveries.c.message_id,
                    ),
                )
            )
            .where(
                deliveries.c.tenant_id == tenant_id,
                deliveries.c.inbox_id == inbox_id,
                deliveries.c.external_message_id.in_(refs),
            )
            .limit(1)
        )
        if by_delivery is not None:
            return by_delivery  # type: ignore[no-any-return]
    roots = [r for r in dict.fromkeys([external_id(inbound.external_conversation_id), *refs]) if r]
    if roots:
        by_root = conn.scalar(
            _open_on_inbox(tenant_id, inbox_id)
            .where(conversations.c.external_conversation_id.in_(roots))
            .order_by(conversations.c.last_activity_at.desc())
            .limit(1)
        )
        if by_root is not None:
            return by_root  # type: ignore[no-any-return]
    is_reply = bool(refs) or bool(_REPLY_PREFIX.match(inbound.subject or ""))
    subject = normalize_subject(inbound.subject)
    if not (is_reply and subject and contact_id is not None):
        return None
    # The last resort: the reply lost its headers; the contact's open thread on this subject.
    candidates = conn.execute(
        sa.select(conversations.c.id, conversations.c.title)
        .where(
            conversations.c.tenant_id == tenant_id,
            conversations.c.contact_id == contact_id,
            conversations.c.inbox_id == inbox_id,
            conversations.c.status != ConversationStatus.ARCHIVED.value,
        )
        .order_by(conversations.c.last_activity_at.desc())
        .limit(50)
    )
    for row in candidates:
        if normalize_subject(row.title) == subject:
            return row.id  # type: ignore[no-any-return]
    return None


def _create_conversation(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    channel: Channel,
    contact_id: uuid.UUID | None,
    inbound: Inbound,
    now: datetime,
) -> uuid.UUID:
    conversation_id = new_id()
    title = inbound.subject[:500] if inbound.subject else None
    conn.execute(
        conversations.insert(),
        {
            "id": conversation_id,
            "tenant_id": tenant_id,
            "contact_id": contact_id,
            "inbox_id": inbox_id,
            "channel": channel,
            "status": ConversationStatus.ACTIVE,
            "title": title,
            "external_conversation_id": external_id(inbound.external_conversation_id),
            "message_count": 0,
            "last_seq": 0,
            "last_activity_at": now,
            "metadata": {},
            "created_at": now,
            "updated_at": now,
        },
    )
    conn.execute(
        events.insert(),
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "conversation_id": conversation_id,
            "type": EventType.CREATED,
            "data": {"source": "inbound", "channel": channel.value},
            "created_at": now,
        },
    )
    return conversation_id


# --- actions --------------------------------------------------------------------------------


def action_rows(
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    inbound: Inbound,
) -> list[dict[str, Any]]:
    """The functions a voice agent called during the call, as action log rows."""
    now = utcnow()
    return [
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "conversation_id": conversation_id,
            "message_id": message_id,
            "agent_id": None,
            "action_name": a.name[:200],
            "action_type": "function_call",
            "parameters": {
                "arguments": a.arguments,
                "call_id": a.call_id,
                "at_seconds": a.at_seconds,
            },
            "result": {"value": a.result} if a.result is not None else None,
            "error": a.error,
            "duration_ms": None,
            "created_at": now,
        }
        for a in inbound.actions
    ]


def write_actions(
    tenant_id: uuid.UUID, inbound: Inbound
) -> Callable[[sa.Connection, list[dict[str, Any]]], None]:
    """An ``Ingest.append`` ``extra`` that writes ``inbound``'s function calls as action
    log rows of its (new) message, in the append's transaction."""

    def write(conn: sa.Connection, new: list[dict[str, Any]]) -> None:
        (message,) = new
        rows = action_rows(tenant_id, message["conversation_id"], message["id"], inbound)
        if rows:
            conn.execute(actions.insert(), rows)

    return write
