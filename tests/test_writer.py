"""Group commit on SQLite: writers share transactions, and each still succeeds or fails alone.

These drive ``Database.run_write`` from many threads at once, on a real SQLite file (the
only backend that groups writes; on PostgreSQL ``run_write`` is a plain transaction, which
the conformance suite covers).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from threadline.store import Database

N = 48


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{tmp_path / 'w.db'}")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL)")
    yield db
    db.dispose()


def _together(n: int, work):  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(n)

    def run(i: int):  # type: ignore[no-untyped-def]
        barrier.wait(timeout=30)
        try:
            return ("ok", work(i))
        except Exception as exc:
            return ("error", exc)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return [f.result(timeout=60) for f in [pool.submit(run, i) for i in range(n)]]


def _values(db: Database) -> list[str]:
    with db.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT v FROM t ORDER BY id")]


def test_concurrent_writes_all_commit_and_share_transactions(sqlite_db: Database) -> None:
    commits = []
    sa.event.listen(sqlite_db.engine, "commit", lambda conn: commits.append(1))

    def insert(i: int) -> int:
        return sqlite_db.run_write(
            lambda conn: conn.exec_driver_sql(f"INSERT INTO t (v) VALUES ('v{i}')").lastrowid
        )

    outcomes = _together(N, insert)
    assert all(kind == "ok" for kind, _ in outcomes)
    assert sorted(_values(sqlite_db)) == sorted(f"v{i}" for i in range(N))
    # Several writes went out with one commit (else every write paid its own fsync).
    assert len(commits) < N


def test_a_failing_write_fails_alone(sqlite_db: Database) -> None:
    def write(i: int) -> str:
        def work(conn: sa.Connection) -> str:
            conn.exec_driver_sql(f"INSERT INTO t (v) VALUES ('w{i}')")
            if i % 3 == 0:
                # The insert above is part of this write: it must be undone with it.
                conn.exec_driver_sql("INSERT INTO t (v) VALUES ('dup')")
                conn.exec_driver_sql("INSERT INTO t (v) VALUES ('dup')")
            return f"w{i}"

        return sqlite_db.run_write(work)

    outcomes = _together(N, write)
    failed = {i for i, (kind, _) in enumerate(outcomes) if kind == "error"}
    assert failed == {i for i in range(N) if i % 3 == 0}
    assert all(isinstance(outcomes[i][1], sa.exc.IntegrityError) for i in failed)
    assert sorted(_values(sqlite_db)) == sorted(f"w{i}" for i in range(N) if i % 3)


def test_a_write_sees_the_writes_queued_before_it(sqlite_db: Database) -> None:
    """Writes in one group run in order: each sees the ones before it (a counter never
    repeats, as a seq must not)."""

    def bump(_: int) -> int:
        def work(conn: sa.Connection) -> int:
            current = conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one()
            conn.exec_driver_sql(f"INSERT INTO t (v) VALUES ('n{current + 1}')")
            return int(current) + 1

        return sqlite_db.run_write(work)

    outcomes = _together(N, bump)
    assert sorted(value for _, value in outcomes) == list(range(1, N + 1))


def test_when_the_commit_fails_nobody_is_told_their_write_is_stored(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'd.db'}")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id) "
            "DEFERRABLE INITIALLY DEFERRED)"
        )
    # A deferred foreign key is checked at COMMIT: one bad write makes the whole commit fail.
    bad = uuid.uuid4().int % 1000 + 10_000

    def write(i: int) -> int:
        target = bad if i == 0 else None
        return db.run_write(
            lambda conn: conn.exec_driver_sql("INSERT INTO c (p) VALUES (?)", (target,)).lastrowid
        )

    outcomes = _together(8, write)
    with db.connect() as conn:
        stored = conn.exec_driver_sql("SELECT count(*) FROM c").scalar_one()
    ok = [value for kind, value in outcomes if kind == "ok"]
    # Whoever was answered "ok" is stored; whoever shared the failed commit was told so.
    assert stored == len(ok)
    assert any(kind == "error" for kind, _ in outcomes)
    db.dispose()


def test_other_writes_in_the_process_take_turns_with_the_group(sqlite_db: Database) -> None:
    """ORM sessions and Core transactions queue with grouped writes instead of timing out."""

    def mixed(i: int) -> None:
        if i % 2:
            with sqlite_db.transaction() as conn:
                conn.exec_driver_sql(f"INSERT INTO t (v) VALUES ('x{i}')")
        else:
            sqlite_db.run_write(
                lambda conn: conn.exec_driver_sql(f"INSERT INTO t (v) VALUES ('x{i}')")
            )

    outcomes = _together(24, mixed)
    assert all(kind == "ok" for kind, _ in outcomes)
    assert len(_values(sqlite_db)) == 24
