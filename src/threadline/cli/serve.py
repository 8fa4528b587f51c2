"""``threadline serve``: run the API (and, later, the dashboard) with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from threadline.cli._common import err, friendly_errors, load_settings, open_database, out
from threadline.settings import Settings


def serve(
    host: Annotated[
        str | None, typer.Option(help="Listen address [default: settings.host].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default: settings.port].")] = None,
) -> None:
    """Start the server: upgrade the schema if needed, then serve the API on HOST:PORT.

    On the first start with an empty database it creates the 'default' tenant and an admin
    API key, and prints the key once. Unless THREADLINE_WORKER_IN_SERVE=false it also runs
    the background loops (sending queued messages, pruning), as `threadline worker` does.
    """
    # The web stack is imported here, not at module level, so that the other commands start
    # without paying for it.
    import uvicorn

    from threadline.api.app import create_app
    from threadline.api.protocol import HttpToolsJSONProtocol
    from threadline.logs import configure_logging
    from threadline.store import migrate, tenants

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    configure_logging(settings, stdlib=True)
    with friendly_errors():
        db = open_database(settings)
        if settings.auto_migrate:
            migrate.upgrade(db)
        elif not migrate.is_current(db):
            err.print("[yellow]the schema is not current: run 'threadline db upgrade'[/yellow]")
        token = tenants.bootstrap(db)
        from threadline.web.auth import has_users

        nobody_signs_in = not has_users(db)
    base = f"http://{_reachable(settings.host)}:{settings.port}"
    if token:
        _print_first_start(base, token)
    if nobody_signs_in:
        _print_sign_in_hint(base)
    out.print(
        f"Dashboard on {base}/  ·  API on {base}/v1  ·  docs on {base}/docs  ·  "
        f"database {_safe(settings)}"
    )
    from threadline.jobs import LOOPS

    app = create_app(settings, db, background=LOOPS if settings.worker_in_serve else ())
    uvicorn.run(
        app,
        http=HttpToolsJSONProtocol,  # JSON answers for requests the parser refuses
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,  # uvicorn's records go through our structured logging
        log_level=settings.log_level,
        server_header=False,
    )


def _print_first_start(base: str, token: str) -> None:
    """Show the new admin key once, with a curl command that pastes into a shell as is.

    Plain lines, flushed at once: no box or wrapping that would break the command when it is
    copied, and visible immediately even when standard output is a pipe (docker, systemd).
    """
    lines = [
        "",
        "Threadline is ready. Created tenant 'default' and an admin API key (shown only now):",
        "",
        f"    {token}",
        "",
        "Try it:",
        "",
        f"curl -s -X POST {base}/v1/conversations \\",
        f"  -H 'Authorization: Bearer {token}' \\",
        "  -H 'Content-Type: application/json' \\",
        '  -d \'{"contact": {"name": "Ada", "phone": "+14155550100"}}\'',
        "",
    ]
    print("\n".join(lines), flush=True)


def _print_sign_in_hint(base: str) -> None:
    """Until someone can sign in to the dashboard, say how (on every start)."""
    lines = [
        f"Dashboard: {base}/ . Nobody can sign in yet; create an admin (it asks for a password):",
        "",
        "    threadline user create you@example.com --role admin",
        "",
        "then sign in and click 'Load demo data' (or run: threadline demo).",
        "",
    ]
    print("\n".join(lines), flush=True)


def _reachable(host: str) -> str:
    """The address a local client uses to reach a server listening on ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _safe(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)
