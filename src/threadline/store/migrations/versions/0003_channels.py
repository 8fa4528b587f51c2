"""channels: inboxes name their provider; inbox modes auto/approval/off; status callbacks kept
even for unknown messages; deliveries claimed by pull-based providers

- ``inboxes.provider`` (the channels registry name), carried over from the channel: sms ->
  twilio, whatsapp -> meta, email -> smtp, yelp -> zapier, voice -> vapi, webchat ->
  widget, api -> api;
- ``inboxes.mode`` takes ``auto``, ``approval`` or ``off`` (``auto_send`` becomes ``auto``;
  on downgrade ``off`` becomes ``approval``, which sends nothing by itself either);
- ``message_status_events``: ``message_id`` and ``status`` may be null (a callback for a
  message we cannot find, an event that changes no status), with the callback's
  ``inbox_id``, ``external_message_id``, ``provider_status`` and ``error_code``; the
  downgrade drops the rows the old schema cannot hold;
- ``message_deliveries.claimed_until``: a reply handed to the Zapier outbox and not yet
  acknowledged;
- an index for listing a tenant's inboxes newest first.

Revision ID: 0003
Revises: 0005
Create Date: 2026-11-28 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import threadline.store.types

revision: str = "0003"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = threadline.store.types.UTCDateTime(timezone=True)

#: The provider an existing inbox gets, by its channel.
PROVIDERS = {
    "sms": "twilio",
    "whatsapp": "meta",
    "email": "smtp",
    "yelp": "zapier",
    "voice": "vapi",
    "webchat": "widget",
    "api": "api",
}
_STATUSES = ("pending", "queued", "sent", "delivered", "read", "failed")


def _provider_case() -> str:
    whens = " ".join(f"WHEN '{channel}' THEN '{p}'" for channel, p in PROVIDERS.items())
    return f"CASE channel {whens} ELSE channel END"


def _status_enum() -> sa.Enum:
    return sa.Enum(
        *_STATUSES, name="status_event_status", native_enum=False, create_constraint=False
    )


def upgrade() -> None:
    with op.batch_alter_table("inboxes", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_inboxes_inbox_mode"), type_="check")
        batch_op.add_column(sa.Column("provider", sa.String(length=32), nullable=True))
    op.execute("UPDATE inboxes SET mode = 'auto' WHERE mode = 'auto_send'")
    op.execute(f"UPDATE inboxes SET provider = {_provider_case()}")
    with op.batch_alter_table("inboxes", schema=None) as batch_op:
        batch_op.alter_column("provider", existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column("mode", existing_type=sa.String(length=9), type_=sa.String(length=8))
        batch_op.create_check_constraint(
            op.f("ck_inboxes_inbox_mode"), "mode IN ('auto', 'approval', 'off')"
        )
        batch_op.create_index(
            "ix_inboxes_tenant_id_created_at_id", ["tenant_id", "created_at", "id"], unique=False
        )

    with op.batch_alter_table("message_status_events", schema=None) as batch_op:
        batch_op.drop_index("ix_message_status_events_message_id")
        batch_op.alter_column("message_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.alter_column("status", existing_type=_status_enum(), nullable=True)
        batch_op.add_column(sa.Column("inbox_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("external_message_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("provider_status", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("error_code", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_message_status_events_inbox_id_inboxes"),
            "inboxes",
            ["inbox_id"],
            ["id"],
            ondelete="SET NULL",
        )
        for column in ("message_id", "inbox_id"):
            where = sa.text(f"{column} IS NOT NULL")
            batch_op.create_index(
                f"ix_message_status_events_{column}",
                [column],
                unique=False,
                sqlite_where=where,
                postgresql_where=where,
            )
        unmatched = sa.text("message_id IS NULL")
        batch_op.create_index(
            "ix_message_status_events_tenant_id_inbox_id_external_message_id",
            ["tenant_id", "inbox_id", "external_message_id"],
            unique=False,
            sqlite_where=unmatched,
            postgresql_where=unmatched,
        )

    with op.batch_alter_table("message_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", _TIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message_deliveries", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")

    op.execute("DELETE FROM message_status_events WHERE message_id IS NULL OR status IS NULL")
    with op.batch_alter_table("message_status_events", schema=None) as batch_op:
        batch_op.drop_index("ix_message_status_events_tenant_id_inbox_id_external_message_id")
        batch_op.drop_index("ix_message_status_events_inbox_id")
        batch_op.drop_index("ix_message_status_events_message_id")
        batch_op.drop_constraint(
            op.f("fk_message_status_events_inbox_id_inboxes"), type_="foreignkey"
        )
        batch_op.drop_column("error_code")
        batch_op.drop_column("provider_status")
        batch_op.drop_column("external_message_id")
        batch_op.drop_column("inbox_id")
        batch_op.alter_column("status", existing_type=_status_enum(), nullable=False)
        batch_op.alter_column("message_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_index("ix_message_status_events_message_id", ["message_id"], unique=False)

    with op.batch_alter_table("inboxes", schema=None) as batch_op:
        batch_op.drop_index("ix_inboxes_tenant_id_created_at_id")
        batch_op.drop_constraint(op.f("ck_inboxes_inbox_mode"), type_="check")
        batch_op.alter_column("mode", existing_type=sa.String(length=8), type_=sa.String(length=9))
    op.execute("UPDATE inboxes SET mode = 'auto_send' WHERE mode = 'auto'")
    op.execute("UPDATE inboxes SET mode = 'approval' WHERE mode = 'off'")
    with op.batch_alter_table("inboxes", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_inboxes_inbox_mode"), "mode IN ('auto_send', 'approval')"
        )
        batch_op.drop_column("provider")
