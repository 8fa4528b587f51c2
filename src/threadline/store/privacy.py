"""Privacy: everything about one person, their erasure, and retention of idle conversations.

- ``export_contact``: the contact, identities, and every conversation of theirs with its
  messages (delivery, model and moderation fields included, each message's delivery
  callbacks), conversation events, suggestions, actions, summaries and model calls, plus the
  tenant log's events about those conversations.
- ``erase_contact``: in one write transaction, the bodies of the contact's messages
  (content, HTML, tool-call arguments, attachments, channel data, metadata, and the name of
  their own messages) are cleared; so are the prompts, drafts, summaries, action parameters
  and results and provider payloads that quoted them, the conversations' titles, summaries
  and metadata, and the contact's name, phone, email and attributes. Identities and vectors
  are deleted; the keyword index follows the cleared content (SQLite's FTS triggers, with
  FTS5 secure-delete; PostgreSQL's GIN index follows its rows). Conversations and message
  rows stay, bodiless, so counts, seqs, delivery states and analytics remain true. One
  ``contact.erased`` event records it, with ids and counts only.

  Attachment files Threadline stored itself (an email's attachments, ``store/attachments.py``:
  one file per content, named by its SHA-256, shared by every message that carried the same
  bytes) are removed once the erase has committed, given the ``Files`` they live in: each
  file the erased messages referred to that no remaining message of any tenant refers to.
  "Refers to" is a ``LIKE '%<sha256>%'`` on the text of ``messages.attachments`` (JSON on
  SQLite, JSONB cast to text on PostgreSQL): a 64-hex digest appears in that text only as
  the hash of an attachment, and the scan runs once per file, on erase and retention only. Other
  attachments are the providers' URLs in the message's JSON: clearing ``attachments``
  removes every reference Threadline holds to them. A message storing the same bytes in
  the very instant its file is removed keeps its metadata without the file.

  On SQLite the connection runs ``PRAGMA secure_delete=ON`` (freed space is zeroed) and the
  erase ends with ``PRAGMA wal_checkpoint(TRUNCATE)``: the old page images leave the WAL and
  the erased text is in no database file. On PostgreSQL the old row versions stay in the
  table files until VACUUM reclaims them (autovacuum does, in time); run ``VACUUM`` on
  ``messages`` (and the tables above) for the bytes to go at once.
- ``apply_retention``: per tenant (``Settings.retention_for``), conversations with no
  activity for N days are archived (with their ``status_changed`` events, reason
  ``retention``) or deleted (messages first, a batch per write), ``batch`` conversations at
  a time. Deleting removes attachment files as erasing does (``forget_files``, in the
  ``Files`` of ``Settings``): after each batch of conversations is gone, each file their
  messages referred to that no remaining message of any tenant refers to. The files are
  read before the delete: a message with an attachment appended to an idle conversation
  in between leaves its file behind (never the reverse: a file is removed only once no
  message refers to it).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

# threadline.search and store.search import each other: the package must load first
import threadline.search  # noqa: F401
from threadline.domain.enums import ConversationStatus, EventType
from threadline.domain.errors import NotFound
from threadline.domain.ids import new_id
from threadline.settings import Settings
from threadline.store import contacts, search, serial
from threadline.store import events as tenant_events
from threadline.store import messages as message_store
from threadline.store.attachments import Files
from threadline.store.conversations import status_change_data, tenant_event_types
from threadline.store.database import Database
from threadline.store.models import (
    ActionLog,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationEvent,
    Event,
    Message,
    MessageStatusEvent,
    ModelCall,
    Suggestion,
    Summary,
    Tenant,
)
from threadline.store.types import utcnow

contacts_t = cast(sa.Table, Contact.__table__)
identities_t = cast(sa.Table, ContactIdentity.__table__)
conversations_t = cast(sa.Table, Conversation.__table__)
messages_t = cast(sa.Table, Message.__table__)
status_events_t = cast(sa.Table, MessageStatusEvent.__table__)
conversation_events_t = cast(sa.Table, ConversationEvent.__table__)
events_t = cast(sa.Table, Event.__table__)
suggestions_t = cast(sa.Table, Suggestion.__table__)
actions_t = cast(sa.Table, ActionLog.__table__)
summaries_t = cast(sa.Table, Summary.__table__)
model_calls_t = cast(sa.Table, ModelCall.__table__)
tenants_t = cast(sa.Table, Tenant.__table__)

CONTACT_ERASED = "contact.erased"
#: Conversation events whose data may quote the person (the others hold statuses and ids).
_EVENTS_WITH_TEXT = (
    EventType.INTENT_DETECTED,
    EventType.FUNCTION_CALLED,
    EventType.ESCALATION_REQUESTED,
    EventType.ERROR,
)


def _contact_row(conn: sa.Connection, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> Any:
    query = sa.select(contacts_t).where(
        contacts_t.c.tenant_id == tenant_id, contacts_t.c.id == contact_id
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound("contact not found", contact_id=str(contact_id))
    return row


def _their_conversations(tenant_id: uuid.UUID, contact_id: uuid.UUID) -> sa.Select[Any]:
    return sa.select(conversations_t.c.id).where(
        conversations_t.c.tenant_id == tenant_id, conversations_t.c.contact_id == contact_id
    )


def _their_messages(tenant_id: uuid.UUID, conversations: sa.Select[Any]) -> sa.Select[Any]:
    return sa.select(messages_t.c.id).where(
        messages_t.c.tenant_id == tenant_id, messages_t.c.conversation_id.in_(conversations)
    )


def _rows(
    conn: sa.Connection, table: sa.Table, tenant_id: uuid.UUID, conversations: sa.Select[Any]
) -> dict[Any, list[dict[str, Any]]]:
    """The table's rows of these conversations, grouped by conversation, oldest first."""
    query = (
        sa.select(table)
        .where(table.c.tenant_id == tenant_id, table.c.conversation_id.in_(conversations))
        .order_by(table.c.created_at, table.c.id)
    )
    grouped: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in conn.execute(query).mappings():
        grouped[row["conversation_id"]].append(serial.encode(row, skip=("tenant_id",)))
    return grouped


def export_contact(db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> dict[str, Any]:
    """Everything stored about the contact, as plain JSON values (see the module docstring)."""
    with db.connect() as conn:
        contact = serial.encode(_contact_row(conn, tenant_id, contact_id), skip=("tenant_id",))
        theirs = _their_conversations(tenant_id, contact_id)
        identities = [
            serial.encode(r, skip=("tenant_id",))
            for r in conn.execute(
                sa.select(identities_t)
                .where(
                    identities_t.c.tenant_id == tenant_id,
                    identities_t.c.contact_id == contact_id,
                )
                .order_by(identities_t.c.created_at, identities_t.c.id)
            ).mappings()
        ]
        conversations = [
            serial.encode(r, skip=("tenant_id",))
            for r in conn.execute(
                sa.select(conversations_t)
                .where(conversations_t.c.id.in_(theirs))
                .order_by(conversations_t.c.created_at, conversations_t.c.id)
            ).mappings()
        ]
        callbacks: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for r in conn.execute(
            sa.select(status_events_t)
            .where(
                status_events_t.c.tenant_id == tenant_id,
                status_events_t.c.message_id.in_(_their_messages(tenant_id, theirs)),
            )
            .order_by(status_events_t.c.occurred_at, status_events_t.c.id)
        ).mappings():
            callbacks[r["message_id"]].append(serial.encode(r, skip=("tenant_id",)))
        messages: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        query = message_store.SELECT.where(
            messages_t.c.tenant_id == tenant_id, messages_t.c.conversation_id.in_(theirs)
        ).order_by(messages_t.c.conversation_id, messages_t.c.seq)
        for r in conn.execute(query).mappings():
            message = serial.encode(r, skip=("tenant_id",))
            message["status_events"] = callbacks.get(r["id"], [])
            messages[r["conversation_id"]].append(message)
        related = {
            "events": _rows(conn, conversation_events_t, tenant_id, theirs),
            "suggestions": _rows(conn, suggestions_t, tenant_id, theirs),
            "actions": _rows(conn, actions_t, tenant_id, theirs),
            "summaries": _rows(conn, summaries_t, tenant_id, theirs),
            "model_calls": _rows(conn, model_calls_t, tenant_id, theirs),
        }
        log = [
            serial.encode(r, skip=("tenant_id",))
            for r in conn.execute(
                sa.select(events_t)
                .where(events_t.c.tenant_id == tenant_id, events_t.c.conversation_id.in_(theirs))
                .order_by(events_t.c.id)
            ).mappings()
        ]
    for conversation in conversations:
        cid = uuid.UUID(conversation["id"])
        conversation["messages"] = messages.get(cid, [])
        for name, grouped in related.items():
            conversation[name] = grouped.get(cid, [])
    return {
        "exported_at": serial.value(utcnow()),
        "contact": contact,
        "identities": identities,
        "conversations": conversations,
        "events": log,
    }


@dataclass(frozen=True)
class Erased:
    contact_id: uuid.UUID
    conversations: int
    messages: int
    embeddings: int
    identities: int
    #: Attachment files removed (referred to by the erased messages and by no other).
    files: int = 0


def _strip_arguments(tool_calls: Any) -> Any:
    """Tool calls with their ids and function names, their arguments gone."""
    if not isinstance(tool_calls, list):
        return None
    out = []
    for call in tool_calls:
        if not isinstance(call, dict):
            continue
        kept = {k: v for k, v in call.items() if k in ("id", "type")}
        function = call.get("function")
        if isinstance(function, dict):
            kept["function"] = {"name": function.get("name"), "arguments": ""}
        out.append(kept)
    return out


def _update(table: sa.Table, tenant_id: uuid.UUID, where: sa.ColumnElement[bool]) -> sa.Update:
    return table.update().where(table.c.tenant_id == tenant_id, where)


def _stored_files(attachments: Any) -> set[str]:
    """The SHA-256 digests of the files a message's ``attachments`` JSON refers to."""
    found: set[str] = set()
    for item in attachments if isinstance(attachments, list) else ():
        if not isinstance(item, dict) or item.get("stored") is not True:
            continue
        digest = item.get("sha256")
        if isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest):
            found.add(digest)
    return found


def _files_of(conn: sa.Connection, tenant_id: uuid.UUID, conversations: Any) -> set[str]:
    """The attachment files (SHA-256 digests) the messages of these conversations (ids, or
    a select of ids) refer to."""
    digests: set[str] = set()
    for (attachments,) in conn.execute(
        sa.select(messages_t.c.attachments).where(
            messages_t.c.tenant_id == tenant_id,
            messages_t.c.conversation_id.in_(conversations),
            messages_t.c.attachments.is_not(None),
        )
    ):
        digests.update(_stored_files(attachments))
    return digests


def _still_used(conn: sa.Connection, digest: str) -> bool:
    """Whether any message (of any tenant: the files are shared) refers to the file."""
    text = sa.cast(messages_t.c.attachments, sa.Text)
    q = sa.select(messages_t.c.id).where(
        messages_t.c.attachments.is_not(None), text.like(f"%{digest}%")
    )
    return conn.execute(q.limit(1)).first() is not None


def forget_files(db: Database, files: Files, digests: set[str]) -> int:
    """Remove each of these attachment files that no message refers to; answers how many
    were removed."""
    removed = 0
    for digest in sorted(digests):
        with db.connect() as conn:
            used = _still_used(conn, digest)
        if not used and files.forget(digest):
            removed += 1
    return removed


def delete_contact(
    db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID, *, files: Files | None = None
) -> None:
    """Delete the contact and everything of theirs (``contacts.delete``); with ``files``,
    then the attachment files no remaining message of any tenant refers to."""
    digests: set[str] = set()
    if files is not None:
        with db.connect() as conn:
            digests = _files_of(conn, tenant_id, _their_conversations(tenant_id, contact_id))
    contacts.delete(db, tenant_id, contact_id)
    if digests and files is not None:
        forget_files(db, files, digests)


def erase_contact(
    db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID, *, files: Files | None = None
) -> Erased:
    """Erase the contact's personal data (see the module docstring); 404 for an id the
    tenant does not have. Erasing twice is harmless. With ``files`` (where attachments are
    kept), the attachment files only the erased messages referred to are removed too."""
    digests: set[str] = set()

    def work(conn: sa.Connection) -> Erased:
        _contact_row(conn, tenant_id, contact_id)
        now = utcnow()
        theirs = _their_conversations(tenant_id, contact_id)
        their_messages = _their_messages(tenant_id, theirs)
        digests.update(_files_of(conn, tenant_id, theirs))
        vectors = search.forget_contact(conn, tenant_id, contact_id)
        calls = conn.execute(
            sa.select(messages_t.c.id, messages_t.c.tool_calls).where(
                messages_t.c.id.in_(their_messages), messages_t.c.tool_calls.is_not(None)
            )
        ).all()
        for message_id, tool_calls in calls:
            conn.execute(
                messages_t.update()
                .where(messages_t.c.id == message_id)
                .values(tool_calls=_strip_arguments(tool_calls))
            )
        erased_messages = conn.execute(
            _update(messages_t, tenant_id, messages_t.c.conversation_id.in_(theirs)).values(
                {
                    "content": None,
                    "content_html": None,
                    "attachments": None,
                    "channel_data": None,
                    "metadata": None,
                    "name": sa.case((messages_t.c.role == "user", None), else_=messages_t.c.name),
                }
            )
        ).rowcount
        conn.execute(
            _update(model_calls_t, tenant_id, model_calls_t.c.conversation_id.in_(theirs)).values(
                prompt=None
            )
        )
        conn.execute(
            _update(suggestions_t, tenant_id, suggestions_t.c.conversation_id.in_(theirs)).values(
                content="", edited_content=None, feedback=None, context_used=None
            )
        )
        conn.execute(
            summaries_t.delete().where(
                summaries_t.c.tenant_id == tenant_id, summaries_t.c.conversation_id.in_(theirs)
            )
        )
        conn.execute(
            _update(actions_t, tenant_id, actions_t.c.conversation_id.in_(theirs)).values(
                parameters=None, result=None, error=None
            )
        )
        conn.execute(
            _update(
                status_events_t, tenant_id, status_events_t.c.message_id.in_(their_messages)
            ).values(provider_data=None, error=None)
        )
        conn.execute(
            _update(
                conversation_events_t,
                tenant_id,
                sa.and_(
                    conversation_events_t.c.conversation_id.in_(theirs),
                    conversation_events_t.c.type.in_([t.value for t in _EVENTS_WITH_TEXT]),
                ),
            ).values(data=None)
        )
        erased_conversations = conn.execute(
            _update(conversations_t, tenant_id, conversations_t.c.contact_id == contact_id).values(
                {"title": None, "summary": None, "metadata": {}, "updated_at": now}
            )
        ).rowcount
        identities = conn.execute(
            identities_t.delete().where(
                identities_t.c.tenant_id == tenant_id, identities_t.c.contact_id == contact_id
            )
        ).rowcount
        conn.execute(
            _update(contacts_t, tenant_id, contacts_t.c.id == contact_id).values(
                name=None,
                phone=None,
                email=None,
                attributes={"erased_at": serial.value(now)},
                updated_at=now,
            )
        )
        erased = Erased(
            contact_id, max(erased_conversations, 0), max(erased_messages, 0), vectors, identities
        )
        tenant_events.record(
            conn,
            tenant_id,
            CONTACT_ERASED,
            data={
                "contact_id": str(contact_id),
                "conversations": erased.conversations,
                "messages": erased.messages,
            },
        )
        return erased

    with db.transaction() as conn:
        result = work(conn)
    checkpoint(db)
    if files is not None and digests:
        result = dataclasses.replace(result, files=forget_files(db, files, digests))
    return result


def checkpoint(db: Database, attempts: int = 20) -> bool:
    """On SQLite, move the WAL into the database file and truncate it, so that old page
    images (erased text among them) leave every file; answers whether it completed. A no-op
    (True) on PostgreSQL."""
    if db.dialect != "sqlite":
        return True
    import time

    raw = db.engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        for _ in range(attempts):
            busy = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return True
            time.sleep(0.05)  # a reader holds an old snapshot: wait for it to finish
        return False
    finally:
        raw.close()


@dataclass(frozen=True)
class Retained:
    archived: int = 0
    deleted: int = 0
    #: Attachment files removed (referred to by deleted messages and by no other).
    files: int = 0


def apply_retention(
    db: Database, settings: Settings, *, now: datetime | None = None, batch: int = 500
) -> Retained:
    """Archive or delete each tenant's conversations idle past its retention, ``batch`` at a
    time (each batch its own write), removing the attachment files only deleted messages
    referred to; answers how many."""
    now = now or utcnow()
    files = Files.from_settings(settings)
    with db.connect() as conn:
        tenant_rows = conn.execute(sa.select(tenants_t.c.id, tenants_t.c.slug)).all()
    archived = deleted = removed = 0
    for tenant_id, slug in tenant_rows:
        rule = settings.retention_for(slug)
        if rule.days is None:
            continue
        cutoff = now - timedelta(days=rule.days)
        if rule.action == "archive":
            archived += _archive_idle(db, tenant_id, cutoff, now, batch)
        else:
            gone, forgotten = _delete_idle(db, tenant_id, cutoff, batch, files)
            deleted += gone
            removed += forgotten
    return Retained(archived=archived, deleted=deleted, files=removed)


def _idle(tenant_id: uuid.UUID, cutoff: datetime, batch: int) -> sa.Select[Any]:
    return (
        sa.select(conversations_t.c.id, conversations_t.c.status)
        .where(
            conversations_t.c.tenant_id == tenant_id,
            conversations_t.c.last_activity_at < cutoff,
        )
        .order_by(conversations_t.c.last_activity_at, conversations_t.c.id)
        .limit(batch)
    )


def _archive_idle(
    db: Database, tenant_id: uuid.UUID, cutoff: datetime, now: datetime, batch: int
) -> int:
    query = _idle(tenant_id, cutoff, batch).where(
        conversations_t.c.status != ConversationStatus.ARCHIVED.value
    )

    def work(conn: sa.Connection) -> int:
        found = conn.execute(query).all()
        if not found:
            return 0
        conn.execute(
            conversations_t.update()
            .where(
                conversations_t.c.tenant_id == tenant_id,
                conversations_t.c.id.in_([cid for cid, _ in found]),
            )
            .values(status=ConversationStatus.ARCHIVED, updated_at=now)
        )
        changes, log = [], []
        for cid, old in found:
            data = status_change_data(
                ConversationStatus(old), ConversationStatus.ARCHIVED, "retention"
            )
            changes.append(
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "conversation_id": cid,
                    "type": EventType.STATUS_CHANGED,
                    "data": data,
                    "created_at": now,
                }
            )
            log += [
                tenant_events.row(tenant_id, t, conversation_id=cid, data=data, now=now)
                for t in tenant_event_types(ConversationStatus.ARCHIVED)
            ]
        conn.execute(conversation_events_t.insert(), changes)
        tenant_events.record_many(conn, log)
        return len(found)

    total = 0
    while True:
        done = db.run_write(work)
        total += done
        if done < batch:
            return total


def _delete_idle(
    db: Database, tenant_id: uuid.UUID, cutoff: datetime, batch: int, files: Files
) -> tuple[int, int]:
    """Delete the tenant's conversations idle since before ``cutoff``, then the attachment
    files nothing refers to any more; answers how many conversations and files went."""
    total = removed = 0
    while True:
        with db.connect() as conn:
            found = [cid for cid, _ in conn.execute(_idle(tenant_id, cutoff, batch))]
            digests = _files_of(conn, tenant_id, found) if found else set()
        for cid in found:
            delete_conversation(db, tenant_id, cid, batch=batch)
        total += len(found)
        if digests:
            removed += forget_files(db, files, digests)
        if len(found) < batch:
            return total, removed


def delete_conversation(
    db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID, *, batch: int = 500
) -> None:
    """Delete a conversation: its messages ``batch`` at a time (newest first, each batch a
    short write of its own), then the conversation, whose cascade removes the rest. Its
    attachment files stay: the caller removes them (``forget_files``) once it is gone."""
    in_conversation = sa.and_(
        messages_t.c.tenant_id == tenant_id, messages_t.c.conversation_id == conversation_id
    )
    db.delete_in_batches(messages_t, in_conversation, messages_t.c.seq.desc(), batch)
    db.run_write(
        lambda conn: conn.execute(
            conversations_t.delete().where(
                conversations_t.c.tenant_id == tenant_id, conversations_t.c.id == conversation_id
            )
        )
    )
