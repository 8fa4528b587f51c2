"""``threadline smtp``: receive mail for the ``smtp`` inboxes."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from threadline.cli._common import friendly_errors, load_settings, open_database, out


def smtp(
    host: Annotated[
        str | None, typer.Option(help="Listen address [default: settings.smtp_host].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port [default: settings.smtp_port].")
    ] = None,
) -> None:
    """Receive mail by SMTP on HOST:PORT and store it in the smtp inbox of each recipient."""
    from threadline.ingest import Ingest
    from threadline.logs import configure_logging
    from threadline.metrics import Metrics
    from threadline.receive import Receiver
    from threadline.smtpd import controller
    from threadline.store import inboxes, secrets

    overrides = {k: v for k, v in {"smtp_host": host, "smtp_port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    configure_logging(settings, stdlib=True)
    db = open_database(settings)
    with friendly_errors():
        secrets.box_for(settings)
        inboxes.bind(db, settings)
        receiver = Receiver(db, settings, Ingest(db, settings, Metrics()))
        server = controller(receiver, settings.smtp_host, settings.smtp_port)
        server.start()
    out.print(f"SMTP on {settings.smtp_host}:{settings.smtp_port} (Ctrl-C stops)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.stop()
        db.dispose()
