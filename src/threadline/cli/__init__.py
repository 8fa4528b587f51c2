"""The ``threadline`` command: one module per command group."""

from __future__ import annotations

import typer

from threadline.cli import (
    db,
    demo,
    inboxes,
    mcp,
    search,
    serve,
    smtp,
    tenants,
    transfer,
    worker,
)

app = typer.Typer(
    name="threadline",
    help="Threadline: the conversation backbone for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("demo")(demo.demo)
app.command("mcp")(mcp.mcp)
app.command("smtp")(smtp.smtp)
app.command("reindex")(search.reindex)
app.command("export")(transfer.export)
app.add_typer(transfer.import_app, name="import")
app.add_typer(db.app, name="db")
app.add_typer(tenants.tenant_app, name="tenant")
app.add_typer(tenants.key_app, name="key")
app.add_typer(tenants.user_app, name="user")
app.add_typer(inboxes.inbox_app, name="inbox")


def main() -> None:
    app()
