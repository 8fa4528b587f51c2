"""Structured logs: readable lines by default, one JSON object per line with
``THREADLINE_LOG_FORMAT=json``.

Log events carry ids, routes, statuses and timings, never message bodies, API keys or
secrets: the access log records the route template and status, not the query or headers.

``configure_logging`` sets up structlog (our own events). A process that owns its logging,
such as ``threadline serve``, also passes ``stdlib=True`` so that records from the standard
library's ``logging`` (uvicorn, alembic) go through the same renderer: with the JSON format
every line on standard error is then a JSON object that a log shipper can parse.
"""

from __future__ import annotations

import logging
import sys

import structlog

from threadline.settings import Settings

_HANDLER_NAME = "threadline"


def configure_logging(settings: Settings, *, stdlib: bool = False) -> None:
    level = getattr(logging, settings.log_level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    if stdlib:
        _configure_stdlib(level, renderer)


def _configure_stdlib(level: int, renderer: structlog.typing.Processor) -> None:
    """Render standard-library log records like our own events, on standard error."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,  # the request id, for uvicorn's lines too
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level)
    # Libraries that install their own handlers would print a second, unformatted line.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
