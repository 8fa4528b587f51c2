"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from threadline import __version__
from threadline.api.deps import DatabaseDep, MetricsDep
from threadline.api.errors import database_error
from threadline.domain.errors import DatabaseBusy, DatabaseReadOnly, MigrationRequired
from threadline.store import Database, migrate

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok", "version": __version__}


_NOT_READY = "Database unreachable, not migrated or read-only"


@router.get("/readyz", responses={503: {"description": _NOT_READY}})
def readyz(db: DatabaseDep) -> dict[str, str | None]:
    """The database answers, its schema is at the code's migration head, and it takes writes."""
    try:
        with db.read() as s:
            s.execute(sa.text("SELECT 1"))
        revision = migrate.current(db)
    except sa.exc.SQLAlchemyError as exc:
        raise MigrationRequired("the database is not reachable", error=type(exc).__name__) from exc
    head = migrate.head()
    if revision != head:
        raise MigrationRequired(
            "the database schema is not current: run 'threadline db upgrade'",
            revision=revision,
            head=head,
        )
    if not _writable(db):
        raise DatabaseReadOnly("the database is read-only: it refuses writes")
    return {"status": "ready", "revision": revision}


#: How long the SQLite probe waits for another writer's lock (a held lock means writes work).
_PROBE_BUSY_MS = 100


def _writable(db: Database) -> bool:
    """Whether the database takes writes, found without changing anything.

    PostgreSQL says so itself (a standby, or a database whose transactions default to
    read-only). SQLite cannot tell: a file opened read-only (``mode=ro``, permissions, a
    read-only mount) refuses only the write itself, so the probe takes the write lock, changes
    the schema-revision row to itself and rolls back.
    """
    with db.connect() as conn:
        if db.dialect == "postgresql":
            flag = "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"
            return not conn.exec_driver_sql(flag).scalar()
        raw: Any = conn.connection.driver_connection
        (timeout,) = raw.execute("PRAGMA busy_timeout").fetchone()
        raw.execute(f"PRAGMA busy_timeout={_PROBE_BUSY_MS}")
        try:
            raw.execute("BEGIN IMMEDIATE")
            try:
                raw.execute("UPDATE alembic_version SET version_num = version_num")
            finally:
                raw.execute("ROLLBACK")
        except Exception as exc:
            found = database_error(exc)
            if isinstance(found, DatabaseReadOnly):
                return False
            if isinstance(found, DatabaseBusy):
                return True  # another connection is writing: writes work
            raise
        finally:
            raw.execute(f"PRAGMA busy_timeout={int(timeout)}")
    return True


@router.get("/metrics", response_class=Response)
def metrics(m: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency per route, messages stored per channel."""
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
