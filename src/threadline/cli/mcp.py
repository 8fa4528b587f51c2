"""``threadline mcp``: an MCP server (stdio or streamable HTTP) over a Threadline server."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from threadline.cli._common import err


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


def mcp(
    transport: Annotated[
        Transport, typer.Option(help="stdio (for a local MCP client) or http (streamable HTTP).")
    ] = Transport.STDIO,
    host: Annotated[str, typer.Option(help="With --transport http: listen address.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="With --transport http: listen port.")] = 8765,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="THREADLINE_URL", help="The Threadline server (default http://127.0.0.1:8000)."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="THREADLINE_API_KEY", help="Its API key (threadline key create)."),
    ] = None,
) -> None:
    """Serve Threadline's tools to MCP clients: search conversations, fetch context, append
    and send messages, list and decide pending suggestions. With --transport http the
    endpoint is http://HOST:PORT/mcp."""
    try:
        from threadline.integrations.mcp import create_server
    except ImportError as exc:  # the optional extra is missing
        err.print(
            f"[red]error:[/red] the MCP server needs the mcp extra "
            f"(pip install 'threadline[mcp]'): {exc}",
            highlight=False,
        )
        raise typer.Exit(1) from None
    from threadline.client import AsyncThreadline

    if not api_key:
        err.print("[red]error:[/red] THREADLINE_API_KEY (or --api-key) is required")
        raise typer.Exit(1)
    server = create_server(AsyncThreadline(url, api_key))
    if transport is Transport.STDIO:
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
