"""``threadline serve``: run the API (and, later, the dashboard) with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from rich.panel import Panel

from threadline.api.app import create_app
from threadline.cli._common import friendly_errors, open_database, out
from threadline.settings import Settings
from threadline.store import migrate, tenants


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [default: settings.host].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default: settings.port].")] = None,
) -> None:
    """Start the server: upgrade the schema if needed, then serve the API on HOST:PORT.

    On the first start with an empty database it creates the 'default' tenant and an admin
    API key, and prints the key once.
    """
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    db = open_database(settings)
    with friendly_errors():
        if settings.auto_migrate:
            migrate.upgrade(db)
        elif not migrate.is_current(db):
            out.print("[yellow]the schema is not current: run 'threadline db upgrade'[/yellow]")
        token = tenants.bootstrap(db)
    base = f"http://{settings.host}:{settings.port}"
    if token:
        out.print(
            Panel.fit(
                f"Created tenant 'default' and an admin API key (shown only now):\n\n"
                f"  [bold]{token}[/bold]\n\n"
                "Try it:\n"
                f"  curl -s -X POST {base}/v1/conversations \\\n"
                f"    -H 'Authorization: Bearer {token}' \\\n"
                "    -H 'Content-Type: application/json' \\\n"
                "    -d '{\"contact\": {\"name\": \"Ada\", \"phone\": \"+14155550100\"}}'",
                title="Threadline is ready",
            )
        )
    out.print(f"API on {base}/v1  ·  docs on {base}/docs  ·  database {_safe(settings)}")
    app = create_app(settings, db)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level=settings.log_level,
        server_header=False,
    )


def _safe(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)
