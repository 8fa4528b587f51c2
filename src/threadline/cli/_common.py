"""What every command shares: settings, the database, and turning errors into exit codes.

Every expected failure (a missing schema, an unknown tenant, a bad setting, an unknown
revision) is one red line on standard error and exit code 1, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
import typer
from alembic.util import CommandError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from threadline.domain.errors import ThreadlineError
from threadline.settings import Settings
from threadline.store import Database

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

_UPGRADE_HINT = (
    "the database has no Threadline schema yet: run [bold]threadline db upgrade[/bold] first"
)


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (and .env); a bad value is a clear error."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        for problem in exc.errors():
            where = ".".join(str(p) for p in problem["loc"])
            name = f"THREADLINE_{where.upper()}" if where else "settings"
            err.print(
                f"[red]error:[/red] {escape(name)}: {escape(problem['msg'])}", highlight=False
            )
        raise typer.Exit(1) from None


def open_database(settings: Settings) -> Database:
    try:
        return Database.from_settings(settings)
    except (ValueError, sa.exc.ArgumentError) as exc:
        err.print(f"[red]error:[/red] THREADLINE_DATABASE_URL: {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


@contextmanager
def database() -> Iterator[Database]:
    """The configured database; errors become a red line on stderr and exit code 1."""
    db = open_database(load_settings())
    try:
        with friendly_errors():
            yield db
    finally:
        db.dispose()


def _missing_table(exc: sa.exc.DBAPIError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "42P01":  # PostgreSQL: undefined_table
        return True
    return "no such table" in str(orig)


@contextmanager
def friendly_errors() -> Iterator[None]:
    try:
        yield
    except ThreadlineError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(1) from None
    except CommandError as exc:  # alembic: an unknown revision, nothing to downgrade ...
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    except sa.exc.DBAPIError as exc:
        if _missing_table(exc):
            err.print(f"[red]error:[/red] {_UPGRADE_HINT}")
        else:
            text = str(exc.orig) if exc.orig is not None else str(exc)
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            err.print(f"[red]error:[/red] database error: {escape(first)}", highlight=False)
        raise typer.Exit(1) from None
