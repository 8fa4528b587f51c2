"""The schema: one typed SQLAlchemy model per table.

Every table carries ``tenant_id`` and every index leads with it, with three kinds of
exception:

- the global lookups that find the tenant in the first place (tenant slug, API key hash);
- foreign-key lookups: every foreign key has an index that leads with its own column, because
  the database deletes or nulls the rows that point at a deleted row with
  ``WHERE fk_column = ?``, which an index leading with ``tenant_id`` cannot serve. Without
  them, deleting one contact scans every message, suggestion and action log once per deleted
  row. Those of nullable, mostly empty columns are partial (``WHERE column IS NOT NULL``);
- cross-tenant maintenance and work queues, which by nature look at every tenant: the
  deliveries that are due (``ix_message_deliveries_due``), the agent jobs that are due
  (``ix_agent_jobs_due``), the outgoing webhooks that are due
  (``ix_webhook_deliveries_due``) and the idempotency keys old enough to prune
  (``ix_idempotency_keys_created_at``).

Messages are an append-only log of content and identity: what changes after a message is
stored lives beside it, one row per message (``message_deliveries``,
``message_moderation``), and model bookkeeping is one row per model call (``model_calls``).

Migrations in ``store/migrations`` create exactly this; ``threadline db check`` compares them.
Search adds what these models cannot describe (``store/search_schema.py``): SQLite's FTS5
table over ``messages.content`` with the triggers that keep it in step, and PostgreSQL's
full-text GIN and HNSW vector indexes; ``db check`` checks those by name.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from threadline.domain import enums
from threadline.domain.ids import new_id
from threadline.store.types import JSONType, UTCDateTime, enum_type, utcnow
from threadline.store.vector import VectorType

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        uuid.UUID: sa.Uuid(),
    }


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(sa.Uuid(), primary_key=True, default=new_id)


def _tenant() -> Mapped[uuid.UUID]:
    return mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow)


def _updated() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)


def _fk(target: str, ondelete: str, nullable: bool = True) -> Mapped[Any]:
    return mapped_column(sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)


def _json(nullable: bool = True) -> Mapped[Any]:
    return mapped_column(JSONType, nullable=nullable)


def _fk_lookup(column: str, *, nullable: bool = True) -> sa.Index:
    """The index the database needs to find the rows that point at a row it deletes.

    Partial (``WHERE column IS NOT NULL``) for a nullable column: both SQLite and
    PostgreSQL use it for ``column = ?``, and it holds only the rows that point somewhere.
    """
    if not nullable:
        return sa.Index(None, column)
    where = sa.text(f"{column} IS NOT NULL")
    return sa.Index(None, column, sqlite_where=where, postgresql_where=where)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[uuid.UUID] = _pk()
    slug: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "email"),)
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    email: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    role: Mapped[enums.UserRole] = mapped_column(enum_type(enums.UserRole, "user_role"))
    is_active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (sa.Index(None, "tenant_id", "created_at"),)
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"),)
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    kind: Mapped[enums.AgentKind] = mapped_column(enum_type(enums.AgentKind, "agent_kind"))
    model: Mapped[str | None] = mapped_column(sa.String(200))
    system_prompt: Mapped[str | None] = mapped_column(sa.Text)
    #: The functions the model may call, as OpenAI tool specs.
    tools: Mapped[Any] = _json()
    settings: Mapped[dict[str, Any]] = _json(nullable=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


_AGENT_JOB_DUE = sa.text("status = 'queued'")


class AgentJob(Base):
    """Work for the agent loop: a reply, a score or a summary of one conversation.

    ``trigger_seq`` is the last message's seq when the job was queued: at most one job per
    (conversation, kind, trigger_seq), so a poll that finds the same inbound message twice,
    or two workers that find it at once, queue it once.
    """

    __tablename__ = "agent_jobs"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "conversation_id", "kind", "trigger_seq"),
        # The loop's queue, across tenants (see the module docstring): partial, so it holds
        # only the jobs still to run.
        sa.Index(
            "ix_agent_jobs_due",
            "status",
            "run_after",
            sqlite_where=_AGENT_JOB_DUE,
            postgresql_where=_AGENT_JOB_DUE,
        ),
        _fk_lookup("conversation_id", nullable=False),
        _fk_lookup("agent_id"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    conversation_id: Mapped[uuid.UUID] = _fk("conversations.id", "CASCADE", nullable=False)
    agent_id: Mapped[uuid.UUID | None] = _fk("agents.id", "SET NULL")
    #: reply, score or summary.
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    #: queued, running, done, failed or skipped.
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    trigger_seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    attempts: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default=sa.text("0")
    )
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Inbox(Base):
    __tablename__ = "inboxes"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "channel", "address"),
        sa.Index(None, "tenant_id", "created_at", "id"),
        _fk_lookup("agent_id"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    channel: Mapped[enums.Channel] = mapped_column(enum_type(enums.Channel, "inbox_channel"))
    #: The channels registry name of the provider behind the inbox (``twilio``, ``meta`` ...).
    provider: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    address: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    mode: Mapped[enums.InboxMode] = mapped_column(enum_type(enums.InboxMode, "inbox_mode"))
    agent_id: Mapped[uuid.UUID | None] = _fk("agents.id", "SET NULL")
    #: The provider credentials, encrypted (``store/secrets.py``); never returned.
    secrets_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    settings: Mapped[dict[str, Any]] = _json(nullable=False)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        sa.Index(None, "tenant_id", "created_at", "id"),
        sa.Index(None, "tenant_id", "phone"),
        sa.Index(None, "tenant_id", "email"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    name: Mapped[str | None] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    attributes: Mapped[dict[str, Any]] = _json(nullable=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ContactIdentity(Base):
    __tablename__ = "contact_identities"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "channel", "address"),
        sa.Index(None, "tenant_id", "contact_id"),
        _fk_lookup("contact_id", nullable=False),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    contact_id: Mapped[uuid.UUID] = _fk("contacts.id", "CASCADE", nullable=False)
    channel: Mapped[enums.Channel] = mapped_column(enum_type(enums.Channel, "identity_channel"))
    address: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    created_at: Mapped[datetime] = _created()


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        sa.Index(None, "tenant_id", "last_activity_at", "id"),
        sa.Index(None, "tenant_id", "status", "last_activity_at", "id"),
        sa.Index(None, "tenant_id", "channel", "last_activity_at", "id"),
        sa.Index(None, "tenant_id", "contact_id", "last_activity_at", "id"),
        sa.Index(None, "tenant_id", "inbox_id", "last_activity_at", "id"),
        sa.Index(None, "tenant_id", "assignee_id", "last_activity_at", "id"),
        sa.Index(None, "tenant_id", "inbox_id", "external_conversation_id"),
        sa.CheckConstraint(
            "satisfaction_score IS NULL OR satisfaction_score BETWEEN 1 AND 10",
            name="satisfaction_score_range",
        ),
        sa.CheckConstraint("message_count >= 0", name="message_count_nonnegative"),
        sa.CheckConstraint("last_seq >= 0", name="last_seq_nonnegative"),
        _fk_lookup("contact_id"),
        _fk_lookup("inbox_id"),
        _fk_lookup("assignee_id"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    contact_id: Mapped[uuid.UUID | None] = _fk("contacts.id", "CASCADE")
    inbox_id: Mapped[uuid.UUID | None] = _fk("inboxes.id", "SET NULL")
    channel: Mapped[enums.Channel] = mapped_column(enum_type(enums.Channel, "conversation_channel"))
    status: Mapped[enums.ConversationStatus] = mapped_column(
        enum_type(enums.ConversationStatus, "conversation_status")
    )
    title: Mapped[str | None] = mapped_column(sa.String(500))
    summary: Mapped[str | None] = mapped_column(sa.Text)
    sentiment: Mapped[float | None] = mapped_column(sa.Float)
    satisfaction_score: Mapped[int | None] = mapped_column(sa.SmallInteger)
    outcome: Mapped[str | None] = mapped_column(sa.String(100))
    assignee_id: Mapped[uuid.UUID | None] = _fk("agents.id", "SET NULL")
    external_conversation_id: Mapped[str | None] = mapped_column(sa.String(255))
    message_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    #: The last ``seq`` given out in this conversation, kept on its own (not derived from
    #: the messages or their count) so that erasing or pruning messages never reuses a seq.
    last_seq: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default=sa.text("0")
    )
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, nullable=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "conversation_id", "seq"),
        sa.Index(
            "uq_messages_inbox_external",
            "tenant_id",
            "inbox_id",
            "external_message_id",
            unique=True,
            sqlite_where=sa.text("external_message_id IS NOT NULL AND inbox_id IS NOT NULL"),
            postgresql_where=sa.text("external_message_id IS NOT NULL AND inbox_id IS NOT NULL"),
        ),
        sa.Index(
            "uq_messages_conversation_external",
            "tenant_id",
            "conversation_id",
            "external_message_id",
            unique=True,
            sqlite_where=sa.text("external_message_id IS NOT NULL"),
            postgresql_where=sa.text("external_message_id IS NOT NULL"),
        ),
        sa.Index(None, "tenant_id", "created_at"),
        _fk_lookup("conversation_id", nullable=False),
        _fk_lookup("inbox_id"),
        _fk_lookup("parent_message_id"),
        sa.CheckConstraint("seq >= 1", name="seq_positive"),
        sa.CheckConstraint(
            "role <> 'tool' OR tool_call_id IS NOT NULL", name="tool_message_has_call_id"
        ),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    conversation_id: Mapped[uuid.UUID] = _fk("conversations.id", "CASCADE", nullable=False)
    inbox_id: Mapped[uuid.UUID | None] = _fk("inboxes.id", "SET NULL")
    seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    role: Mapped[enums.Role] = mapped_column(enum_type(enums.Role, "message_role"))
    sender_type: Mapped[enums.SenderType] = mapped_column(
        enum_type(enums.SenderType, "message_sender_type")
    )
    direction: Mapped[enums.Direction] = mapped_column(
        enum_type(enums.Direction, "message_direction")
    )
    message_type: Mapped[enums.MessageType] = mapped_column(
        enum_type(enums.MessageType, "message_type")
    )
    content: Mapped[str | None] = mapped_column(sa.Text)
    content_html: Mapped[str | None] = mapped_column(sa.Text)
    tool_calls: Mapped[Any] = _json()
    tool_call_id: Mapped[str | None] = mapped_column(sa.String(255))
    name: Mapped[str | None] = mapped_column(sa.String(255))
    parent_message_id: Mapped[uuid.UUID | None] = _fk("messages.id", "SET NULL")
    thread_id: Mapped[str | None] = mapped_column(sa.String(255))
    external_message_id: Mapped[str | None] = mapped_column(sa.String(255))
    external_conversation_id: Mapped[str | None] = mapped_column(sa.String(255))
    attachments: Mapped[Any] = _json()
    channel_data: Mapped[Any] = _json()
    metadata_: Mapped[Any] = mapped_column("metadata", JSONType, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[datetime] = _created()


_DELIVERY_DUE = sa.text("status IN ('pending', 'queued')")


class MessageDelivery(Base):
    """The delivery of one outbound message: its current state, changed by the sender and
    the provider's status callbacks (every callback is also a ``message_status_events`` row).
    """

    __tablename__ = "message_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "message_id"),
        # Status callbacks name the message by the provider's id.
        sa.Index(
            None,
            "tenant_id",
            "inbox_id",
            "external_message_id",
            sqlite_where=sa.text("external_message_id IS NOT NULL"),
            postgresql_where=sa.text("external_message_id IS NOT NULL"),
        ),
        # The delivery worker's queue: the deliveries due next, whatever their tenant. A
        # cross-tenant work-queue index, so it does not lead with tenant_id (see the module
        # docstring); partial, so it holds only the few deliveries still to be sent.
        sa.Index(
            "ix_message_deliveries_due",
            "status",
            "next_attempt_at",
            sqlite_where=_DELIVERY_DUE,
            postgresql_where=_DELIVERY_DUE,
        ),
        _fk_lookup("message_id", nullable=False),
        _fk_lookup("inbox_id"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    message_id: Mapped[uuid.UUID] = _fk("messages.id", "CASCADE", nullable=False)
    inbox_id: Mapped[uuid.UUID | None] = _fk("inboxes.id", "SET NULL")
    status: Mapped[enums.DeliveryStatus] = mapped_column(
        enum_type(enums.DeliveryStatus, "message_delivery_status")
    )
    #: The provider's error text (a message's ``delivery_error`` in the API).
    error: Mapped[str | None] = mapped_column(sa.Text)
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    #: The provider's id for the message, when it is known only once the message is sent.
    external_message_id: Mapped[str | None] = mapped_column(sa.String(255))
    attempts: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default=sa.text("0")
    )
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Pull-based providers (the Zapier outbox): handed out and not yet acknowledged until
    #: then; served again after it passes.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ModelCall(Base):
    """One call to a model, whether or not it produced a message (scores, summaries and
    rejected drafts count too)."""

    __tablename__ = "model_calls"
    __table_args__ = (
        sa.Index(
            "uq_model_calls_message",
            "tenant_id",
            "message_id",
            unique=True,
            sqlite_where=sa.text("message_id IS NOT NULL"),
            postgresql_where=sa.text("message_id IS NOT NULL"),
        ),
        sa.Index(None, "tenant_id", "conversation_id", "created_at"),
        sa.Index(None, "tenant_id", "created_at"),
        sa.Index(None, "tenant_id", "agent_id", "created_at"),
        _fk_lookup("conversation_id"),
        _fk_lookup("message_id"),
        _fk_lookup("agent_id"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    conversation_id: Mapped[uuid.UUID | None] = _fk("conversations.id", "CASCADE")
    #: The message the call produced, if any.
    message_id: Mapped[uuid.UUID | None] = _fk("messages.id", "SET NULL")
    agent_id: Mapped[uuid.UUID | None] = _fk("agents.id", "SET NULL")
    #: What the call was for: reply, suggestion, score, summary, embedding ...
    purpose: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    model: Mapped[str | None] = mapped_column(sa.String(200))
    prompt: Mapped[str | None] = mapped_column(sa.Text)
    token_usage: Mapped[Any] = _json()
    cost_usd: Mapped[float | None] = mapped_column(sa.Float)
    response_time_ms: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created()


class MessageModeration(Base):
    """A message's moderation state: flagged or not, why, and its quality score."""

    __tablename__ = "message_moderation"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "message_id"),
        _fk_lookup("message_id", nullable=False),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    message_id: Mapped[uuid.UUID] = _fk("messages.id", "CASCADE", nullable=False)
    is_flagged: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    flagged_reason: Mapped[str | None] = mapped_column(sa.Text)
    quality_score: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` and the messages its first request stored."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "key"),
        _fk_lookup("conversation_id", nullable=False),
        # The prune job deletes expired keys of every tenant (``WHERE created_at < ?``): a
        # cross-tenant maintenance index, so it does not lead with tenant_id.
        sa.Index(None, "created_at"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    key: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    request_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    conversation_id: Mapped[uuid.UUID] = _fk("conversations.id", "CASCADE", nullable=False)
    first_seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    last_seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    created_at: Mapped[datetime] = _created()


class MessageStatusEvent(Base):
    """One delivery callback, as received. ``message_id`` is null for a callback about a
    message we cannot find (kept, with the provider's id, and answered 200); ``status`` is
    null for events that change no delivery status (a click, a spam report)."""

    __tablename__ = "message_status_events"
    __table_args__ = (
        sa.Index(None, "tenant_id", "message_id", "occurred_at"),
        sa.Index(
            None,
            "tenant_id",
            "inbox_id",
            "external_message_id",
            sqlite_where=sa.text("message_id IS NULL"),
            postgresql_where=sa.text("message_id IS NULL"),
        ),
        _fk_lookup("message_id"),
        _fk_lookup("inbox_id"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    message_id: Mapped[uuid.UUID | None] = _fk("messages.id", "CASCADE")
    inbox_id: Mapped[uuid.UUID | None] = _fk("inboxes.id", "SET NULL")
    #: The provider's id for the message the callback is about.
    external_message_id: Mapped[str | None] = mapped_column(sa.String(255))
    status: Mapped[enums.DeliveryStatus | None] = mapped_column(
        enum_type(enums.DeliveryStatus, "status_event_status"), nullable=True
    )
    #: The provider's own word for the event (``undelivered``, ``Bounce``, ``click`` ...).
    provider_status: Mapped[str | None] = mapped_column(sa.String(64))
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    error: Mapped[str | None] = mapped_column(sa.Text)
    provider_data: Mapped[Any] = _json()
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[datetime] = _created()


class ConversationEvent(Base):
    __tablename__ = "conversation_events"
    __table_args__ = (
        sa.Index(None, "tenant_id", "conversation_id", "created_at"),
        _fk_lookup("conversation_id", nullable=False),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    conversation_id: Mapped[uuid.UUID] = _fk("conversations.id", "CASCADE", nullable=False)
    type: Mapped[enums.EventType] = mapped_column(enum_type(enums.EventType, "event_type"))
    data: Mapped[Any] = _json()
    created_at: Mapped[datetime] = _created()


class Event(Base):
    """The tenant's event log: what happened, in order, for live streams and outgoing
    webhooks. Written in the same transaction as the change it describes; never carries a
    message body (readers fetch what they need by id)."""

    __tablename__ = "events"
    __table_args__ = (
        sa.Index(None, "tenant_id", "id"),
        sa.Index(None, "created_at"),  # the retention prune, across tenants (an exception)
        _fk_lookup("conversation_id"),
    )
    id: Mapped[uuid.UUID] = _pk()  # time-ordered (UUIDv7): the stream's cursor
    tenant_id: Mapped[uuid.UUID] = _tenant()
    type: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    conversation_id: Mapped[uuid.UUID | None] = _fk("conversations.id", "CASCADE")
    data: Mapped[Any] = _json()
    created_at: Mapped[datetime] = _created()


class ActionLog(Base):
    __tablename__ = "action_logs"
    __table_args__ = (
        sa.Index(None, "tenant_id", "conversation_id", "created_at"),
        sa.Index(None, "tenant_id", "created_at"),
        _fk_lookup("conversation_id"),
        _fk_lookup("message_id"),
        _fk_lookup("agent_id"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    conversation_id: Mapped[uuid.UUID | None] = _fk("conversations.id", "CASCADE")
    message_id: Mapped[uuid.UUID | None] = _fk("messages.id", "SET NULL")
    agent_id: Mapped[uuid.UUID | None] = _fk("agents.id", "SET NULL")
    action_name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    action_type: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    parameters: Mapped[Any] = _json()
    result: Mapped[Any] = _json()
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = _created()


class Suggestion(Base):
    __tablename__ = "suggestions"
    __table_args__ = (
        sa.Index(None, "tenant_id", "conversation_id", "created_at"),
        sa.Index(None, "tenant_id", "status", "created_at"),
        sa.Index(
            "uq_suggestions_one_pending",
            "tenant_id",
            "conversation_id",
            "in_reply_to_message_id",
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        ),
        sa.CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence_range"
        ),
        _fk_lookup("conversation_id", nullable=False),
        _fk_lookup("in_reply_to_message_id"),
        _fk_lookup("decided_by"),
        _fk_lookup("sent_message_id"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    conversation_id: Mapped[uuid.UUID] = _fk("conversations.id", "CASCADE", nullable=False)
    in_reply_to_message_id: Mapped[uuid.UUID | None] = _fk("messages.id", "CASCADE")
    content: Mapped[str] = mapped_column(sa.Text, nullable=False)
    confidence: Mapped[float | None] = mapped_column(sa.Float)
    context_used: Mapped[Any] = _json()
    model: Mapped[str | None] = mapped_column(sa.String(200))
    token_usage: Mapped[Any] = _json()
    cost_usd: Mapped[float | None] = mapped_column(sa.Float)
    status: Mapped[enums.SuggestionStatus] = mapped_column(
        enum_type(enums.SuggestionStatus, "suggestion_status")
    )
    feedback: Mapped[str | None] = mapped_column(sa.Text)
    edited_content: Mapped[str | None] = mapped_column(sa.Text)
    decided_by: Mapped[uuid.UUID | None] = _fk("users.id", "SET NULL")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_message_id: Mapped[uuid.UUID | None] = _fk("messages.id", "SET NULL")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Summary(Base):
    __tablename__ = "summaries"
    __table_args__ = (
        sa.Index(None, "tenant_id", "conversation_id", "to_seq"),
        _fk_lookup("conversation_id", nullable=False),
        sa.CheckConstraint("from_seq >= 1 AND to_seq >= from_seq", name="seq_range"),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    conversation_id: Mapped[uuid.UUID] = _fk("conversations.id", "CASCADE", nullable=False)
    from_seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    to_seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    content: Mapped[str] = mapped_column(sa.Text, nullable=False)
    model: Mapped[str | None] = mapped_column(sa.String(200))
    token_count: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = _created()


class Embedding(Base):
    """A message's vector under one embedding model, computed by the embed job after the
    message is committed (``jobs/embed.py``); deleted with its message."""

    __tablename__ = "embeddings"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "message_id", "model"),
        _fk_lookup("message_id", nullable=False),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    message_id: Mapped[uuid.UUID] = _fk("messages.id", "CASCADE", nullable=False)
    model: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    dims: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    vector: Mapped[Any] = mapped_column(VectorType(), nullable=False)
    created_at: Mapped[datetime] = _created()


class WebhookEndpoint(Base):
    """A URL that receives the tenant's events (``jobs/webhooks_out.py``), signed with its
    own secret per the Standard Webhooks spec. ``cursor`` is the last event it has read from
    the event log; ``event_types`` null means every type."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (sa.Index(None, "tenant_id", "created_at", "id"),)
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    url: Mapped[str] = mapped_column(sa.String(2048), nullable=False)
    description: Mapped[str | None] = mapped_column(sa.String(500))
    event_types: Mapped[Any] = _json()
    #: The signing secret (``whsec_`` + base64), shown once when the endpoint is created.
    secret: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    cursor: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid())
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


_WEBHOOK_DUE = sa.text("status = 'pending'")


class WebhookDelivery(Base):
    """One event for one endpoint: its attempts and outcome (the delivery log). It keeps the
    event's own small facts (type, ids, time; never a body), so it outlives the event's
    pruning; the payload is built from the current rows at each attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "endpoint_id", "event_id"),
        # The sender's queue across tenants (a documented exception), partial: only what is
        # still to be sent.
        sa.Index(
            "ix_webhook_deliveries_due",
            "status",
            "next_attempt_at",
            sqlite_where=_WEBHOOK_DUE,
            postgresql_where=_WEBHOOK_DUE,
        ),
        _fk_lookup("endpoint_id", nullable=False),
    )
    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant()
    endpoint_id: Mapped[uuid.UUID] = _fk("webhook_endpoints.id", "CASCADE", nullable=False)
    event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), nullable=False)
    event_type: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid())
    event_data: Mapped[Any] = _json()
    event_created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    #: pending (to send, or being sent), delivered (a 2xx) or failed (given up).
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default=sa.text("0")
    )
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The HTTP status of the last attempt (null when it got no answer).
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
