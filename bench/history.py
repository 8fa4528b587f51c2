"""Conversation history benchmark: Threadline on SQLite against the tools agents use instead.

What is measured, on a temporary SQLite file per size N (total messages stored, half of them
in 100-message conversations and half in 1,000-message conversations):

1. append latency in-process: ``threadline.store.messages.append`` of one user message to a
   random 100-message conversation of a database already holding N messages, p50/p95/p99;
   baseline: raw SQL doing the same work (BEGIN IMMEDIATE, next seq, INSERT, COMMIT).
2. append latency over HTTP: the real server (``threadline serve`` in a subprocess) answering
   ``POST /v1/conversations/{id}/messages`` on one keep-alive connection of the standard
   library's ``http.client`` (the least a client can add); target p50 <= 5 ms. The same calls
   through ``httpx.Client`` are shown too: that client adds about a millisecond of its own.
   Also, informational: ``GET .../messages?latest=true&limit=20`` and ``.../messages/batch``.
3. batch import throughput: the N messages loaded with ``messages.append`` (one call per
   conversation for 100-message threads, batches of 1,000 for 1,000-message threads) against
   stdlib-style ``executemany`` into a simple indexed table in its own file. Both run in WAL
   mode with ``synchronous=FULL`` (Threadline's default) on the same SQLite (pysqlite3).
   Conversations are created before the clock starts. Target: Threadline >= 0.5x raw.
   Once, independent of N, the ceiling for that target: raw ``executemany`` of the same rows
   Threadline writes (the same columns and values) into Threadline's own table, against
   ``messages.append`` of the same batches.
4. "last 20 messages in order": ``messages.last(db, tenant, conversation, 20)`` against the raw
   indexed query, LangChain's ``SQLChatMessageHistory(...).messages[-20:]`` and LangGraph's
   ``SqliteSaver.get_tuple(...)`` sliced to the last 20, on threads of 100 and 1,000 messages.
   Targets: within 1.5x of raw; >= 10x faster than both LangChain and LangGraph on 1,000.
5. growth (once, independent of N): append time and bytes stored per message as one thread
   grows to 10, 100 and 1,000 messages; Threadline against a LangGraph ``SqliteSaver`` that
   stores one checkpoint (the whole message list) per appended message.

Run from the repository root, with the ``bench`` extra installed (``pip install -e '.[bench]'``):

    python bench/history.py --quick          # smoke run: N = 10,000, one to two minutes
    python bench/history.py                  # N = 100,000 and 1,000,000: about 10 minutes
    python bench/history.py --sizes 100000 --out /tmp/history.json

Prints a Rich table and writes JSON to bench/results/history.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import sqlite3 as stdlib_sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uuid_utils

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through the path set above
    Latency,
    Row,
    Timing,
    compare,
    console,
    cpu_reference,
    environment,
    faster,
    fmt_bytes,
    fmt_count,
    fmt_ms,
    fmt_rate,
    fsync_latency,
    message_texts,
    render,
    slower,
    timed_calls,
    write_json,
)

from threadline.store import conversations, messages, migrate, tenants
from threadline.store.database import Database

try:  # the SQLite Threadline itself uses (3.51 on Linux), so the raw baseline is like for like
    import pysqlite3.dbapi2 as sqlite
except ImportError:  # pragma: no cover
    import sqlite3 as sqlite

warnings.filterwarnings("ignore", message=".*langchain-community.*")

DEFAULT_SIZES = (100_000, 1_000_000)
QUICK_SIZE = 10_000
THREAD_LENGTHS = (100, 1000)  # half of N in threads of each length
IMPORT_BATCH = 1000
WINDOW = 20  # "last 20 messages"
SAMPLE_THREADS = 20  # threads of each length every system reads in the last-20 measure
GROWTH_POINTS = (10, 100, 1000)
RESULTS = Path(__file__).resolve().parent / "results" / "history.json"

RAW_SCHEMA = """
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX ix_messages_conversation_seq ON messages (conversation_id, seq);
"""
RAW_INSERT = (
    "INSERT INTO messages (id, conversation_id, seq, role, content, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
RAW_LAST = (
    "SELECT id, conversation_id, seq, role, content, created_at FROM messages"
    " WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?"
)
RAW_NEXT_SEQ = "SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE conversation_id = ?"
SAME_TABLE_LAST = (
    "SELECT * FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq DESC LIMIT ?"
)


@dataclass(frozen=True)
class Plan:
    """How much work each part does; ``--quick`` shrinks it."""

    appends: int = 2000
    http_appends: int = 2000
    http_batches: int = 20
    reads: int = 2000
    read_budget_s: float = 3.0
    growth_threads: int = 5

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            appends=300,
            http_appends=300,
            http_batches=5,
            reads=300,
            read_budget_s=1.0,
            growth_threads=1,
        )


@dataclass
class Loaded:
    """A Threadline database and its baselines, all holding the same N messages."""

    n: int
    folder: Path
    db: Database
    db_url: str
    db_path: Path
    tenant_id: uuid.UUID
    token: str
    raw: Any  # a pysqlite3 connection to the raw table's file
    threads: dict[int, list[uuid.UUID]] = field(default_factory=dict)
    import_s: dict[int, tuple[float, float]] = field(default_factory=dict)  # (threadline, raw)

    def contents(self, conversation: uuid.UUID, length: int) -> list[dict[str, str]]:
        return thread_items(self.threads[length].index(conversation), length)


# --- data -----------------------------------------------------------------------------

TEXTS = message_texts(997)  # a prime, so threads do not all start with the same text


def thread_items(thread_no: int, length: int, start: int = 0) -> list[dict[str, str]]:
    """Messages ``start .. length - 1`` of thread number ``thread_no``: user, assistant, ..."""
    base = thread_no * 7919
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": TEXTS[(base + i) % len(TEXTS)]}
        for i in range(start, length)
    ]


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sqlite_connect(path: Path, module: Any = sqlite) -> Any:
    conn = module.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def stored_bytes(conn: Any) -> int:
    """Bytes the database occupies once its WAL is checkpointed (free pages excluded).

    A PASSIVE checkpoint, not TRUNCATE: a truncated WAL makes the next commits grow the file
    again, which costs extra fsync work and would slow whatever is timed next.
    """
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return (pages - free) * size


def raw_insert(conn: Any, conversation_hex: str, first_seq: int, items: Sequence[dict]) -> None:
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = [
        (uuid_utils.uuid7().hex, conversation_hex, first_seq + i, m["role"], m["content"], now)
        for i, m in enumerate(items)
    ]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(RAW_INSERT, rows)
    conn.execute("COMMIT")


def raw_append_one(conn: Any, conversation_hex: str, item: dict[str, str]) -> None:
    """The same unit of work as a Threadline append, in plain SQL: lock, next seq, insert."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    conn.execute("BEGIN IMMEDIATE")
    seq = conn.execute(RAW_NEXT_SEQ, (conversation_hex,)).fetchone()[0]
    row = (uuid_utils.uuid7().hex, conversation_hex, seq, item["role"], item["content"], now)
    conn.execute(RAW_INSERT, row)
    conn.execute("COMMIT")


def fetch_dicts(conn: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    rows.reverse()
    return rows


# --- 3. batch import --------------------------------------------------------------------


def fresh_threadline(db_path: Path) -> tuple[Database, uuid.UUID, str]:
    """A migrated Threadline database at ``db_path``: its handle, the default tenant and its
    admin key."""
    db = Database.from_url(f"sqlite:///{db_path}")
    migrate.upgrade(db)
    token = tenants.bootstrap(db)
    assert token is not None, "the bench needs an empty file"
    return db, tenants.get_tenant(db, "default").id, token


def load(folder: Path, n: int) -> Loaded:
    """Create the Threadline and raw databases and import N messages into both, timed."""
    db_path = folder / "threadline.db"
    db_url = f"sqlite:///{db_path}"
    db, tenant_id, token = fresh_threadline(db_path)
    raw = sqlite_connect(folder / "raw.db")
    raw.executescript(RAW_SCHEMA)
    loaded = Loaded(n, folder, db, db_url, db_path, tenant_id, token, raw)

    for length in THREAD_LENGTHS:
        count = n // len(THREAD_LENGTHS) // length
        started = time.perf_counter()
        ids = [conversations.create(db, tenant_id, {"channel": "api"}).id for _ in range(count)]
        console.log(
            f"N={fmt_count(n)}: created {count:,} conversations in "
            f"{time.perf_counter() - started:.1f} s (not timed); importing {length}-message threads"
        )
        loaded.threads[length] = ids
        tl_s = raw_s = 0.0
        for thread_no, conversation in enumerate(ids):
            items = thread_items(thread_no, length)
            for first, batch in enumerate(chunks(items, IMPORT_BATCH)):
                t0 = time.perf_counter()
                messages.append(db, tenant_id, conversation, batch)
                t1 = time.perf_counter()
                raw_insert(raw, conversation.hex, first * IMPORT_BATCH + 1, batch)
                t2 = time.perf_counter()
                tl_s += t1 - t0
                raw_s += t2 - t1
        loaded.import_s[length] = (tl_s, raw_s)
        console.log(f"N={fmt_count(n)}: imported in {tl_s:.1f} s (Threadline), {raw_s:.1f} s (raw)")
    return loaded


def import_rows(loaded: Loaded) -> list[Row]:
    rows = []
    for length, (tl_s, raw_s) in loaded.import_s.items():
        count = loaded.n // len(THREAD_LENGTHS)
        tl_rate, raw_rate = count / tl_s, count / raw_s
        ratio = tl_rate / raw_rate
        rows.append(
            Row(
                measure="batch import: messages/s",
                size=f"N={fmt_count(loaded.n)}, {length}/thread",
                threadline=fmt_rate(tl_rate),
                baseline=f"raw executemany {fmt_rate(raw_rate)}",
                ratio=f"{ratio:.2f}x of raw",
                target=">= 0.5x of raw",
                met=ratio >= 0.5,
                data={
                    "n": loaded.n,
                    "thread_length": length,
                    "messages": count,
                    "batch": min(length, IMPORT_BATCH),
                    "threadline_msgs_per_s": tl_rate,
                    "raw_msgs_per_s": raw_rate,
                },
            )
        )
    return rows


CEILING_THREADS = 10  # conversations of 1,000 messages per side


def import_ceiling_rows(folder: Path) -> list[Row]:
    """Batch import against raw executemany of the very rows Threadline writes, into
    Threadline's own table (foreign keys on, conversation counters moved in the same
    transaction): the most any code could get out of this schema on this SQLite."""
    folder.mkdir()
    db_path = folder / "threadline.db"
    db, tenant, _ = fresh_threadline(db_path)
    ids = [
        conversations.create(db, tenant, {"channel": "api"}).id for _ in range(2 * CEILING_THREADS)
    ]
    raw = sqlite_connect(db_path)
    raw.execute("PRAGMA foreign_keys=ON")
    tl_s = raw_s = 0.0
    for i in range(CEILING_THREADS):  # taking turns, so a slow spell falls on both
        items = thread_items(i, IMPORT_BATCH)
        t0 = time.perf_counter()
        messages.append(db, tenant, ids[2 * i], items)
        t1 = time.perf_counter()
        raw_same_table_insert(raw, tenant, ids[2 * i + 1], items)
        t2 = time.perf_counter()
        tl_s, raw_s = tl_s + t1 - t0, raw_s + t2 - t1
    stored = raw.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert stored == 2 * CEILING_THREADS * IMPORT_BATCH, stored
    raw.close()
    db.dispose()
    count = CEILING_THREADS * IMPORT_BATCH
    tl_rate, raw_rate = count / tl_s, count / raw_s
    console.log("batch import ceiling measured")
    return [
        Row(
            measure="batch import: messages/s",
            size=f"{fmt_count(count)} msgs, {IMPORT_BATCH}/batch",
            threadline=fmt_rate(tl_rate),
            baseline=f"raw executemany, same rows into Threadline's table {fmt_rate(raw_rate)}",
            ratio=f"{tl_rate / raw_rate:.2f}x of raw",
            data={
                "messages": count,
                "batch": IMPORT_BATCH,
                "threadline_msgs_per_s": tl_rate,
                "raw_same_table_msgs_per_s": raw_rate,
            },
        )
    ]


RAW_SAME_COLUMNS = (
    "id, tenant_id, conversation_id, seq, role, sender_type, direction, message_type, "
    "content, is_flagged, occurred_at, created_at"
)
RAW_SAME_INSERT = f"INSERT INTO messages ({RAW_SAME_COLUMNS}) VALUES ({', '.join('?' * 12)})"
RAW_SAME_MOVE = (
    "UPDATE conversations SET message_count = ?, last_message_at = ?, last_activity_at = ?, "
    "updated_at = ?, status = 'waiting' WHERE tenant_id = ? AND id = ?"
)


def raw_same_table_insert(
    conn: Any, tenant: uuid.UUID, conversation: uuid.UUID, items: Sequence[dict[str, str]]
) -> None:
    """What ``messages.append`` stores for these items, as the values it stores them as."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = [
        (
            uuid_utils.uuid7().hex,
            tenant.hex,
            conversation.hex,
            seq,
            m["role"],
            "contact" if m["role"] == "user" else "agent",
            "inbound" if m["role"] == "user" else "outbound",
            "text",
            m["content"],
            0,
            now,
            now,
        )
        for seq, m in enumerate(items, start=1)
    ]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(RAW_SAME_INSERT, rows)
    conn.execute(RAW_SAME_MOVE, (len(rows), now, now, now, tenant.hex, conversation.hex))
    conn.execute("COMMIT")


def storage_rows(loaded: Loaded, langchain_path: Path) -> list[Row]:
    with open_sqlite(loaded.db_path) as conn:
        tl = stored_bytes(conn) / loaded.n
    raw = stored_bytes(loaded.raw) / loaded.n
    with open_sqlite(langchain_path) as conn:
        lc = stored_bytes(conn) / loaded.n
    return [
        Row(
            measure="storage: bytes per message (whole file)",
            size=f"N={fmt_count(loaded.n)}",
            threadline=fmt_bytes(tl),
            baseline=f"raw table {fmt_bytes(raw)}; LangChain table {fmt_bytes(lc)}",
            ratio=f"{tl / raw:.2f}x raw",
            data={"n": loaded.n, "threadline": tl, "raw": raw, "langchain_sql": lc},
        )
    ]


@contextmanager
def open_sqlite(path: Path) -> Iterator[Any]:
    conn = sqlite.connect(str(path), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


# --- 4. last 20 in order ----------------------------------------------------------------


@dataclass
class Competitors:
    """LangChain and LangGraph stores holding the sample threads (and LangChain also all N)."""

    langchain_full: dict[uuid.UUID, Any]  # session -> SQLChatMessageHistory on the N-row table
    langchain_small: dict[uuid.UUID, Any]  # the same sessions in a table holding only them
    langgraph: Any  # SqliteSaver
    langchain_full_path: Path


def to_langchain(item: dict[str, str], *, with_id: bool = False) -> Any:
    """The LangChain message for an item; LangGraph's add_messages reducer gives each an id."""
    from langchain_core.messages import AIMessage, HumanMessage

    cls = HumanMessage if item["role"] == "user" else AIMessage
    return cls(content=item["content"], id=str(uuid.uuid4()) if with_id else None)


def build_competitors(loaded: Loaded, samples: dict[int, list[uuid.UUID]]) -> Competitors:
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from langchain_core.messages import message_to_dict
    from langgraph.checkpoint.sqlite import SqliteSaver
    from sqlalchemy import create_engine

    started = time.perf_counter()
    # LangChain, table holding all N messages (as a real deployment's would). Rows are written
    # with executemany in exactly the format add_messages writes, to keep set-up fast.
    full_path = loaded.folder / "langchain_full.db"
    full_engine = create_engine(f"sqlite:///{full_path}")
    SQLChatMessageHistory("setup", connection=full_engine)  # creates the table
    stored = {
        (role, text): json.dumps(message_to_dict(to_langchain({"role": role, "content": text})))
        for role in ("user", "assistant")
        for text in TEXTS
    }
    conn = stdlib_sqlite3.connect(full_path, isolation_level=None)
    conn.execute("BEGIN")
    for length, ids in loaded.threads.items():
        for thread_no, conversation in enumerate(ids):
            rows = [
                (conversation.hex, stored[m["role"], m["content"]])
                for m in thread_items(thread_no, length)
            ]
            conn.executemany("INSERT INTO message_store (session_id, message) VALUES (?, ?)", rows)
    conn.execute("COMMIT")
    conn.close()

    # LangChain, table holding only the sample threads, written through its own API.
    small_engine = create_engine(f"sqlite:///{loaded.folder / 'langchain_small.db'}")
    # LangGraph: one checkpoint per sample thread holding the whole message list.
    lg_conn = sqlite_connect(loaded.folder / "langgraph.db", stdlib_sqlite3)
    saver = SqliteSaver(lg_conn)
    saver.setup()

    full, small = {}, {}
    for length, ids in samples.items():
        for conversation in ids:
            items = loaded.contents(conversation, length)
            full[conversation] = SQLChatMessageHistory(conversation.hex, connection=full_engine)
            small[conversation] = SQLChatMessageHistory(conversation.hex, connection=small_engine)
            small[conversation].add_messages([to_langchain(m) for m in items])
            graph_messages = [to_langchain(m, with_id=True) for m in items]
            langgraph_put(saver, conversation.hex, graph_messages, len(items))
    console.log(f"built LangChain and LangGraph stores in {time.perf_counter() - started:.1f} s")
    return Competitors(full, small, saver, full_path)


def langgraph_put(
    saver: Any, thread: str, history: list[Any], step: int, parent: Any = None
) -> Any:
    """Store the state after ``step`` messages the way a graph checkpoint does."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=step))
    checkpoint["channel_values"] = {"messages": history}
    checkpoint["channel_versions"] = {"messages": step}
    config = parent or {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    return saver.put(config, checkpoint, {"source": "loop", "step": step}, {"messages": step})


def langgraph_last(saver: Any, thread: str, n: int) -> list[Any]:
    state = saver.get_tuple({"configurable": {"thread_id": thread}})
    return state.checkpoint["channel_values"]["messages"][-n:]


def last_rows(loaded: Loaded, plan: Plan, rng: random.Random) -> list[Row]:
    samples = {
        length: rng.sample(ids, min(SAMPLE_THREADS, len(ids)))
        for length, ids in loaded.threads.items()
    }
    comp = build_competitors(loaded, samples)
    same_table = sqlite.connect(str(loaded.db_path), isolation_level=None)
    db, tenant = loaded.db, loaded.tenant_id

    systems: dict[str, Callable[[uuid.UUID], list[Any]]] = {
        "threadline": lambda c: messages.last(db, tenant, c, WINDOW),
        "raw": lambda c: fetch_dicts(loaded.raw, RAW_LAST, (c.hex, WINDOW)),
        "same_table": lambda c: fetch_dicts(
            same_table, SAME_TABLE_LAST, (tenant.hex, c.hex, WINDOW)
        ),
        "langchain": lambda c: comp.langchain_small[c].messages[-WINDOW:],
        "langchain_full": lambda c: comp.langchain_full[c].messages[-WINDOW:],
        "langgraph": lambda c: langgraph_last(comp.langgraph, c.hex, WINDOW),
    }
    rows = []
    for length, ids in samples.items():
        for conversation in ids:  # every system answers with the same 20 contents
            expected = [m["content"] for m in loaded.contents(conversation, length)[-WINDOW:]]
            for name, fn in systems.items():
                got = [m["content"] if isinstance(m, dict) else m.content for m in fn(conversation)]
                assert got == expected, f"{name} returned other messages for {conversation}"
        order = [rng.choice(ids) for _ in range(plan.reads)]
        timings = compare(systems, order, budget_s=plan.read_budget_s)
        lat = {name: Latency.of(t) for name, t in timings.items()}
        rows += last_table_rows(loaded.n, length, lat)
        console.log(f"N={fmt_count(loaded.n)}: last-20 on {length}-message threads measured")
    rows += storage_rows(loaded, comp.langchain_full_path)
    same_table.close()
    comp.langgraph.conn.close()
    for history in [*comp.langchain_full.values(), *comp.langchain_small.values()]:
        history.engine.dispose()
    return rows


def last_table_rows(n: int, length: int, lat: dict[str, Latency]) -> list[Row]:
    tl = lat["threadline"]
    size = f"N={fmt_count(n)}, {length}/thread"
    data = {"n": n, "thread_length": length} | {k: vars(v) for k, v in lat.items()}
    strict = length >= 1000
    rows = []
    for key, label in (
        ("raw", "raw SQL, simple table (6 cols as dicts)"),
        ("same_table", "raw SQL, Threadline's table (36 cols as dicts)"),
    ):
        ratio = tl.p50 / lat[key].p50
        rows.append(
            Row(
                measure="last 20 in order: p50",
                size=size,
                threadline=fmt_ms(tl.p50),
                baseline=f"{label} {fmt_ms(lat[key].p50)}",
                ratio=slower(ratio),
                target="<= 1.5x raw",
                met=ratio <= 1.5,
                data=data if key == "raw" else {},
            )
        )
    for key, label in (
        ("langchain", "LangChain SQLChatMessageHistory"),
        ("langchain_full", "LangChain, its table holding all N"),
        ("langgraph", "LangGraph SqliteSaver.get_tuple"),
    ):
        speedup = lat[key].p50 / tl.p50
        rows.append(
            Row(
                measure="last 20 in order: p50",
                size=size,
                threadline=fmt_ms(tl.p50),
                baseline=f"{label} {fmt_ms(lat[key].p50)}",
                ratio=faster(speedup),
                target=">= 10x faster" if strict else "—",
                met=speedup >= 10 if strict else None,
            )
        )
    return rows


# --- 1. append latency in-process --------------------------------------------------------


def append_rows(loaded: Loaded, plan: Plan, rng: random.Random) -> tuple[list[Row], Latency]:
    db, tenant = loaded.db, loaded.tenant_id
    targets = [rng.choice(loaded.threads[THREAD_LENGTHS[0]]) for _ in range(plan.appends)]
    item = {"role": "user", "content": TEXTS[0]}
    for conversation in targets[:20]:  # warm up both paths
        messages.append(db, tenant, conversation, [item])
        raw_append_one(loaded.raw, conversation.hex, item)
    timings = compare(
        {
            "threadline": lambda c: messages.append(db, tenant, c, [item]),
            "raw": lambda c: raw_append_one(loaded.raw, c.hex, item),
        },
        targets,
    )
    tl, raw = Latency.of(timings["threadline"]), Latency.of(timings["raw"])
    ratio = tl.p50 / raw.p50
    row = Row(
        measure="append 1 message, in-process: p50 / p95 / p99",
        size=f"N={fmt_count(loaded.n)}",
        threadline=f"{tl.short()} (CPU {fmt_ms(tl.cpu_mean)})",
        baseline=f"raw SQL {raw.short()} (CPU {fmt_ms(raw.cpu_mean)})",
        ratio=slower(ratio),
        data={"n": loaded.n, "threadline": vars(tl), "raw": vars(raw)},
    )
    console.log(f"N={fmt_count(loaded.n)}: in-process appends measured")
    return [row], tl


# --- 2. over HTTP ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def threadline_server(db_url: str, folder: Path) -> Iterator[str]:
    """Run ``threadline serve`` on a free port and yield its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = os.environ | {"THREADLINE_DATABASE_URL": db_url, "THREADLINE_RATE_LIMIT": "0"}
    cmd = [sys.executable, "-m", "threadline", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"threadline serve exited with {proc.returncode}:\n{tail}")
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("threadline serve did not answer within 60 s") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {response.text[:500]}"
        )
    return response.json()


def http_rows(
    loaded: Loaded, plan: Plan, rng: random.Random, in_process: Latency, last_p50_ms: float
) -> list[Row]:
    size = f"N={fmt_count(loaded.n)}"
    loaded.db.dispose()  # the server owns the file now
    try:
        with threadline_server(loaded.db_url, loaded.folder) as base:
            return measure_http(base, loaded, plan, rng, in_process, last_p50_ms)
    except (RuntimeError, httpx.HTTPError) as exc:
        console.log(f"[red]HTTP part failed: {exc}[/]")
        return [
            Row(
                measure="append 1 message, over HTTP: p50 / p95 / p99",
                size=size,
                threadline=f"not run: {str(exc).splitlines()[0][:60]}",
                target="p50 <= 5 ms",
                met=False,
                data={"n": loaded.n, "error": str(exc)},
            )
        ]


def measure_http(
    base: str,
    loaded: Loaded,
    plan: Plan,
    rng: random.Random,
    in_process: Latency,
    last_p50_ms: float,
) -> list[Row]:
    size = f"N={fmt_count(loaded.n)}"
    headers = {"Authorization": f"Bearer {loaded.token}"}
    short_threads = loaded.threads[THREAD_LENGTHS[0]]
    targets = [rng.choice(short_threads) for _ in range(plan.http_appends)]
    with StdlibClient(base, headers) as plain:
        for conversation in targets[:50]:  # warm up
            plain.append(conversation)
        appends = Latency.of(timed_calls(plain.append, targets))
        health = Latency.of(timed_calls(lambda _: plain.get("/healthz"), range(plan.http_appends)))
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        check_contract(client)
        for conversation in targets[:50]:
            http_append(client, conversation)
        httpx_appends = Latency.of(timed_calls(lambda c: http_append(client, c), targets))
        console.log(f"N={fmt_count(loaded.n)}: HTTP appends measured")
        long_threads = loaded.threads[THREAD_LENGTHS[-1]]
        reads = [rng.choice(long_threads) for _ in range(plan.reads)]
        latest = Latency.of(
            timed_calls(lambda c: http_latest(client, c), reads, budget_s=plan.read_budget_s)
        )
        batch_rate = http_batch_rate(client, plan.http_batches)

    tl_s, _ = loaded.import_s[THREAD_LENGTHS[-1]]
    in_process_rate = loaded.n // len(THREAD_LENGTHS) / tl_s
    return [
        Row(
            measure="append 1 message, over HTTP: p50 / p95 / p99",
            size=size,
            threadline=appends.short(),
            baseline=(
                f"in-process p50 {fmt_ms(in_process.p50)}; GET /healthz p50 {fmt_ms(health.p50)}"
            ),
            ratio=f"+{fmt_ms(appends.p50 - in_process.p50)} for HTTP",
            target="p50 <= 5 ms",
            met=appends.p50 <= 5.0,
            data={
                "n": loaded.n,
                "client": "http.client, keep-alive",
                "http": vars(appends),
                "in_process": vars(in_process),
                "healthz": vars(health),
            },
        ),
        Row(
            measure="append 1 message, over HTTP with httpx: p50 / p95 / p99",
            size=size,
            threadline=httpx_appends.short(),
            baseline=f"http.client p50 {fmt_ms(appends.p50)}",
            ratio=f"+{fmt_ms(httpx_appends.p50 - appends.p50)} for httpx",
            data={"n": loaded.n, "client": "httpx.Client", "http": vars(httpx_appends)},
        ),
        Row(
            measure="last 20 over HTTP (latest=true): p50",
            size=f"{size}, {THREAD_LENGTHS[-1]}/thread",
            threadline=fmt_ms(latest.p50),
            baseline=f"in-process p50 {fmt_ms(last_p50_ms)}",
            ratio=f"+{fmt_ms(latest.p50 - last_p50_ms)} for HTTP",
            data={"n": loaded.n, "client": "httpx.Client", "http": vars(latest)},
        ),
        Row(
            measure="batch import over HTTP: messages/s",
            size=f"{size}, {IMPORT_BATCH}/request",
            threadline=fmt_rate(batch_rate),
            baseline=f"in-process {fmt_rate(in_process_rate)}",
            ratio=f"{batch_rate / in_process_rate:.2f}x in-process",
            data={"n": loaded.n, "http_msgs_per_s": batch_rate, "in_process": in_process_rate},
        ),
    ]


class StdlibClient:
    """One keep-alive connection of the standard library's HTTP client: the least overhead
    a Python client can add, so the latency measured is the server's."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        url = httpx.URL(base)
        self.conn = http.client.HTTPConnection(url.host, url.port, timeout=30)
        self.headers = headers | {"Content-Type": "application/json"}
        self.body = json.dumps({"role": "user", "content": TEXTS[2]})

    def __enter__(self) -> StdlibClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def _call(self, method: str, path: str, body: str | None, status: int) -> bytes:
        self.conn.request(method, path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != status:
            raise RuntimeError(f"{method} {path} answered {response.status}: {data[:500]!r}")
        return data

    def get(self, path: str) -> bytes:
        return self._call("GET", path, None, 200)

    def append(self, conversation: uuid.UUID) -> None:
        answer = json.loads(
            self._call("POST", f"/v1/conversations/{conversation}/messages", self.body, 201)
        )
        assert answer["seq"] >= 1, answer


def check_contract(client: httpx.Client) -> None:
    """The calls this benchmark relies on answer as the contract says, before any timing."""
    created = expect(client.post("/v1/conversations", json={"channel": "api"}), 201)
    body = {"role": "user", "content": TEXTS[1]}
    first = expect(client.post(f"/v1/conversations/{created['id']}/messages", json=body), 201)
    assert first["seq"] == 1 and first["id"], first


def http_append(client: httpx.Client, conversation: uuid.UUID) -> None:
    body = {"role": "user", "content": TEXTS[2]}
    expect(client.post(f"/v1/conversations/{conversation}/messages", json=body), 201)


def http_latest(client: httpx.Client, conversation: uuid.UUID) -> None:
    params = {"latest": "true", "limit": WINDOW}
    page = expect(client.get(f"/v1/conversations/{conversation}/messages", params=params), 200)
    seqs = [m["seq"] for m in page["data"]]
    assert len(seqs) == WINDOW and seqs == sorted(seqs), seqs


def http_batch_rate(client: httpx.Client, batches: int) -> float:
    """Messages/s for batches of 1,000 posted to new conversations, one request each."""
    batch = thread_items(3, IMPORT_BATCH)
    new = [
        expect(client.post("/v1/conversations", json={"channel": "api"}), 201)["id"]
        for _ in range(batches)
    ]
    started = time.perf_counter()
    for conversation in new:
        path = f"/v1/conversations/{conversation}/messages/batch"
        answer = expect(client.post(path, json={"messages": batch}), 201)
        assert len(answer["data"]) == len(batch)
    return batches * len(batch) / (time.perf_counter() - started)


# --- 5. growth ---------------------------------------------------------------------------


def growth_rows(folder: Path, plan: Plan) -> list[Row]:
    """Append time and bytes per message as threads grow, Threadline against LangGraph."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    folder.mkdir()
    db_path = folder / "threadline.db"
    db, tenant, _ = fresh_threadline(db_path)
    # Some history first, so pages are in their steady state rather than freshly allocated.
    warm = conversations.create(db, tenant, {"channel": "api"}).id
    messages.append(db, tenant, warm, thread_items(0, 2000))
    threads = [
        conversations.create(db, tenant, {"channel": "api"}).id for _ in range(plan.growth_threads)
    ]
    meter = sqlite.connect(str(db_path), isolation_level=None)

    saver = SqliteSaver(sqlite_connect(folder / "langgraph.db", stdlib_sqlite3))
    saver.setup()
    graph_items = thread_items(1, GROWTH_POINTS[-1])
    history: list[Any] = []
    parent = None

    rows = []
    length = 0
    for point in GROWTH_POINTS:
        window_start = point - 10
        if window_start > length:  # grow to just before the window, untimed
            for conversation in threads:
                messages.append(db, tenant, conversation, thread_items(1, window_start, length))
            for step in range(length, window_start):
                history.append(to_langchain(graph_items[step], with_id=True))
                parent = langgraph_put(saver, "growth", history, step + 1, parent)
            length = window_start

        tl_before, lg_before = stored_bytes(meter), stored_bytes(saver.conn)
        tl_times, lg_times = Timing(), Timing()
        for step in range(length, point):
            item = thread_items(1, step + 1, step)
            tl_times.extend(
                timed_calls(lambda c, it=item: messages.append(db, tenant, c, it), threads)
            )
            history.append(to_langchain(graph_items[step], with_id=True))
            t0 = time.perf_counter()
            parent = langgraph_put(saver, "growth", history, step + 1, parent)
            lg_times.durations.append(time.perf_counter() - t0)
        length = point
        tl_bytes = (stored_bytes(meter) - tl_before) / (10 * len(threads))
        lg_bytes = (stored_bytes(saver.conn) - lg_before) / 10
        tl, lg = Latency.of(tl_times), Latency.of(lg_times)
        rows += [
            Row(
                measure="growth: append time p50",
                size=f"thread at {point} msgs",
                threadline=fmt_ms(tl.p50),
                baseline=f"LangGraph put (1 snapshot/msg) {fmt_ms(lg.p50)}",
                ratio=faster(lg.p50 / tl.p50),
                data={"thread_length": point, "threadline": vars(tl), "langgraph": vars(lg)},
            ),
            Row(
                measure="growth: bytes stored per appended message",
                size=f"thread at {point} msgs",
                threadline=fmt_bytes(tl_bytes),
                baseline=f"LangGraph {fmt_bytes(lg_bytes)}",
                ratio=f"{lg_bytes / tl_bytes:,.1f}x fewer bytes",
                data={"thread_length": point, "threadline": tl_bytes, "langgraph": lg_bytes},
            ),
        ]
        console.log(f"growth: thread length {point} measured")
    meter.close()
    saver.conn.close()
    db.dispose()
    return rows


# --- main --------------------------------------------------------------------------------


def parse_count(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1000, "m": 1_000_000}.get(text[-1:], 1)
    value = int(float(text[:-1]) * scale) if scale > 1 else int(text)
    if value < 2 * max(THREAD_LENGTHS):
        raise argparse.ArgumentTypeError(f"sizes must be at least {2 * max(THREAD_LENGTHS)}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [parse_count(p) for p in s.split(",")],
        default=list(DEFAULT_SIZES),
        help="total messages loaded, comma-separated (default 100000,1000000; 100k and 1M work)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: N={QUICK_SIZE:,} and fewer samples"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--seed", type=int, default=7, help="random seed for thread choice")
    return parser.parse_args(argv)


NOTES = (
    "All SQLite files are WAL with synchronous=FULL (Threadline's default): Threadline and raw "
    "on pysqlite3's SQLite, LangChain/LangGraph on the stdlib sqlite3 they use.",
    "raw = pysqlite3 on a table (id, conversation_id, seq, role, content, created_at) with a "
    "unique index on (conversation_id, seq); one transaction per batch, like Threadline.",
    "batch import, same rows into Threadline's table: raw executemany of exactly the 12 values "
    "Threadline stores per message (its 36-column table keeps 4 foreign keys, 7 checks and 5 "
    "indexes), plus the conversation-counter update: the ceiling for any code on this schema.",
    "HTTP append: one keep-alive connection of the standard library's http.client; the httpx "
    "row repeats the calls through httpx.Client, whose own overhead shows in its ratio.",
    "last 20: Threadline returns 36 typed columns per message as dicts (UUIDs, datetimes, enums, "
    "JSON decoded); raw SQL returns dicts of untyped column values; LangChain returns all "
    "messages as BaseMessage objects (sliced to 20); LangGraph loads the whole checkpoint.",
    "LangGraph is driven through SqliteSaver.put/get_tuple directly: one snapshot per message; "
    "a compiled StateGraph writes about 3 snapshots per invoke, so this is its best case.",
    "Latencies are per call; 'a / b / c' is p50 / p95 / p99. Growth: one message per call, "
    "roles alternating, so each Threadline append also stores a status_changed event.",
)


PACKAGES = (
    "threadline",
    "sqlalchemy",
    "pysqlite3-binary",
    "fastapi",
    "uvicorn",
    "langchain-community",
    "langchain-core",
    "langgraph",
    "langgraph-checkpoint-sqlite",
)


def machine_state(folder: Path) -> dict[str, Any]:
    """What the numbers depend on besides the code: disk commit cost, CPU speed, other load."""
    return {
        "fsync_16k_p50_ms": fsync_latency(folder),
        "python_loop_1m_ms": cpu_reference(),
        "loadavg": os.getloadavg(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    sizes = [QUICK_SIZE] if args.quick else args.sizes
    rng = random.Random(args.seed)
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
        before = machine_state(Path(tmp))
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            loaded = load(folder, n)
            rows += import_rows(loaded)
            reads = last_rows(loaded, plan, rng)
            appends, in_process = append_rows(loaded, plan, rng)
            rows += appends
            rows += http_rows(loaded, plan, rng, in_process, last_p50(reads))
            rows += reads
            loaded.raw.close()
            loaded.db.dispose()
        rows += import_ceiling_rows(Path(tmp) / "ceiling")
        rows += growth_rows(Path(tmp) / "growth", plan)
        after = machine_state(Path(tmp))
    wall = time.perf_counter() - started
    rows = sort_rows(rows)
    machine = (
        f"Machine, before / after the run: {os.cpu_count()} CPUs; fsync of 16 kB p50 "
        f"{before['fsync_16k_p50_ms']:.2f} / {after['fsync_16k_p50_ms']:.2f} ms; 1M-iteration "
        f"Python loop {before['python_loop_1m_ms']:.0f} / {after['python_loop_1m_ms']:.0f} ms; "
        f"load average {before['loadavg'][0]:.1f} / {after['loadavg'][0]:.1f}."
    )
    render(
        rows,
        title=f"Threadline history benchmark (wall time {wall:.0f} s)",
        notes=(*NOTES, machine),
    )
    write_json(
        args.out,
        {
            "benchmark": "history",
            "command": " ".join(["python", "bench/history.py", *(argv or sys.argv[1:])]),
            "finished_at": datetime.now(UTC).isoformat(),
            "wall_s": wall,
            "sizes": sizes,
            "quick": args.quick,
            "notes": NOTES,
            "environment": environment(PACKAGES)
            | {"sqlite": sqlite.sqlite_version, "stdlib_sqlite": stdlib_sqlite3.sqlite_version},
            "machine": {"before": before, "after": after},
        },
        rows,
    )
    console.print(f"wrote {args.out}")
    return 0


MEASURE_ORDER = (
    "append 1 message, in-process",
    "append 1 message, over HTTP",
    "batch import:",
    "batch import over HTTP",
    "last 20 in order",
    "last 20 over HTTP",
    "storage",
    "growth: append",
    "growth: bytes",
)


def sort_rows(rows: list[Row]) -> list[Row]:
    """Group rows by measure (stable, so sizes keep their order within a measure)."""

    def rank(row: Row) -> int:
        return next(i for i, p in enumerate(MEASURE_ORDER) if row.measure.startswith(p))

    return sorted(rows, key=rank)


def last_p50(rows: Sequence[Row]) -> float:
    """Threadline's in-process last-20 p50 on the longest threads, from the last-20 rows."""
    longest = [r for r in rows if r.data.get("thread_length") == THREAD_LENGTHS[-1]]
    return float(longest[0].data["threadline"]["p50"])


if __name__ == "__main__":
    raise SystemExit(main())
