"""agents: tools (OpenAI function specs); agent_jobs, the agent loop's queue

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-28 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import threadline.store.types

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TIME = threadline.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tools", _JSON, nullable=True))

    op.create_table(
        "agent_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger_seq", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("run_after", _TIME, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_jobs_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_agent_jobs_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_agent_jobs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_jobs")),
        sa.UniqueConstraint(
            "tenant_id",
            "conversation_id",
            "kind",
            "trigger_seq",
            name=op.f("uq_agent_jobs_tenant_id_conversation_id_kind_trigger_seq"),
        ),
    )
    with op.batch_alter_table("agent_jobs", schema=None) as batch_op:
        due = sa.text("status = 'queued'")
        batch_op.create_index(
            "ix_agent_jobs_due",
            ["status", "run_after"],
            unique=False,
            sqlite_where=due,
            postgresql_where=due,
        )
        batch_op.create_index("ix_agent_jobs_conversation_id", ["conversation_id"], unique=False)
        agent = sa.text("agent_id IS NOT NULL")
        batch_op.create_index(
            "ix_agent_jobs_agent_id",
            ["agent_id"],
            unique=False,
            sqlite_where=agent,
            postgresql_where=agent,
        )


def downgrade() -> None:
    with op.batch_alter_table("agent_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_jobs_agent_id")
        batch_op.drop_index("ix_agent_jobs_conversation_id")
        batch_op.drop_index("ix_agent_jobs_due")
    op.drop_table("agent_jobs")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("tools")
