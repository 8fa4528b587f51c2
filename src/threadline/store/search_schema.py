"""The parts of the search schema that the SQLAlchemy models cannot describe.

Migration 0004 makes them; ``threadline db check`` checks them by name:

- SQLite: the FTS5 table ``messages_fts`` (external content over ``messages.content``, with
  its shadow tables ``messages_fts_data``, ``_idx``, ``_docsize`` and ``_config``) and the
  three triggers that keep it in step with ``messages``. A later migration that rebuilds
  ``messages`` on SQLite (Alembic's batch mode copies it into a new table and drops the old
  one) drops those triggers with it and renumbers rowids: it must create the triggers again
  and rebuild the index (``INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')``, which
  ``threadline reindex`` also runs); ``db check`` reports missing triggers. Where sqlite-vec
  loads, ``embeddings_vec_384`` (a ``vec0`` table partitioned by tenant, with its shadow
  tables) holds the 384-d vectors for nearest-neighbour scans, kept by two triggers on
  ``embeddings``.
- PostgreSQL: the generated column ``messages.content_tsv`` (``to_tsvector('simple',
  content)``, stored by migration 0008 so that ranking reads it instead of parsing every
  match again), the GIN index ``ix_messages_fts`` on it and, where pgvector is installed,
  the HNSW index ``ix_embeddings_hnsw_384`` for 384-d vectors.
  Neither leads with ``tenant_id``: a GIN or HNSW index orders by terms or by distance, and
  the tenant condition filters its matches (documented exceptions to the schema's rule).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

FTS_TABLE = "messages_fts"
FTS_TRIGGERS = ("messages_fts_insert", "messages_fts_delete", "messages_fts_update")
#: sqlite-vec's table of 384-d vectors, partitioned by tenant (where sqlite-vec loads).
VEC_TABLE = "embeddings_vec_384"
VEC_TRIGGERS = ("embeddings_vec_insert", "embeddings_vec_delete")
PG_FULL_TEXT_INDEX = "ix_messages_fts"
PG_HNSW_INDEX = "ix_embeddings_hnsw_384"
#: The text search configuration of the PostgreSQL index and queries (no stemming, like
#: SQLite's unicode61 tokenizer: messages come in every language).
PG_TS_CONFIG = "simple"
INTERNAL_INDEXES = frozenset({PG_FULL_TEXT_INDEX, PG_HNSW_INDEX})
#: The generated tsvector column on ``messages`` (PostgreSQL, migration 0008).
PG_TSVECTOR_COLUMN = "content_tsv"


def is_internal_table(name: str | None) -> bool:
    """The FTS5 table and its shadow tables."""
    return name is not None and any(
        name == table or name.startswith(f"{table}_") for table in (FTS_TABLE, VEC_TABLE)
    )


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's ``include_object`` hook: leave the search internals out of comparisons."""
    if type_ == "table":
        return not is_internal_table(name)
    if type_ == "index":
        return name not in INTERNAL_INDEXES
    if type_ == "column":
        return name != PG_TSVECTOR_COLUMN
    return True


def has_pgvector(conn: sa.Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'vector'").first()
    return found is not None


def differences(conn: sa.Connection) -> list[str]:
    """What is missing of the search internals (empty before migration 0004)."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("embeddings"):
        return []
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'trigger')"
        ).all()
        present = {(str(t), str(n)) for t, n in rows}
        wanted = [("table", FTS_TABLE)] + [("trigger", t) for t in FTS_TRIGGERS]
        if ("table", VEC_TABLE) in present:
            wanted += [("trigger", t) for t in VEC_TRIGGERS]
        return [
            f"missing {kind} {name} (search)"
            for kind, name in wanted
            if (kind, name) not in present
        ]
    indexes = {ix["name"] for ix in inspector.get_indexes("messages")}
    missing = (
        [] if PG_FULL_TEXT_INDEX in indexes else [f"missing index {PG_FULL_TEXT_INDEX} on messages"]
    )
    hnsw = {ix["name"] for ix in inspector.get_indexes("embeddings")}
    if has_pgvector(conn) and PG_HNSW_INDEX not in hnsw:
        missing.append(f"missing index {PG_HNSW_INDEX} on embeddings")
    return missing
