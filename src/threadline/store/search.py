"""Search queries and the embeddings table, on both backends.

Keyword: SQLite's FTS5 table ``messages_fts`` (BM25), PostgreSQL's GIN index on the stored
column ``content_tsv``, ``to_tsvector('simple', content)`` (``ts_rank_cd``). Semantic:
cosine distance, with sqlite-vec's ``vec_distance_cosine`` over the tenant's vectors on
SQLite (exact), and pgvector's ``<=>`` on PostgreSQL (the HNSW index for 384-d vectors, with
iterative scans so that filters still fill the page). Every query is within one tenant, and answers
``(message_id, score)`` pairs, best first; ``fetch`` reads the messages.

The embed job finds work with ``pending`` (messages with content and no vector for the
model, oldest first, an anti-join on ``embeddings``' unique index) and stores vectors with
``store_vectors``; ``forget_*`` remove vectors for an erase (the FTS triggers remove a
message's search entry when its content is cleared or the message deleted).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa

from threadline.domain.ids import new_id
from threadline.search.query import Parsed
from threadline.store import search_schema
from threadline.store.database import Database
from threadline.store.messages import SELECT, messages_table
from threadline.store.models import Embedding
from threadline.store.types import utcnow
from threadline.store.vector import to_blob, to_pg_text

#: The sizes that have an HNSW index on PostgreSQL (migration 0004).
INDEXED_DIMS = frozenset({384})


@dataclass(frozen=True)
class Filters:
    """Which messages a search looks at, besides the tenant. All optional."""

    conversation_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    channel: str | None = None
    inbox_id: uuid.UUID | None = None
    role: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Only messages before this seq (recall: older than the context window).
    before_seq: int | None = None
    #: Leave this message out (recall: the message being answered).
    exclude_id: uuid.UUID | None = None

    @property
    def needs_conversation(self) -> bool:
        return self.contact_id is not None or self.channel is not None

    def sql(self, params: dict[str, Any]) -> str:
        """``AND ...`` conditions on ``m`` (messages) and ``c`` (conversations)."""
        out = []
        for name, condition, value in (
            ("f_conv", "m.conversation_id = :f_conv", self.conversation_id),
            ("f_contact", "c.contact_id = :f_contact", self.contact_id),
            ("f_channel", "c.channel = :f_channel", self.channel),
            ("f_inbox", "m.inbox_id = :f_inbox", self.inbox_id),
            ("f_role", "m.role = :f_role", self.role),
            ("f_since", "m.occurred_at >= :f_since", self.since),
            ("f_until", "m.occurred_at < :f_until", self.until),
            ("f_before", "m.seq < :f_before", self.before_seq),
            ("f_exclude", "m.id <> :f_exclude", self.exclude_id),
        ):
            if value is not None:
                out.append(f" AND {condition}")
                params[name] = value
        return "".join(out)


def _bind(dialect: str, params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the driver takes them in text SQL: on SQLite, UUIDs as 32 hex digits
    and times as fixed-width ISO text, the way ``sa.Uuid`` and ``UTCDateTime`` store them."""
    if dialect != "sqlite":
        return params
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, uuid.UUID):
            out[key] = value.hex
        elif isinstance(value, datetime):
            out[key] = value.astimezone(UTC).isoformat(timespec="microseconds")
        else:
            out[key] = value
    return out


def _where(filters: Filters, params: dict[str, Any]) -> tuple[str, str]:
    """The join to conversations (when a filter needs it) and the filter conditions."""
    join = (
        " JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id"
        if filters.needs_conversation
        else ""
    )
    return join, filters.sql(params)


def _ids(rows: Iterable[Any]) -> list[tuple[uuid.UUID, float]]:
    return [(r[0] if isinstance(r[0], uuid.UUID) else uuid.UUID(r[0]), float(r[1])) for r in rows]


# --- keyword -------------------------------------------------------------------------------


def keyword(
    db: Database, tenant_id: uuid.UUID, parsed: Parsed, filters: Filters, limit: int
) -> list[tuple[uuid.UUID, float]]:
    """Messages whose content matches ``parsed``, best first (higher score is better)."""
    if parsed.empty:
        return []
    dialect = db.dialect
    params: dict[str, Any] = {"t": tenant_id, "n": limit}
    join, conditions = _where(filters, params)
    if dialect == "sqlite":
        params["q"] = parsed.fts5
        # The matches first, then their messages: CROSS JOIN keeps SQLite from looping over
        # the tenant's messages and running the full-text query once for each. FTS5 hands
        # the matches over best first (ORDER BY rank, its BM25), so SQLite reads messages
        # only until the page is full, instead of reading every match's message and sorting.
        sql = (
            "SELECT m.id, -f.rank AS score FROM messages_fts f CROSS JOIN messages m "
            f"ON m.rowid = f.rowid{join} WHERE messages_fts MATCH :q AND m.tenant_id = :t"
            f"{conditions} ORDER BY f.rank LIMIT :n"
        )
    else:
        params["q"] = parsed.websearch
        cfg = f"'{search_schema.PG_TS_CONFIG}'::regconfig"
        tsv = f"m.{search_schema.PG_TSVECTOR_COLUMN}"  # stored: ranking parses nothing
        sql = (
            f"SELECT m.id, ts_rank_cd({tsv}, query) AS score "
            f"FROM websearch_to_tsquery({cfg}, :q) AS query, messages m{join} "
            f"WHERE {tsv} @@ query AND m.tenant_id = :t{conditions} "
            "ORDER BY score DESC, m.id LIMIT :n"
        )
    with _read(db) as conn:
        return _ids(conn.execute(sa.text(sql), _bind(dialect, params)))


# --- semantic ------------------------------------------------------------------------------


def vectors_available(db: Database) -> bool:
    """Whether this database can store and compare vectors (sqlite-vec loaded; pgvector)."""
    with db.connect() as conn:
        if db.dialect == "sqlite":
            try:
                conn.exec_driver_sql("SELECT vec_version()")
            except sa.exc.OperationalError:
                return False
            return True
        return search_schema.has_pgvector(conn)


_VEC_TABLES: dict[str, bool] = {}


def _has_vec_table(db: Database) -> bool:
    key = db.engine.url.render_as_string(hide_password=True)
    if key not in _VEC_TABLES:
        with db.connect() as conn:
            _VEC_TABLES[key] = sa.inspect(conn).has_table(search_schema.VEC_TABLE)
    return _VEC_TABLES[key]


def _vector_param(dialect: str, vector: Any) -> Any:
    return to_blob(vector) if dialect == "sqlite" else to_pg_text(vector)


def semantic(
    db: Database,
    tenant_id: uuid.UUID,
    vector: Any,
    model: str,
    filters: Filters,
    limit: int,
) -> list[tuple[uuid.UUID, float]]:
    """Messages nearest to ``vector`` among the tenant's vectors of ``model``, best first;
    the score is the cosine similarity (1 is the same direction)."""
    dialect = db.dialect
    dims = len(vector)
    params: dict[str, Any] = {"t": tenant_id, "n": limit, "model": model, "dims": dims}
    params["v"] = _vector_param(dialect, vector)
    join, conditions = _where(filters, params)
    base = (
        f" FROM embeddings e JOIN messages m ON m.tenant_id = e.tenant_id AND m.id = e.message_id"
        f"{join} WHERE e.tenant_id = :t AND e.model = :model"
    )
    if dialect == "sqlite":
        if conditions or join:
            sql = (
                f"SELECT m.id, vec_distance_cosine(e.vector, :v) AS d{base} "
                f"AND e.dims = :dims{conditions} ORDER BY d LIMIT :n"
            )
        elif dims in INDEXED_DIMS and _has_vec_table(db):
            params["owner"] = f"{tenant_id.hex}/{model}"
            # sqlite-vec's k-nearest-neighbour scan of the tenant's partition
            sql = (
                "SELECT e.message_id, knn.distance FROM ("
                f"SELECT rowid, distance FROM {search_schema.VEC_TABLE} WHERE embedding MATCH :v "
                "AND k = :n AND owner = :owner) AS knn "
                "CROSS JOIN embeddings e ON e.rowid = knn.rowid ORDER BY knn.distance"
            )
        else:  # the tenant's vectors alone: no row of messages is read for the ranking
            sql = (
                "SELECT e.message_id, vec_distance_cosine(e.vector, :v) AS d FROM embeddings e "
                "WHERE e.tenant_id = :t AND e.model = :model AND e.dims = :dims "
                "ORDER BY d LIMIT :n"
            )
        with db.connect() as conn:
            rows = conn.execute(sa.text(sql), _bind(dialect, params)).all()
        return [(_uuid(r[0]), 1.0 - float(r[1])) for r in rows]
    # the literal size lets the planner match the partial HNSW index (WHERE dims = 384)
    cast = f"::vector({dims})" if dims in INDEXED_DIMS else ""
    distance = f"(e.vector{cast} <=> CAST(:v AS vector{cast and f'({dims})'}))"
    if conditions or join:
        sql = (
            f"SELECT m.id, 1 - {distance} AS score{base} AND e.dims = {int(dims)}{conditions} "
            f"ORDER BY {distance} LIMIT :n"
        )
    else:  # the tenant's vectors alone: an embedding's tenant is its message's
        sql = (
            f"SELECT e.message_id, 1 - {distance} AS score FROM embeddings e "
            f"WHERE e.tenant_id = :t AND e.model = :model AND e.dims = {int(dims)} "
            f"ORDER BY {distance} LIMIT :n"
        )
    with _read(db) as conn:
        _hnsw_session(conn)
        hits = _ids(conn.execute(sa.text(sql), _bind(dialect, params)))
    return sorted(hits, key=lambda h: -h[1])  # relaxed order: sort the page


#: How many candidates an HNSW scan keeps (pgvector's ``hnsw.ef_search``, at least the
#: page size). bench/search.py measures recall@10 against an exact scan: see bench/README.md.
EF_SEARCH = 200


def _hnsw_session(conn: sa.Connection) -> None:
    """pgvector's settings for this connection's HNSW scans, once per database session:
    iterative scans (pgvector 0.8) keep walking the index until the filters let enough rows
    through, and ``ef_search`` candidates are kept. Session settings rather than ``SET
    LOCAL`` so that a search is one statement, with no transaction around it: each round
    trip to the server costs more than the index scan itself on a busy machine. Only HNSW
    scans read them, and this is the only one."""
    info = conn.connection.info
    if info.get("hnsw_ef_search") != EF_SEARCH:
        conn.execute(_HNSW_SETTINGS, {"ef": str(EF_SEARCH)})
        info["hnsw_ef_search"] = EF_SEARCH


_HNSW_SETTINGS = sa.text(
    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', false), "
    "set_config('hnsw.ef_search', :ef, false)"
)


@contextmanager
def _read(db: Database) -> Iterator[sa.Connection]:
    """A connection for one read statement. On PostgreSQL in autocommit mode: the statement
    is its own transaction (the same snapshot), without a BEGIN and a ROLLBACK around it."""
    with db.connect() as conn:
        if db.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


# --- reading the messages found ----------------------------------------------------------


def fetch(
    db: Database, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The messages with these ids, as the API shows them."""
    if not ids:
        return {}
    if db.dialect == "sqlite":
        # Without statistics SQLite would walk the tenant's index and test every row against
        # the list; the unary plus keeps it on the primary key, one lookup per id.
        same_tenant: sa.ColumnElement[bool] | sa.TextClause = sa.text(
            "+messages.tenant_id = :fetch_t"
        ).bindparams(fetch_t=tenant_id.hex)
    else:
        same_tenant = messages_table.c.tenant_id == tenant_id
    q = SELECT.where(messages_table.c.id.in_(ids), same_tenant)
    with _read(db) as conn:
        result = conn.execute(q)
        keys = tuple(result.keys())
        rows = [dict(zip(keys, row, strict=True)) for row in result]
    return {r["id"]: r for r in rows}


# --- the embed job's queue -----------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    id: uuid.UUID
    tenant_id: uuid.UUID
    content: str


def pending(
    db: Database,
    model: str,
    *,
    after: uuid.UUID | None = None,
    tenant_id: uuid.UUID | None = None,
    limit: int = 64,
) -> list[Pending]:
    """Messages with content and no vector of ``model``, in id (time) order after ``after``."""
    dialect = db.dialect
    params: dict[str, Any] = {"model": model, "n": limit}
    extra = ""
    if after is not None:
        extra += " AND m.id > :after"
        params["after"] = after
    if tenant_id is not None:
        extra += " AND m.tenant_id = :t"
        params["t"] = tenant_id
    sql = (
        "SELECT m.id, m.tenant_id, m.content FROM messages m "
        "WHERE m.content IS NOT NULL AND m.content <> ''"
        f"{extra} AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.tenant_id = m.tenant_id "
        "AND e.message_id = m.id AND e.model = :model) ORDER BY m.id LIMIT :n"
    )
    with db.connect() as conn:
        rows = conn.execute(sa.text(sql), _bind(dialect, params)).all()
    return [
        Pending(_uuid(r[0]), _uuid(r[1]), r[2])
        for r in rows  # text SQL reads SQLite's UUIDs as hex strings
    ]


def count_pending(db: Database, model: str, *, tenant_id: uuid.UUID | None = None) -> int:
    dialect = db.dialect
    params: dict[str, Any] = {"model": model}
    extra = ""
    if tenant_id is not None:
        extra = " AND m.tenant_id = :t"
        params["t"] = tenant_id
    sql = (
        "SELECT count(*) FROM messages m WHERE m.content IS NOT NULL AND m.content <> ''"
        f"{extra} AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.tenant_id = m.tenant_id "
        "AND e.message_id = m.id AND e.model = :model)"
    )
    with db.connect() as conn:
        return int(conn.execute(sa.text(sql), _bind(dialect, params)).scalar_one())


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def store_vectors(db: Database, model: str, items: Sequence[tuple[Pending, Any]]) -> int:
    """Store one vector per message (skipping a message deleted meanwhile, or one that
    another worker embedded first); answers how many were stored."""
    if not items:
        return 0
    dialect = db.dialect
    now = utcnow()
    rows = [
        _bind(
            dialect,
            {
                "id": new_id(),
                "t": p.tenant_id,
                "m": p.id,
                "model": model,
                "dims": len(vector),
                "v": _vector_param(dialect, vector),
                "at": now,
            },
        )
        for p, vector in items
    ]
    value = ":v" if dialect == "sqlite" else "CAST(:v AS vector)"
    verb = "INSERT OR IGNORE INTO" if dialect == "sqlite" else "INSERT INTO"
    tail = "" if dialect == "sqlite" else " ON CONFLICT DO NOTHING"
    sql = sa.text(
        f"{verb} embeddings (id, tenant_id, message_id, model, dims, vector, created_at) "
        f"SELECT :id, :t, :m, :model, :dims, {value}, :at WHERE EXISTS "
        f"(SELECT 1 FROM messages WHERE tenant_id = :t AND id = :m){tail}"
    )

    def work(conn: sa.Connection) -> int:
        result = conn.execute(sql, rows)
        return max(result.rowcount, 0)

    return db.run_write(work)


def forget_model(db: Database, model: str, *, tenant_id: uuid.UUID | None = None) -> int:
    """Delete the vectors of ``model`` (of one tenant, or all): ``reindex --force``."""
    params: dict[str, Any] = {"model": model}
    where = "model = :model"
    if tenant_id is not None:
        where += " AND tenant_id = :t"
        params["t"] = tenant_id
    sql = sa.text(f"DELETE FROM embeddings WHERE {where}")
    bound = _bind(db.dialect, params)
    return db.run_write(lambda conn: max(conn.execute(sql, bound).rowcount, 0))


def forget_contact(conn: sa.Connection, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> int:
    """In the caller's write transaction: delete the vectors of every message of the
    contact's conversations; answers how many.

    For the GDPR erase. The keyword index needs no call: clearing a message's content
    (``UPDATE messages SET content = NULL``) or deleting the message fires the FTS triggers
    on SQLite, which remove its entry (``secure-delete`` is on, so its terms leave the index
    at once); on PostgreSQL the generated ``content_tsv`` becomes empty with the content and
    the GIN index follows the row. Run ``VACUUM`` (PostgreSQL) or
    ``PRAGMA secure_delete`` plus a checkpoint (SQLite) for the old bytes to leave the files.
    """
    dialect = conn.dialect.name
    sql = sa.text(
        "DELETE FROM embeddings WHERE tenant_id = :t AND message_id IN "
        "(SELECT m.id FROM messages m JOIN conversations c "
        "ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id "
        "WHERE m.tenant_id = :t AND c.contact_id = :c)"
    )
    result = conn.execute(sql, _bind(dialect, {"t": tenant_id, "c": contact_id}))
    return max(result.rowcount, 0)


def forget_messages(
    conn: sa.Connection, tenant_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> int:
    """In the caller's write transaction: delete these messages' vectors."""
    if not message_ids:
        return 0
    table = cast(sa.Table, Embedding.__table__)
    result = conn.execute(
        sa.delete(table).where(
            table.c.tenant_id == tenant_id, table.c.message_id.in_(list(message_ids))
        )
    )
    return max(result.rowcount, 0)


def rebuild_keyword_index(db: Database) -> None:
    """Rebuild SQLite's FTS5 index from ``messages`` (after a table rebuild renumbered
    rowids); PostgreSQL's GIN index always follows its table, so nothing to do there."""
    if db.dialect != "sqlite":
        return
    db.run_write(
        lambda conn: conn.exec_driver_sql(
            f"INSERT INTO {search_schema.FTS_TABLE}({search_schema.FTS_TABLE}) VALUES ('rebuild')"
        )
    )
