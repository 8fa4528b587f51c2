"""``threadline inbox``: the addresses messages arrive at, and the URLs to give providers."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from threadline.cli._common import database, err, load_settings, out
from threadline.cli.tenants import TenantOpt, _print, _table
from threadline.domain.enums import InboxMode
from threadline.store import inboxes, tenants

inbox_app = typer.Typer(help="Inboxes: one address on one channel.", no_args_is_help=True)


def _pairs(values: list[str] | None, what: str) -> dict[str, Any]:
    """``k=v`` options as a dict; a value that reads as JSON (a number, true) is taken so."""
    out_: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"[red]error:[/red] --{what} takes NAME=VALUE, not {escape(item)!r}")
            raise typer.Exit(1)
        try:
            parsed = json.loads(value)
            out_[key] = parsed if isinstance(parsed, (int, float, bool)) else value
        except ValueError:
            out_[key] = value
    return out_


@inbox_app.command("create")
def inbox_create(
    name: Annotated[str, typer.Option("--name", "-n", help="What the inbox is called.")],
    provider: Annotated[str, typer.Option(help="twilio, meta, postmark, sendgrid, smtp ...")],
    address: Annotated[str, typer.Option(help="The number, phone-number id or email address.")],
    credential: Annotated[
        list[str] | None, typer.Option("--credential", "-c", help="NAME=VALUE, repeatable.")
    ] = None,
    config: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable.")] = None,
    mode: Annotated[InboxMode, typer.Option(help="auto, approval or off.")] = InboxMode.APPROVAL,
    tenant: TenantOpt = "default",
) -> None:
    """Create an inbox and print the webhook URLs to paste into the provider's console."""
    settings = load_settings()
    fields = {
        "name": name,
        "provider": provider,
        "address": address,
        "credentials": _pairs(credential, "credential"),
        "config": _pairs(config, "config"),
        "mode": mode,
    }
    with database() as db:
        t = tenants.get_tenant(db, tenant)
        view = inboxes.create(db, settings, t.id, fields)
    out.print(f"created {view.channel.value} inbox {view.id} ({view.provider} {view.address})")
    if view.webhooks:
        out.print("paste these URLs into the provider's console:")
        for hook, url in view.webhooks.items():
            print(f"  {hook}: {url}")
    elif view.provider == "smtp":
        out.print("mail to this address is received by 'threadline smtp'")
    if view.generated_credentials:
        out.print("generated credentials (shown only now):")
        for key, value in view.generated_credentials.items():
            print(f"  {key}: {value}")


@inbox_app.command("list")
def inbox_list(tenant: TenantOpt = "default") -> None:
    """List a tenant's inboxes."""
    settings = load_settings()
    rows: list[inboxes.InboxView] = []
    with database() as db:
        t = tenants.get_tenant(db, tenant)
        cursor = None
        while True:
            page = inboxes.list_page(db, settings, t.id, limit=200, cursor=cursor)
            rows += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
    table = _table("id", "name", "channel", "provider", "address", "mode")
    for v in rows:
        table.add_row(
            str(v.id), Text(v.name), v.channel.value, v.provider, Text(v.address), v.mode.value
        )
    _print(table)
