"""``threadline worker``: the background loops (delivery, pruning) without the API.

Run one or many beside servers started with ``THREADLINE_WORKER_IN_SERVE=false``; on
PostgreSQL they share the delivery queue (``FOR UPDATE SKIP LOCKED``). Ctrl-C or SIGTERM
lets the sends in flight finish, then exits.
"""

from __future__ import annotations

import signal

import anyio
import typer

from threadline.cli._common import err, friendly_errors, load_settings, open_database, out
from threadline.settings import Settings
from threadline.store.database import Database


def worker() -> None:
    """Run the background loops alone: send queued messages, retry, prune.

    The schema must be current (`threadline db upgrade`, or a server that migrated it).
    """
    from threadline.jobs import LOOPS
    from threadline.logs import configure_logging
    from threadline.store import migrate

    settings = load_settings()
    configure_logging(settings, stdlib=True)
    with friendly_errors():
        db = open_database(settings)
        if not migrate.is_current(db):
            err.print("[red]error:[/red] the schema is not current: run 'threadline db upgrade'")
            raise typer.Exit(1)
    out.print(
        f"worker: {len(LOOPS)} loops, up to {settings.delivery_concurrency} sends at a time",
        highlight=False,
    )
    try:
        anyio.run(_run, db, settings)
    finally:
        db.dispose()


async def _run(db: Database, settings: Settings) -> None:
    from threadline.jobs import LOOPS, Loop
    from threadline.logs import get_logger

    log = get_logger("threadline.worker")

    async def supervised(loop: Loop) -> None:
        name = getattr(loop, "__qualname__", repr(loop))
        try:
            await loop(db, settings)
        except Exception as exc:
            log.error("background_task_failed", task=name, error_type=type(exc).__name__)

    async with anyio.create_task_group() as tasks:
        for loop in LOOPS:
            tasks.start_soon(supervised, loop)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                log.info("worker_stopping")
                tasks.cancel_scope.cancel()
                break
