"""``threadline export`` and ``threadline import FORMAT SOURCE``: a tenant as lossless JSONL,
and conversations from other systems (OpenAI JSONL, LangChain, LangGraph, a lead bot's log,
a voice agent's calls)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from threadline.cli._common import err, friendly_errors, load_settings, open_database, out

import_app = typer.Typer(
    help="Import conversations: a Threadline export (jsonl) or another system's history.",
    no_args_is_help=True,
)

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug.")]


def export(
    tenant: Tenant = "default",
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write here instead of standard output.", dir_okay=False),
    ] = None,
) -> None:
    """Write the tenant as JSON Lines: contacts, identities, inboxes (without credentials),
    agents, users (without passwords), conversations, messages with every field, deliveries,
    model calls, events, suggestions, actions, summaries. `threadline import jsonl` reads it."""
    from threadline.store import tenant_dump, tenants

    settings = load_settings()
    db = open_database(settings)
    try:
        with friendly_errors():
            t = tenants.get_tenant(db, tenant)
            if out_file is None:
                counts = tenant_dump.export_tenant(db, t.id, sys.stdout)
            else:
                with (
                    out_file.open("w", encoding="utf-8") as f,
                    _spinner("exporting") as (bar, task),
                ):
                    counts = tenant_dump.export_tenant(
                        db, t.id, f, on_row=lambda _: bar.advance(task)
                    )
    finally:
        db.dispose()
    total = sum(counts.values())
    where = f" to {out_file}" if out_file else ""
    err.print(f"exported {total} rows of tenant {t.slug}{where}", highlight=False)


def _spinner(what: str) -> Any:
    from contextlib import contextmanager

    @contextmanager
    def bar() -> Any:
        with Progress(
            TextColumn(f"[bold]{what}[/bold]"), MofNCompleteColumn(), console=err
        ) as progress:
            yield progress, progress.add_task(what, total=None)

    return bar()


@import_app.command("jsonl")
def import_jsonl(
    source: Annotated[Path, typer.Argument(help="A file written by threadline export.")],
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", help="Into this tenant (default: the export's slug)."),
    ] = None,
) -> None:
    """Read a `threadline export` file back, ids and all, into a new or empty tenant; one
    transaction: a bad line imports nothing."""
    from threadline.importers.sources import lines_of
    from threadline.store import tenant_dump

    settings = load_settings()
    db = open_database(settings)
    try:
        with friendly_errors(), _spinner("importing") as (bar, task):
            loaded = tenant_dump.import_tenant(
                db,
                (line for _, line in lines_of(str(source))),
                slug=tenant,
                on_row=lambda _: bar.advance(task),
            )
    finally:
        db.dispose()
    table = Table("table", "rows", title=f"imported into tenant {loaded.slug}")
    for name, count in loaded.counts.items():
        table.add_row(name, str(count))
    out.print(table)


def _run(fmt: str, source: str, tenant: str, options: dict[str, Any], **kwargs: Any) -> None:
    from threadline.importers import FORMATS, base
    from threadline.store import tenants

    settings = load_settings()
    db = open_database(settings)
    try:
        with friendly_errors():
            t = tenants.get_tenant(db, tenant)
            importer = FORMATS[fmt](**kwargs)
            with Progress(
                TextColumn(f"[bold]{fmt}[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
            ) as bar:
                task = bar.add_task("messages", total=None)

                def read(records: list[base.Legacy]) -> None:
                    bar.update(task, total=sum(len(r.messages) for r in records))

                summary = base.run(
                    db,
                    settings,
                    importer,
                    source,
                    t.id,
                    on_read=read,
                    on_progress=lambda n: bar.advance(task, n),
                    **options,
                )
    finally:
        db.dispose()
    for bad in summary.skipped:
        err.print(
            f"[yellow]skipped[/yellow] {escape(bad.where)}: {escape(bad.reason)}", highlight=False
        )
    _print_summary(fmt, t.slug, summary)


def _print_summary(fmt: str, slug: str, summary: Any) -> None:
    title = f"{fmt} into tenant {slug}" + (" (dry run: nothing written)" if summary.dry_run else "")
    table = Table("", "count", title=title)
    table.add_row("conversations read", str(summary.conversations_read))
    table.add_row("messages read", str(summary.messages_read))
    if not summary.dry_run:
        table.add_row("conversations created", str(summary.conversations_created))
        table.add_row("conversations already there", str(summary.conversations_found))
        table.add_row("messages imported", str(summary.messages_imported))
        table.add_row("messages already there", str(summary.messages_already_there))
    table.add_row("bad records skipped", str(len(summary.skipped)))
    out.print(table)


Source = Annotated[str, typer.Argument(help="A file path or URL.", metavar="PATH|URL")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Read and check only; write nothing.")]
Limit = Annotated[
    int | None, typer.Option("--limit", min=1, help="At most this many conversations.")
]
Ids = Annotated[
    list[str] | None,
    typer.Option("--ids", help="Only these legacy conversation ids (repeat, or comma-separated)."),
]
SkipBad = Annotated[
    bool,
    typer.Option(
        "--skip-bad", help="Leave bad records out (each is reported) instead of stopping."
    ),
]


def _options(dry_run: bool, limit: int | None, ids: list[str] | None, skip_bad: bool) -> dict:  # type: ignore[type-arg]
    wanted = [i.strip() for group in ids or [] for i in group.split(",") if i.strip()]
    return {"dry_run": dry_run, "limit": limit, "ids": wanted or None, "skip_bad": skip_bad}


@import_app.command("openai")
def import_openai(
    source: Source,
    tenant: Tenant = "default",
    dry_run: DryRun = False,
    limit: Limit = None,
    ids: Ids = None,
    skip_bad: SkipBad = False,
) -> None:
    """OpenAI chat JSONL: one {"messages": [...]} per line, tool calls included."""
    _run("openai", source, tenant, _options(dry_run, limit, ids, skip_bad))


@import_app.command("langchain")
def import_langchain(
    source: Annotated[str, typer.Argument(help="A database URL or SQLite file.", metavar="URL")],
    tenant: Tenant = "default",
    dry_run: DryRun = False,
    limit: Limit = None,
    ids: Ids = None,
    skip_bad: SkipBad = False,
    table: Annotated[str, typer.Option(help="The history table.")] = "message_store",
) -> None:
    """LangChain's SQLChatMessageHistory table: one conversation per session_id."""
    _run("langchain", source, tenant, _options(dry_run, limit, ids, skip_bad), table=table)


@import_app.command("langgraph")
def import_langgraph(
    source: Annotated[
        str, typer.Argument(help="A SQLite file or a postgresql:// URL.", metavar="PATH|URL")
    ],
    tenant: Tenant = "default",
    dry_run: DryRun = False,
    limit: Limit = None,
    ids: Ids = None,
    skip_bad: SkipBad = False,
) -> None:
    """LangGraph checkpoints (SqliteSaver, PostgresSaver): each thread's latest messages."""
    _run("langgraph", source, tenant, _options(dry_run, limit, ids, skip_bad))


@import_app.command("leadbot")
def import_leadbot(
    source: Annotated[str, typer.Argument(help="A database URL or SQLite file.", metavar="URL")],
    tenant: Tenant = "default",
    dry_run: DryRun = False,
    limit: Limit = None,
    ids: Ids = None,
    skip_bad: SkipBad = False,
    table: Annotated[str, typer.Option(help="The message log table.")] = "messages",
) -> None:
    """A lead bot's messages log: one conversation per agent_session_id and lead_id."""
    _run("leadbot", source, tenant, _options(dry_run, limit, ids, skip_bad), table=table)


@import_app.command("calls")
def import_calls(
    source: Annotated[str, typer.Argument(help="A database URL or SQLite file.", metavar="URL")],
    tenant: Tenant = "default",
    dry_run: DryRun = False,
    limit: Limit = None,
    ids: Ids = None,
    skip_bad: SkipBad = False,
    table: Annotated[str, typer.Option(help="The calls table.")] = "call_sessions",
) -> None:
    """A voice agent's call_sessions: one conversation per call with one transcript message."""
    _run("calls", source, tenant, _options(dry_run, limit, ids, skip_bad), table=table)
