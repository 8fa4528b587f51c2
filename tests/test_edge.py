"""The HTTP edge: database errors answered by their cause, a read-only database, slow and
broken clients, protocol errors in the API's JSON shape, paged events, query models,
request ids and the app's lifespan."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from conftest import TenantKey, create_pg_database, make_tenant
from live import LiveServer
from threadline.api.app import create_app
from threadline.api.errors import database_error
from threadline.domain import errors
from threadline.domain.enums import EventType
from threadline.settings import Settings
from threadline.store import Database, migrate
from threadline.store.models import ConversationEvent
from threadline.store.types import utcnow

try:  # the SQLite library the app uses: another copy in the process would not see its locks
    import pysqlite3.dbapi2 as app_sqlite
except ImportError:  # pragma: no cover - platforms without the wheel
    import sqlite3 as app_sqlite


def _settings(url: str, **more: Any) -> Settings:
    return Settings(database_url=url, environment="test", log_level="warning", **more)


@contextmanager
def _client(url: str, db: Database, key: TenantKey | None = None) -> Iterator[TestClient]:
    headers = key.headers if key else {}
    app = create_app(_settings(url), db)
    with TestClient(app, headers=headers, raise_server_exceptions=False) as c:
        yield c


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json", r.headers
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, error
    return error


# --- database errors by their cause -------------------------------------------------------


def _short_busy_timeout(db: Database) -> None:
    """SQLite waits 30 s for a lock by default; the test waits 0.2 s (runs after our pragmas)."""

    @event.listens_for(db.engine, "connect")
    def _busy(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=200")


def test_a_write_that_times_out_on_the_lock_is_503_busy(
    backend: str, db_url: str, db: Database, tenant: TenantKey
) -> None:
    """Another writer holds the lock past the timeout: 503 database_busy with Retry-After,
    nothing stored, and the same request succeeds once the lock is gone."""
    with _client(db_url, db, tenant) as api:
        conv = api.post("/v1/conversations", json={"contact": {"name": "Ada"}}).json()
    if backend == "sqlite":
        app_db = Database.from_url(db_url)
        _short_busy_timeout(app_db)
        holder: Any = app_sqlite.connect(sa.make_url(db_url).database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        send = lambda c: c.post("/v1/contacts", json={"name": "Bo", "phone": "+14155550123"})  # noqa: E731
    else:
        url = sa.make_url(db_url).update_query_dict({"options": "-c lock_timeout=200"})
        app_db = Database.from_url(url)
        holder = psycopg.connect(
            sa.make_url(db_url).set(drivername="postgresql").render_as_string(False)
        )
        holder.execute("SELECT 1 FROM conversations WHERE id = %s FOR UPDATE", (conv["id"],))
        send = lambda c: c.patch(f"/v1/conversations/{conv['id']}", json={"title": "x"})  # noqa: E731
    try:
        with _client(db_url, app_db, tenant) as api:
            started = time.monotonic()
            r = send(api)
            assert time.monotonic() - started < 10
            error = _error(r, 503, "database_busy")
            assert r.headers["retry-after"] == "1"
            assert "retry" in error["message"]
            if backend == "sqlite":
                holder.execute("ROLLBACK")
            else:
                holder.rollback()
            assert send(api).status_code in (200, 201)
            assert api.get("/v1/contacts").json()["data"][0]["name"] == (
                "Bo" if backend == "sqlite" else "Ada"
            )
    finally:
        holder.close()
        app_db.dispose()


def _raised(db: Database, sql: str) -> BaseException:
    with pytest.raises(sa.exc.DBAPIError) as caught, db.engine.connect() as conn:
        conn.exec_driver_sql(sql)
    return caught.value


def test_database_errors_are_told_apart_by_the_driver_error(db: Database, backend: str) -> None:
    """Real errors from the real database: the SQLAlchemy class says little (a missing table
    and a syntax error are both ProgrammingError/OperationalError), the driver's code all."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE edge_t (k INTEGER PRIMARY KEY, v INTEGER CHECK (v > 0),"
            " p INTEGER REFERENCES edge_t (k))"
        )
        conn.exec_driver_sql("INSERT INTO edge_t (k, v) VALUES (1, 1)")

    def kind(sql: str) -> type[errors.ThreadlineError] | None:
        found = database_error(_raised(db, sql))
        return type(found) if found is not None else None

    try:
        assert kind("SELECT * FROM no_such_table") is errors.DatabaseUnavailable
        assert kind("SELECT no_such_column FROM edge_t") is errors.DatabaseUnavailable
        schema = database_error(_raised(db, "SELECT * FROM no_such_table"))
        assert schema is not None and "threadline db upgrade" in schema.message
        assert kind("INSERT INTO edge_t (k, v) VALUES (1, 2)") is errors.Conflict
        assert kind("INSERT INTO edge_t (k, v, p) VALUES (2, 1, 99)") is errors.Conflict
        # bugs of ours: 500, not a conflict and not "run db upgrade"
        assert kind("INSERT INTO edge_t (k, v) VALUES (3, -1)") is None
        assert kind("SELEC 1") is None
    finally:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE edge_t")


def test_a_bare_driver_error_is_classified_too(tmp_path: Path) -> None:
    """An error raised where SQLAlchemy does not wrap it (a connection event) arrives bare."""
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (k)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as caught:
        other.execute("BEGIN IMMEDIATE")
    holder.close()
    other.close()
    assert isinstance(database_error(caught.value), errors.DatabaseBusy)


def test_an_unreachable_postgresql_is_503_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens here once the socket closes
    url = f"postgresql+psycopg://nobody:pw@127.0.0.1:{closed}/nothing"
    db = Database.from_url(url)
    try:
        with _client(url, db) as c:
            r = c.get("/v1/contacts", headers={"Authorization": f"Bearer tl_{'x' * 43}"})
        error = _error(r, 503, "database_unavailable")
        assert r.headers["retry-after"] == "5"
        assert "upgrade" not in error["message"]
        assert "pw" not in r.text
    finally:
        db.dispose()


# --- a read-only database -----------------------------------------------------------------


@pytest.fixture
def read_only(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated database with a tenant, then opened (or set) read-only: (url, db, key)."""
    if backend == "sqlite":
        path = tmp_path / "ro.db"
        url = f"sqlite:///{path}"
    else:
        url = create_pg_database(request.getfixturevalue("pg_base_url")).render_as_string(False)
    db = Database.from_url(url)
    migrate.upgrade(db)
    key = make_tenant(db)
    db.dispose()
    if backend == "sqlite":
        url = f"sqlite:///file:{path}?mode=ro&uri=true"  # as a read-only mount opens it
    else:
        name = sa.make_url(url).database
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        engine.dispose()
    db = Database.from_url(url)
    yield url, db, key
    db.dispose()


def test_a_read_only_database_is_not_ready_and_refuses_writes_with_503(read_only: Any) -> None:
    url, db, key = read_only
    with _client(url, db, key) as api:
        r = api.get("/readyz")
        error = _error(r, 503, "database_read_only")
        assert "read-only" in error["message"]
        assert api.get("/v1/contacts").status_code == 200  # reads still work
        r = api.post("/v1/contacts", json={"name": "Ada"})
        error = _error(r, 503, "database_read_only")
        assert "upgrade" not in error["message"]
        assert "retry-after" in r.headers
        r = api.post("/v1/conversations", json={"contact": {"name": "Ada"}})
        _error(r, 503, "database_read_only")


def test_readiness_is_not_fooled_by_another_writer(backend: str, db_url: str, db: Database) -> None:
    """The SQLite write probe meets a held lock: the database is writable, just busy."""
    if backend == "postgresql":
        pytest.skip("PostgreSQL reports read-only itself; no lock is taken")
    holder = app_sqlite.connect(sa.make_url(db_url).database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with _client(db_url, db) as c:
            started = time.monotonic()
            r = c.get("/readyz")
            assert r.status_code == 200, r.text
            assert time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --- slow, broken and malformed requests (a live server) -------------------------------------


def _raw(base: str, data: bytes, wait: float = 10.0) -> tuple[bytes, bool]:
    """Send ``data`` on a new connection; what comes back, and whether the server closed it."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.settimeout(wait)
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            return out, False
    return out, True


def _answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path, database_url=db_url, body_timeout_seconds="1") as server:
        yield server


def _requests(base: str) -> dict[tuple[str, str], float]:
    """Requests answered so far, by (route, status)."""
    return {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text)
        for s in family.samples
        if s.name == "threadline_http_requests_total"
    }


@pytest.mark.parametrize("backend", ["sqlite"])  # the HTTP edge does not touch the database
def test_a_client_that_stops_mid_body_gets_408_and_the_connection_closes(
    live: LiveServer, tenant: TenantKey
) -> None:
    head = (
        "POST /v1/contacts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {tenant.token}\r\nContent-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    raw, closed = _raw(live.base, head.encode() + b'{"name": "')
    assert time.monotonic() - started < 8
    status, headers, body = _answer(raw)
    assert status == 408
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert closed, "the server must close a connection whose body never came"

    # a client that gives up mid-body is its own failure, not the server's
    host, port = live.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(head.encode() + b"{")
    deadline = time.monotonic() + 10
    while (counts := _requests(live.base)).get(("unmatched", "499")) is None:
        assert time.monotonic() < deadline, counts
        time.sleep(0.1)
    assert counts[("unmatched", "408")] == 1
    assert not any(s.startswith("5") for _, s in counts), counts
    assert "Traceback" not in live.stderr


KB100 = b"a" * 100_000
PROTOCOL_ERRORS = {
    "bad Content-Length": (b"POST /v1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400),
    "Content-Length and Transfer-Encoding": (
        b"POST /v1/contacts HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "invalid request line": (b"HELLO THERE\r\n\r\n", 400),
    "not HTTP at all": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "100 KB URL": (b"GET /v1/contacts?q=" + KB100 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "100 KB header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + KB100 + b"\r\n\r\n", 431),
    "100 KB of headers": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 1000) for i in range(100))
        + b"\r\n",
        431,
    ),
}  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite"])
def test_protocol_errors_answer_the_json_error_shape(live: LiveServer) -> None:
    codes = {400: "bad_request", 414: "uri_too_long", 431: "headers_too_large"}
    for name, (data, expected) in PROTOCOL_ERRORS.items():
        raw, closed = _raw(live.base, data)
        status, headers, body = _answer(raw)
        assert status == expected, (name, raw[:300])
        assert headers["content-type"] == "application/json", name
        assert int(headers["content-length"]) == len(body), name
        error = json.loads(body)["error"]
        assert error["code"] == codes[expected] and error["message"], (name, error)
        assert error["details"] is None
        assert closed, name
    # a URL and headers within the limits still reach the app
    r = httpx.get(f"{live.base}/healthz", params={"q": "a" * 8000}, headers={"X-Big": "b" * 8000})
    assert r.status_code == 200


# --- events, paged ---------------------------------------------------------------------------


def test_events_are_paged_in_the_order_they_happened(
    api: TestClient, db: Database, tenant: TenantKey, conversation: dict[str, Any]
) -> None:
    cid = uuid.UUID(conversation["id"])
    now = utcnow()
    with db.write() as s:  # 250 more events; groups of five share a timestamp
        for i in range(250):
            s.add(
                ConversationEvent(
                    tenant_id=tenant.tenant_id,
                    conversation_id=cid,
                    type=EventType.STATUS_CHANGED,
                    data={"from": "active", "to": "waiting", "reason": f"r{i}"},
                    created_at=now + timedelta(seconds=1 + i // 5),
                )
            )
    url = f"/v1/conversations/{cid}/events"
    pages, cursor = [], None
    while True:
        r = api.get(url, params={"cursor": cursor} if cursor else {})
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [100, 100, 51]  # 100 by default
    events = [e for p in pages for e in p]
    assert len({e["id"] for e in events}) == 251
    assert events[0]["type"] == "created"
    keys = [(datetime.fromisoformat(e["created_at"]), e["id"]) for e in events]
    assert keys == sorted(keys)
    assert [e["data"]["reason"] for e in events[1:]] == [f"r{i}" for i in range(250)]

    big = api.get(url, params={"limit": 500}).json()
    assert big["data"] == events[:251] and big["next_cursor"] is None
    detail = api.get(f"/v1/conversations/{cid}", params={"include": "events"}).json()
    assert detail["events"] == events[:100]
    _error(api.get(url, params={"limit": 501}), 422, "validation_error")
    _error(api.get(url, params={"cursor": "bm9wZQ"}), 400, "invalid_cursor")
    error = _error(api.get(url, params={"after": 3}), 422, "invalid_input")
    assert error["details"]["parameters"] == ["after"]


# --- query models ------------------------------------------------------------------------------


def test_query_models_refuse_unknown_parameters_after_the_key_check(
    app: Any, api: TestClient, conversation: dict[str, Any]
) -> None:
    cid = conversation["id"]
    urls = {
        "/v1/contacts?limit=5&offset=10": ["offset"],
        "/v1/conversations?stauts=active&sort=x": ["sort", "stauts"],
        f"/v1/conversations/{cid}?include=events&expand=messages": ["expand"],
        f"/v1/conversations/{cid}/events?page=2": ["page"],
    }
    with TestClient(app, raise_server_exceptions=False) as anonymous:
        for url, unknown in urls.items():
            _error(anonymous.get(url), 401, "unauthenticated")
            error = _error(api.get(url), 422, "invalid_input")
            assert error["details"]["parameters"] == unknown, url
            assert all(name in error["message"] for name in unknown)
    # the known ones still work, filters included
    assert api.get("/v1/conversations?status=active&limit=1").json()["data"][0]["id"] == cid
    assert api.get("/v1/conversations?status=archived").json()["data"] == []
    detail = api.get(f"/v1/conversations/{cid}?include=events&include=messages").json()
    assert detail["events"] and detail["messages"] == []
    _error(api.get("/v1/conversations?status=nope"), 422, "validation_error")


# --- request ids --------------------------------------------------------------------------------


def test_every_answer_carries_a_request_id(api: TestClient, client: TestClient) -> None:
    answers = [
        client.get("/healthz"),
        client.get("/v1/contacts"),  # 401
        api.get(f"/v1/contacts/{uuid.uuid4()}"),  # 404
        api.get("/v1/contacts?limit=0"),  # 422
        api.post("/v1/contacts", content=b"x", headers={"Content-Type": "text/plain"}),  # 415
        client.get("/no/such/page"),
    ]
    ids = [r.headers.get("x-request-id") for r in answers]
    assert all(ids) and len(set(ids)) == len(ids), ids
    for rid in ids:
        uuid.UUID(rid)
    mine = "req-2f9c.42:x"
    assert api.get("/v1/contacts", headers={"X-Request-ID": mine}).headers["x-request-id"] == mine
    for bad in ("has space", "a" * 200, "new\\nline", "{json}"):
        got = api.get("/v1/contacts", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert got != bad and uuid.UUID(got)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_log_lines_of_a_request_carry_its_id(db: Database, db_url: str, tmp_path: Path) -> None:
    """The access line and the lines written while handling the request (here the read-only
    database's error) carry the request's id."""
    key = make_tenant(db).token
    db.dispose()
    read_only = f"sqlite:///file:{sa.make_url(db_url).database}?mode=ro&uri=true"
    settings = {"database_url": read_only, "log_format": "json", "auto_migrate": "false"}
    with LiveServer(tmp_path, **settings) as server:
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base, headers=auth) as http:
            r = http.post("/v1/contacts", json={"name": "Ada"}, headers={"X-Request-ID": "ro-1"})
            assert r.status_code == 503, r.text
            assert r.headers["x-request-id"] == "ro-1"
            other = http.get("/v1/contacts")
            assert other.status_code == 200
    events = [json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")]
    mine = [e for e in events if e.get("request_id") == "ro-1"]
    assert {e["event"] for e in mine} == {"request", "database_read_only"}, mine
    requests = [e for e in events if e["event"] == "request" and e["route"] != "/healthz"]
    assert len(requests) == 2 and all(e.get("request_id") for e in requests), requests
    assert requests[1]["request_id"] == other.headers["x-request-id"]


# --- lifespan -----------------------------------------------------------------------------------


def test_background_tasks_run_with_the_app_and_stop_with_it(
    settings: Settings, db: Database
) -> None:
    seen: list[str] = []

    async def ticker(task_db: Database, task_settings: Settings) -> None:
        assert task_db is db and task_settings is settings
        seen.append("started")
        try:
            await anyio.sleep_forever()
        finally:
            seen.append("stopped")

    async def broken(_db: Database, _settings: Settings) -> None:
        raise RuntimeError("boom")

    app = create_app(settings, db, background=[ticker, broken])
    with TestClient(app) as c:
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == ["started"]
        assert c.get("/healthz").status_code == 200  # a failed task leaves the API up
        with db.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        pool = db.engine.pool
        assert pool.checkedin() >= 1
    assert seen == ["started", "stopped"]
    assert db.engine.pool is not pool  # disposed on shutdown: the old pool's connections closed
    assert pool.checkedin() == 0
