"""What every command shares: settings, the database, and turning errors into exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import typer
from rich.console import Console

from threadline.domain.errors import NotFound, ThreadlineError
from threadline.settings import Settings
from threadline.store import Database

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def open_database(settings: Settings) -> Database:
    return Database.from_url(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.db_pool_size,
    )


@contextmanager
def database() -> Iterator[Database]:
    """The configured database; errors become a red line on stderr and exit code 1."""
    settings = Settings()
    db = open_database(settings)
    try:
        with friendly_errors():
            yield db
    finally:
        db.dispose()


@contextmanager
def friendly_errors() -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    except ThreadlineError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        text = str(exc.orig) if getattr(exc, "orig", None) else str(exc)
        if "no such table" in text or "does not exist" in text:
            err.print(
                "[red]error:[/red] the database has no Threadline schema yet: "
                "run [bold]threadline db upgrade[/bold] first"
            )
        else:
            err.print(f"[red]error:[/red] database error: {text.splitlines()[0]}")
        raise typer.Exit(1) from None
