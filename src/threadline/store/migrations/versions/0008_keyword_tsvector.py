"""keyword search on PostgreSQL ranks from a stored tsvector

Ranking a match (``ts_rank_cd``) needs the message's tsvector. With only an expression
index on ``to_tsvector('simple', content)`` the query parsed the content of every match
again to rank it: a common word matching most of a tenant's messages cost seconds. The
tsvector is now a generated column, ``content_tsv`` (always computed from ``content`` by
PostgreSQL: clearing the content for an erase clears it too), and the GIN index
``ix_messages_fts`` is on that column.

Adding a stored generated column rewrites ``messages`` under an exclusive lock (about a
minute per million messages on two cores): plan the upgrade of a large database for a quiet
moment. The column is not in the SQLAlchemy models (``search_schema.include_object`` leaves
it out of comparisons). SQLite is unchanged (its FTS5 table stores what BM25 needs).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UP = [
    "DROP INDEX IF EXISTS ix_messages_fts",
    "ALTER TABLE messages ADD COLUMN content_tsv tsvector GENERATED ALWAYS AS "
    "(to_tsvector('simple'::regconfig, coalesce(content, ''))) STORED",
    "CREATE INDEX ix_messages_fts ON messages USING gin (content_tsv)",
]
DOWN = [
    "DROP INDEX IF EXISTS ix_messages_fts",
    "ALTER TABLE messages DROP COLUMN IF EXISTS content_tsv",
    "CREATE INDEX ix_messages_fts ON messages "
    "USING gin (to_tsvector('simple'::regconfig, content))",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in DOWN:
            op.execute(statement)
