"""The application factory: wires settings, database, routers, middleware and error handlers."""

from __future__ import annotations

from fastapi import FastAPI

from threadline import __version__
from threadline.api import errors, ops, v1
from threadline.api.middleware import Observability, RequestGuard
from threadline.logs import configure_logging
from threadline.metrics import Metrics
from threadline.settings import Settings
from threadline.store import Database

DESCRIPTION = """
The conversation backbone for AI agents: contacts, conversations and messages from every
channel in one schema, with idempotent appends and gap-free ordering.

Authenticate with `Authorization: Bearer <api key>` (create one with `threadline key create`).
Errors are JSON: `{"error": {"code", "message", "details"}}`.
"""


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings)
    database = db or Database.from_url(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.db_pool_size,
    )
    app = FastAPI(
        title="Threadline",
        version=__version__,
        description=DESCRIPTION,
        # The docs list resources in this order, whatever order the routes are matched in.
        openapi_tags=[{"name": n} for n in ("contacts", "conversations", "messages", "operations")],
    )
    app.state.settings = settings
    app.state.db = database
    app.state.metrics = Metrics()
    errors.install(app)
    app.include_router(v1.router)
    app.include_router(ops.router)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(Observability, metrics=app.state.metrics)
    return app
