"""The application factory: wires settings, database, routers, middleware, error handlers and
the lifespan (background tasks started with the app, the database closed when it stops)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from threadline import __version__, web
from threadline.api import errors, ops, v1, webhooks
from threadline.api.middleware import Observability, RequestGuard, RequestId
from threadline.api.ratelimit import RateLimit
from threadline.ingest import Ingest
from threadline.jobs import LOOPS
from threadline.logs import configure_logging, get_logger
from threadline.metrics import Metrics
from threadline.receive import Receiver
from threadline.settings import Settings
from threadline.store import Database, inboxes, secrets

log = get_logger(__name__)

DESCRIPTION = """
The conversation backbone for AI agents: contacts, conversations and messages from every
channel in one schema, with idempotent appends and gap-free ordering.

Authenticate with `Authorization: Bearer <api key>` (create one with `threadline key create`).
Errors are JSON: `{"error": {"code", "message", "details"}}`.
"""

#: Work that runs beside the API for as long as the app does (a periodic prune, a delivery
#: loop): an async callable given the app's database and settings. It is started when the
#: app starts and cancelled when it stops; one that fails is logged and not restarted, so a
#: periodic job catches the errors of each round itself.
BackgroundTask = Callable[[Database, Settings], Awaitable[None]]

#: The background tasks every app runs unless ``create_app`` is given others.
BACKGROUND_TASKS: tuple[BackgroundTask, ...] = LOOPS


_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    settings: Settings | None = None,
    db: Database | None = None,
    *,
    background: Sequence[BackgroundTask] = BACKGROUND_TASKS,
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings)
    database = db or Database.from_settings(settings)
    app = FastAPI(
        title="Threadline",
        version=__version__,
        description=DESCRIPTION,
        # The docs list resources in this order, whatever order the routes are matched in.
        openapi_tags=[{"name": n} for n in ("contacts", "conversations", "messages", "operations")],
        lifespan=_lifespan(database, settings, background),
        # FastAPI's own OpenTelemetry layer asks for a provider on every request; Threadline
        # exports Prometheus metrics, and turns it on only when asked to.
        telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.metrics = Metrics()
    app.state.ingest = Ingest(database, settings, app.state.metrics)
    # Channels: the key that opens inbox credentials (a development server makes one on its
    # first start and says so), and the receiver behind the provider webhooks.
    secrets.box_for(settings)
    inboxes.bind(database, settings)
    app.state.receiver = Receiver(database, settings, app.state.ingest)
    errors.install(app)
    app.include_router(v1.router)
    app.include_router(ops.router)
    app.include_router(webhooks.router)
    web.install(app)  # the dashboard at / and the web-chat widget
    # The last added runs first: the request id is there for everything after it.
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout_seconds,
    )
    # Throttled callers are turned away before their body is read.
    app.add_middleware(
        RateLimit, per_key=settings.rate_limit, per_inbox=settings.rate_limit_webhooks
    )
    app.add_middleware(Observability, metrics=app.state.metrics)
    app.add_middleware(RequestId)
    return app


def _lifespan(
    db: Database, settings: Settings, background: Sequence[BackgroundTask]
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with anyio.create_task_group() as tasks:
                for task in background:
                    tasks.start_soon(_supervised, task, db, settings)
                yield
                tasks.cancel_scope.cancel()
        finally:
            db.dispose()

    return lifespan


async def _supervised(task: BackgroundTask, db: Database, settings: Settings) -> None:
    """Run one background task; a failure is logged and stays its own (the API keeps going)."""
    name = getattr(task, "__qualname__", repr(task))
    try:
        await task(db, settings)
    except Exception as exc:
        log.error("background_task_failed", task=name, error_type=type(exc).__name__, exc_info=exc)
