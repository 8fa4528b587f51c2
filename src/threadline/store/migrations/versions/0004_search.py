"""search: full-text index over message content, and an embeddings table for vectors

Keyword search:

- SQLite: an FTS5 table over ``messages.content`` (external content: it stores the index,
  not a second copy of the text), kept in step by triggers on insert, update of content and
  delete, so every writer (API, channels, importers, erase) keeps it current. Its
  ``secure-delete`` option removes a deleted message's terms from the index at once (an
  erased message's words must not linger in the file). Existing messages are indexed here.
- PostgreSQL: a GIN index on ``to_tsvector('simple', content)``; it indexes existing rows
  as it is built.

Semantic search: ``embeddings`` holds one vector per (message, model). On PostgreSQL the
column is a pgvector ``vector`` of any size, with an HNSW index (cosine) for the 384-d
vectors of the default local model, a partial expression index as pgvector documents for
mixed sizes. On SQLite a sqlite-vec ``vec0`` table partitioned by tenant holds a copy of
the 384-d vectors for nearest-neighbour scans (kept by triggers on ``embeddings``). Where the
server has no pgvector, the column is ``bytea``, semantic search is
unavailable and keyword search works as usual (the migration logs a warning saying so).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR

import threadline.store.types
from threadline.logs import get_logger

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = threadline.store.types.UTCDateTime(timezone=True)

SQLITE_UP = [
    # unicode61 folds case and diacritics; no stemmer, so every language is treated alike
    "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', "
    "content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO messages_fts(messages_fts, rank) VALUES ('secure-delete', 1)",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages "
    "WHEN new.content IS NOT NULL BEGIN "
    "INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages "
    "WHEN old.content IS NOT NULL BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) "
    "VALUES ('delete', old.rowid, old.content); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) "
    "SELECT 'delete', old.rowid, old.content WHERE old.content IS NOT NULL; "
    "INSERT INTO messages_fts(rowid, content) "
    "SELECT new.rowid, new.content WHERE new.content IS NOT NULL; END",
    # index the messages stored before this revision
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
]
# sqlite-vec's vec0 table: a k-nearest-neighbour scan of one tenant's 384-d vectors (the
# tenant and model are its partition key), kept in step with ``embeddings`` by triggers.
# Made only where sqlite-vec loads; elsewhere semantic search compares the blobs in
# ``embeddings`` directly.
SQLITE_VEC_UP = [
    # partitioned by tenant and model together ('<tenant id hex>/<model>'): a metadata
    # column for the model would be tested row by row, doubling the scan
    "CREATE VIRTUAL TABLE embeddings_vec_384 USING vec0(owner text partition key, "
    "embedding float[384] distance_metric=cosine)",
    "CREATE TRIGGER embeddings_vec_insert AFTER INSERT ON embeddings WHEN new.dims = 384 BEGIN "
    "INSERT INTO embeddings_vec_384(rowid, owner, embedding) "
    "VALUES (new.rowid, new.tenant_id || '/' || new.model, new.vector); END",
    "CREATE TRIGGER embeddings_vec_delete AFTER DELETE ON embeddings WHEN old.dims = 384 BEGIN "
    "DELETE FROM embeddings_vec_384 WHERE rowid = old.rowid; END",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS embeddings_vec_delete",
    "DROP TRIGGER IF EXISTS embeddings_vec_insert",
    "DROP TABLE IF EXISTS embeddings_vec_384",
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TABLE IF EXISTS messages_fts",
]
PG_FULL_TEXT = (
    "CREATE INDEX ix_messages_fts ON messages USING gin (to_tsvector('simple'::regconfig, content))"
)
PG_HNSW = (
    "CREATE INDEX ix_embeddings_hnsw_384 ON embeddings "
    "USING hnsw ((vector::vector(384)) vector_cosine_ops) WHERE dims = 384"
)


def _pgvector(conn: sa.Connection) -> bool:
    """Whether the ``vector`` type is there, creating the extension if the server has it."""
    installed = "SELECT 1 FROM pg_extension WHERE extname = 'vector'"
    if conn.exec_driver_sql(installed).first() is not None:
        return True
    available = "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    if conn.exec_driver_sql(available).first() is not None:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
            return True
        except sa.exc.DBAPIError as exc:  # no privilege to create it: keyword search only
            reason = str(exc.orig).splitlines()[0]
    else:
        reason = "the server does not have the pgvector extension"
    get_logger(__name__).warning(
        "semantic_search_unavailable",
        reason=reason,
        notice="keyword search works; to add semantic search, install pgvector, then "
        "downgrade below revision 0004 and upgrade again",
    )
    return False


def upgrade() -> None:
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    vectors = postgres and _pgvector(conn)
    vector_type: sa.types.TypeEngine[Any] = VECTOR() if vectors else sa.LargeBinary()
    op.create_table(
        "embeddings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("dims", sa.Integer(), nullable=False),
        sa.Column("vector", vector_type, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_embeddings_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_embeddings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embeddings")),
        sa.UniqueConstraint(
            "tenant_id",
            "message_id",
            "model",
            name=op.f("uq_embeddings_tenant_id_message_id_model"),
        ),
    )
    op.create_index(op.f("ix_embeddings_message_id"), "embeddings", ["message_id"], unique=False)
    if postgres:
        op.execute(PG_FULL_TEXT)
        if vectors:
            op.execute(PG_HNSW)
    else:
        for statement in SQLITE_UP:
            op.execute(statement)
        if _sqlite_vec(conn):
            for statement in SQLITE_VEC_UP:
                op.execute(statement)


def _sqlite_vec(conn: sa.Connection) -> bool:
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("SELECT vec_version()")
    except sa.exc.OperationalError:
        get_logger(__name__).warning(
            "sqlite_vec_unavailable",
            notice="semantic search compares every vector of a tenant (slower at scale)",
        )
        return False
    return True


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_messages_fts")
    else:
        for statement in SQLITE_DOWN:
            op.execute(statement)
    op.drop_index(op.f("ix_embeddings_message_id"), table_name="embeddings")
    op.drop_table("embeddings")
