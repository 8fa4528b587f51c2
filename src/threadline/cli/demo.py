"""``threadline demo``: fill a tenant with realistic conversations on every channel."""

from __future__ import annotations

from typing import Annotated

import typer

from threadline.cli._common import friendly_errors, load_settings, open_database, out


def demo(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug.")] = "default",
) -> None:
    """Load demo data: an SMS lead, WhatsApp with a tool call, email with HTML and quoted
    history, a Yelp lead, a voice transcript, web chat with a drafted reply waiting for
    approval, and more. Loading twice changes nothing."""
    from threadline.store import inboxes, tenants
    from threadline.web import demo as demo_data

    settings = load_settings()
    db = open_database(settings)
    try:
        with friendly_errors():
            inboxes.bind(db, settings)
            t = tenants.get_tenant(db, tenant)
            count = demo_data.load(db, settings, t.id)
    finally:
        db.dispose()
    if count:
        out.print(f"loaded {count} demo conversations into tenant {t.slug}")
    else:
        out.print(f"tenant {t.slug} already has the demo data")
