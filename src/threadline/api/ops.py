"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from threadline import __version__
from threadline.api.deps import DatabaseDep, MetricsDep
from threadline.domain.errors import MigrationRequired
from threadline.store import migrate

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", responses={503: {"description": "Database unreachable or not migrated"}})
def readyz(db: DatabaseDep) -> dict[str, str | None]:
    """The database answers and its schema is at the code's migration head."""
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
    return {"status": "ready", "revision": revision}


@router.get("/metrics", response_class=Response)
def metrics(m: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency per route, messages stored per channel."""
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
