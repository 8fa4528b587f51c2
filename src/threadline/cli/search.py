"""``threadline reindex``: compute the vectors semantic search needs, in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from threadline.cli._common import err, friendly_errors, load_settings, open_database, out
from threadline.jobs.embed import embed_all
from threadline.search.embedders import EmbedderError, from_settings
from threadline.store import search as store
from threadline.store import tenants


def reindex(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only this tenant's messages (slug).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="The embedding model (THREADLINE_EMBEDDINGS=openai: a model of the endpoint; "
            "local: its one model)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Drop the model's vectors first and compute all again.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=2048, help="Messages per model call.")] = 64,
) -> None:
    """Embed every message that has no vector for the model yet (the embed job does the same
    in the background), and rebuild SQLite's keyword index."""
    overrides = {"embeddings_model": model} if model else {}
    settings = load_settings(**overrides)
    db = open_database(settings)
    try:
        with friendly_errors():
            try:
                embedder = from_settings(settings)
            except EmbedderError as exc:
                err.print(f"[red]error:[/red] {exc.message}", highlight=False)
                raise typer.Exit(1) from None
            if embedder is not None and model and model != embedder.model:
                err.print(
                    f"[red]error:[/red] the local embedder has one model, {embedder.model}",
                    highlight=False,
                )
                raise typer.Exit(1)
            tenant_id = tenants.get_tenant(db, tenant).id if tenant else None
            if tenant is None:
                store.rebuild_keyword_index(db)
                if db.dialect == "sqlite":
                    out.print("rebuilt the keyword index")
            if embedder is None:
                out.print("THREADLINE_EMBEDDINGS=none: keyword search only, no vectors to make")
                return
            if not store.vectors_available(db):
                err.print(
                    "[red]error:[/red] this database cannot hold vectors "
                    "(PostgreSQL without pgvector); keyword search works",
                    highlight=False,
                )
                raise typer.Exit(1)
            if force:
                dropped = store.forget_model(db, embedder.model, tenant_id=tenant_id)
                out.print(f"dropped {dropped} vectors of {embedder.model}")
            total = store.count_pending(db, embedder.model, tenant_id=tenant_id)
            with Progress(
                TextColumn("[bold]embedding[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=out,
                transient=False,
            ) as bar:
                task = bar.add_task("embed", total=total)
                done = embed_all(
                    db,
                    embedder,
                    tenant_id=tenant_id,
                    batch=batch,
                    on_batch=lambda n: bar.advance(task, n),
                )
    finally:
        db.dispose()
    failed = f", {done.failed} failed (run again to retry)" if done.failed else ""
    out.print(f"embedded {done.embedded} messages with {embedder.model}{failed}")
    if done.failed:
        raise typer.Exit(1)
