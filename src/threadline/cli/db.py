"""``threadline db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from threadline.cli._common import database, err, load_settings, out
from threadline.store import migrate

app = typer.Typer(help="Create, upgrade and verify the database schema.", no_args_is_help=True)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the schema (to the newest revision by default)."""
    with database() as db:
        migrate.upgrade(db, revision)
        out.print(f"database at revision {migrate.current(db)}")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' for empty.")] = "-1",
) -> None:
    """Downgrade the schema (one revision by default; 'base' drops every table)."""
    with database() as db:
        migrate.downgrade(db, revision)
        out.print(f"database at revision {migrate.current(db) or 'base'}")


@app.command()
def current() -> None:
    """Show the database's revision and the code's newest."""
    with database() as db:
        rev = migrate.current(db)
        head = migrate.head()
        state = "current" if rev == head else "behind: run 'threadline db upgrade'"
        out.print(f"database: {rev or 'base (empty)'}\ncode head: {head} ({state})")


@app.command()
def check() -> None:
    """Compare the live schema with the models: missing or extra tables, columns, indexes.

    Exits 1 when anything differs, so it can gate a deploy.
    """
    with database() as db:
        report = migrate.check(db)
    if report.revision != report.head:
        err.print(f"revision {report.revision or 'base'} is not head {report.head}")
    for line in report.differences:
        err.print(f"- {escape(line)}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
    out.print(f"schema matches the models (revision {report.revision})")


@app.command()
def prune() -> None:
    """Delete expired idempotency keys and old events now (`serve` does it every hour)."""
    from threadline.jobs.prune import prune_once

    with database() as db:
        count = prune_once(db, load_settings())
    out.print(f"pruned {count} idempotency key(s) and event(s) older than their retention")
