"""an append-only message log; every foreign key indexed; seq kept on its own

Messages keep their content and identity only. Delivery state moves to
``message_deliveries`` (one row per outbound message), model bookkeeping to ``model_calls``
(one row per model call) and moderation to ``message_moderation``; the rows that had such
values are carried over, and back on downgrade. ``conversations.last_seq`` keeps the last
seq given out. Every foreign key gets an index that leads with its column, and
``idempotency_keys.created_at`` one for the prune job.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import threadline.store.types
from threadline.domain.ids import new_id

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 1000

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TIME = threadline.store.types.UTCDateTime(timezone=True)
_STATUSES = ("pending", "queued", "sent", "delivered", "read", "failed")


def _status_enum() -> sa.Enum:
    return sa.Enum(
        *_STATUSES, name="message_delivery_status", native_enum=False, create_constraint=True
    )


# Indexes for the database's own lookups by foreign key: (table, column, nullable).
# A nullable column's index is partial: it holds only the rows that point somewhere.
FK_LOOKUPS = [
    ("inboxes", "agent_id", True),
    ("contact_identities", "contact_id", False),
    ("conversations", "contact_id", True),
    ("conversations", "inbox_id", True),
    ("conversations", "assignee_id", True),
    ("conversation_events", "conversation_id", False),
    ("idempotency_keys", "conversation_id", False),
    ("summaries", "conversation_id", False),
    ("action_logs", "conversation_id", True),
    ("action_logs", "message_id", True),
    ("action_logs", "agent_id", True),
    ("message_status_events", "message_id", False),
    ("suggestions", "conversation_id", False),
    ("suggestions", "in_reply_to_message_id", True),
    ("suggestions", "decided_by", True),
    ("suggestions", "sent_message_id", True),
]
MESSAGE_FK_LOOKUPS = [
    ("messages", "conversation_id", False),
    ("messages", "inbox_id", True),
    ("messages", "parent_message_id", True),
]


def _where(column: str, nullable: bool) -> dict[str, Any]:
    if not nullable:
        return {}
    where = sa.text(f"{column} IS NOT NULL")
    return {"sqlite_where": where, "postgresql_where": where}


def _fk_index(batch_op: Any, table: str, column: str, nullable: bool) -> None:
    name = f"ix_{table}_{column}"
    batch_op.create_index(name, [column], unique=False, **_where(column, nullable))


# The moved columns, as they were on messages (for reading them on upgrade).
_messages_before = sa.table(
    "messages",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("conversation_id", sa.Uuid()),
    sa.column("inbox_id", sa.Uuid()),
    sa.column("external_message_id", sa.String()),
    sa.column("delivery_status", sa.String()),
    sa.column("delivery_error", sa.Text()),
    sa.column("sent_at", _TIME),
    sa.column("delivered_at", _TIME),
    sa.column("read_at", _TIME),
    sa.column("model_used", sa.String()),
    sa.column("prompt_used", sa.Text()),
    sa.column("token_usage", _JSON),
    sa.column("cost_usd", sa.Float()),
    sa.column("response_time_ms", sa.Integer()),
    sa.column("is_flagged", sa.Boolean()),
    sa.column("flagged_reason", sa.Text()),
    sa.column("quality_score", sa.Float()),
    sa.column("created_at", _TIME),
)


def upgrade() -> None:
    # conversations.last_seq (SQLite rebuilds the table to add a CHECK constraint)
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_seq", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.create_check_constraint(
            op.f("ck_conversations_last_seq_nonnegative"), "last_seq >= 0"
        )
    op.execute(
        "UPDATE conversations SET last_seq = COALESCE((SELECT max(m.seq) FROM messages m "
        "WHERE m.tenant_id = conversations.tenant_id "
        "AND m.conversation_id = conversations.id), 0)"
    )

    _create_message_deliveries()
    _create_model_calls()
    _create_message_moderation()
    _carry_over_to_new_tables()

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_messages_message_delivery_status"), type_="check")
        for column in (
            "delivery_status",
            "delivery_error",
            "sent_at",
            "delivered_at",
            "read_at",
            "model_used",
            "prompt_used",
            "token_usage",
            "cost_usd",
            "response_time_ms",
            "is_flagged",
            "flagged_reason",
            "quality_score",
        ):
            batch_op.drop_column(column)
        for table, column, nullable in MESSAGE_FK_LOOKUPS:
            _fk_index(batch_op, table, column, nullable)

    for table, column, nullable in FK_LOOKUPS:
        op.create_index(
            f"ix_{table}_{column}", table, [column], unique=False, **_where(column, nullable)
        )
    # The prune job deletes expired keys of every tenant: a cross-tenant maintenance index.
    op.create_index(
        op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False
    )


def _create_message_deliveries() -> None:
    op.create_table(
        "message_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("inbox_id", sa.Uuid(), nullable=True),
        sa.Column("status", _status_enum(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("external_message_id", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", _TIME, nullable=True),
        sa.Column("sent_at", _TIME, nullable=True),
        sa.Column("delivered_at", _TIME, nullable=True),
        sa.Column("read_at", _TIME, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"],
            ["inboxes.id"],
            name=op.f("fk_message_deliveries_inbox_id_inboxes"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_deliveries_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_message_deliveries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_deliveries")),
        sa.UniqueConstraint(
            "tenant_id", "message_id", name=op.f("uq_message_deliveries_tenant_id_message_id")
        ),
    )
    with op.batch_alter_table("message_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_deliveries_tenant_id_inbox_id_external_message_id"),
            ["tenant_id", "inbox_id", "external_message_id"],
            unique=False,
            **_where("external_message_id", True),
        )
        # The delivery worker's queue across tenants (see the models' docstring).
        due = sa.text("status IN ('pending', 'queued')")
        batch_op.create_index(
            "ix_message_deliveries_due",
            ["status", "next_attempt_at"],
            unique=False,
            sqlite_where=due,
            postgresql_where=due,
        )
        _fk_index(batch_op, "message_deliveries", "message_id", False)
        _fk_index(batch_op, "message_deliveries", "inbox_id", True)


def _create_model_calls() -> None:
    op.create_table(
        "model_calls",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("token_usage", _JSON, nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("response_time_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_model_calls_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_model_calls_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_model_calls_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_model_calls_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_calls")),
    )
    with op.batch_alter_table("model_calls", schema=None) as batch_op:
        batch_op.create_index(
            "uq_model_calls_message",
            ["tenant_id", "message_id"],
            unique=True,
            **_where("message_id", True),
        )
        batch_op.create_index(
            batch_op.f("ix_model_calls_tenant_id_conversation_id_created_at"),
            ["tenant_id", "conversation_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_model_calls_tenant_id_created_at"),
            ["tenant_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_model_calls_tenant_id_agent_id_created_at"),
            ["tenant_id", "agent_id", "created_at"],
            unique=False,
        )
        for column in ("conversation_id", "message_id", "agent_id"):
            _fk_index(batch_op, "model_calls", column, True)


def _create_message_moderation() -> None:
    op.create_table(
        "message_moderation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("is_flagged", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("flagged_reason", sa.Text(), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_moderation_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_message_moderation_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_moderation")),
        sa.UniqueConstraint(
            "tenant_id", "message_id", name=op.f("uq_message_moderation_tenant_id_message_id")
        ),
    )
    with op.batch_alter_table("message_moderation", schema=None) as batch_op:
        _fk_index(batch_op, "message_moderation", "message_id", False)


# --- carrying the data over -------------------------------------------------------------------


def _table(name: str, columns: list[tuple[str, Any]]) -> sa.TableClause:
    return sa.table(name, *(sa.column(column, kind) for column, kind in columns))


def _chunks(conn: sa.Connection, where: sa.ColumnElement[bool]) -> Iterator[Sequence[Any]]:
    """The messages that match ``where``, in id order, ``CHUNK`` at a time."""
    m = _messages_before
    after = None
    while True:
        q = sa.select(m).where(where).order_by(m.c.id).limit(CHUNK)
        if after is not None:
            q = q.where(m.c.id > after)
        rows = conn.execute(q).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _carry_over_to_new_tables() -> None:
    conn = op.get_bind()
    m = _messages_before
    deliveries = _table(
        "message_deliveries",
        [
            ("id", sa.Uuid()),
            ("tenant_id", sa.Uuid()),
            ("message_id", sa.Uuid()),
            ("inbox_id", sa.Uuid()),
            ("status", sa.String()),
            ("error", sa.Text()),
            ("external_message_id", sa.String()),
            ("attempts", sa.Integer()),
            ("sent_at", _TIME),
            ("delivered_at", _TIME),
            ("read_at", _TIME),
            ("created_at", _TIME),
            ("updated_at", _TIME),
        ],
    )
    for rows in _chunks(conn, m.c.delivery_status.is_not(None)):
        conn.execute(
            deliveries.insert(),
            [
                {
                    "id": new_id(),
                    "tenant_id": r.tenant_id,
                    "message_id": r.id,
                    "inbox_id": r.inbox_id,
                    "status": r.delivery_status,
                    "error": r.delivery_error,
                    "external_message_id": r.external_message_id,
                    "attempts": 0,
                    "sent_at": r.sent_at,
                    "delivered_at": r.delivered_at,
                    "read_at": r.read_at,
                    "created_at": r.created_at,
                    "updated_at": max(
                        t for t in (r.created_at, r.sent_at, r.delivered_at, r.read_at) if t
                    ),
                }
                for r in rows
            ],
        )

    calls = _table(
        "model_calls",
        [
            ("id", sa.Uuid()),
            ("tenant_id", sa.Uuid()),
            ("conversation_id", sa.Uuid()),
            ("message_id", sa.Uuid()),
            ("purpose", sa.String()),
            ("model", sa.String()),
            ("prompt", sa.Text()),
            ("token_usage", _JSON),
            ("cost_usd", sa.Float()),
            ("response_time_ms", sa.Integer()),
            ("created_at", _TIME),
        ],
    )
    has_ai_fields = sa.or_(
        m.c.model_used.is_not(None),
        m.c.prompt_used.is_not(None),
        m.c.token_usage.is_not(None),
        m.c.cost_usd.is_not(None),
        m.c.response_time_ms.is_not(None),
    )
    for rows in _chunks(conn, has_ai_fields):
        conn.execute(
            calls.insert(),
            [
                {
                    "id": new_id(),
                    "tenant_id": r.tenant_id,
                    "conversation_id": r.conversation_id,
                    "message_id": r.id,
                    "purpose": "reply",
                    "model": r.model_used,
                    "prompt": r.prompt_used,
                    "token_usage": r.token_usage,
                    "cost_usd": r.cost_usd,
                    "response_time_ms": r.response_time_ms,
                    "created_at": r.created_at,
                }
                for r in rows
            ],
        )

    moderation = _table(
        "message_moderation",
        [
            ("id", sa.Uuid()),
            ("tenant_id", sa.Uuid()),
            ("message_id", sa.Uuid()),
            ("is_flagged", sa.Boolean()),
            ("flagged_reason", sa.Text()),
            ("quality_score", sa.Float()),
            ("created_at", _TIME),
            ("updated_at", _TIME),
        ],
    )
    moderated = sa.or_(
        m.c.is_flagged.is_(True),
        m.c.flagged_reason.is_not(None),
        m.c.quality_score.is_not(None),
    )
    for rows in _chunks(conn, moderated):
        conn.execute(
            moderation.insert(),
            [
                {
                    "id": new_id(),
                    "tenant_id": r.tenant_id,
                    "message_id": r.id,
                    "is_flagged": r.is_flagged,
                    "flagged_reason": r.flagged_reason,
                    "quality_score": r.quality_score,
                    "created_at": r.created_at,
                    "updated_at": r.created_at,
                }
                for r in rows
            ],
        )


# --- downgrade --------------------------------------------------------------------------------


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    for table, column, nullable in reversed(FK_LOOKUPS):
        op.drop_index(f"ix_{table}_{column}", table_name=table, **_where(column, nullable))

    # The columns come back on messages; is_flagged with a default for the rows already there,
    # dropped again below once every row has its value.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        for table, column, nullable in reversed(MESSAGE_FK_LOOKUPS):
            batch_op.drop_index(f"ix_{table}_{column}", **_where(column, nullable))
        batch_op.add_column(sa.Column("delivery_status", _status_enum(), nullable=True))
        batch_op.add_column(sa.Column("delivery_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("sent_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("delivered_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("read_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("model_used", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("prompt_used", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("token_usage", _JSON, nullable=True))
        batch_op.add_column(sa.Column("cost_usd", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("response_time_ms", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("is_flagged", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("flagged_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("quality_score", sa.Float(), nullable=True))

    # UPDATE ... FROM: PostgreSQL, and SQLite since 3.33. The provider's id goes back on the
    # message when the message had none (it was the only place for it).
    op.execute(
        "UPDATE messages SET delivery_status = d.status, delivery_error = d.error, "
        "sent_at = d.sent_at, delivered_at = d.delivered_at, read_at = d.read_at, "
        "external_message_id = COALESCE(messages.external_message_id, d.external_message_id) "
        "FROM message_deliveries d "
        "WHERE d.tenant_id = messages.tenant_id AND d.message_id = messages.id"
    )
    op.execute(
        "UPDATE messages SET model_used = c.model, prompt_used = c.prompt, "
        "token_usage = c.token_usage, cost_usd = c.cost_usd, "
        "response_time_ms = c.response_time_ms "
        "FROM model_calls c "
        "WHERE c.tenant_id = messages.tenant_id AND c.message_id = messages.id"
    )
    op.execute(
        "UPDATE messages SET is_flagged = o.is_flagged, flagged_reason = o.flagged_reason, "
        "quality_score = o.quality_score "
        "FROM message_moderation o "
        "WHERE o.tenant_id = messages.tenant_id AND o.message_id = messages.id"
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column("is_flagged", existing_type=sa.Boolean(), server_default=None)

    op.drop_table("message_moderation")
    op.drop_table("model_calls")  # with the calls that produced no message: 0001 has no place
    op.drop_table("message_deliveries")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_conversations_last_seq_nonnegative"), type_="check")
        batch_op.drop_column("last_seq")
