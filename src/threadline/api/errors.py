"""The one place where errors become HTTP answers: ``{"error": {"code", "message", "details"}}``.

Database errors are answered by what went wrong, read from the driver's own error (SQLite's
result code, PostgreSQL's SQLSTATE), not by the SQLAlchemy class that wraps it: a lock or a
timeout is 503 ``database_busy``, a lost connection 503 ``database_unavailable``, a missing
table 503 ``database_unavailable`` with the command that fixes it, a read-only database 503
``database_read_only``, a unique or foreign-key violation 409 ``conflict``. Anything else is a
bug on our side: 500, logged with the error's type and code but never its SQL parameters.
"""

from __future__ import annotations

import sqlite3
import traceback
from typing import Any

import psycopg
from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.routing import Match

from threadline.domain import errors
from threadline.logs import get_logger

log = get_logger(__name__)

#: The base error classes of the drivers we use. Most of their errors reach us wrapped by
#: SQLAlchemy, but one raised where SQLAlchemy does not wrap (a connection event) arrives bare.
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)
try:
    import pysqlite3.dbapi2 as _pysqlite3

    DRIVER_ERRORS += (_pysqlite3.Error,)
except ImportError:  # pragma: no cover - platforms without the wheel
    pass

STATUS: dict[type[errors.ThreadlineError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidCursor: 400,
    errors.InvalidInput: 422,
    errors.PayloadTooLarge: 413,
    errors.Unauthenticated: 401,
    errors.MigrationRequired: 503,
    errors.SignatureInvalid: 403,
    errors.MalformedPayload: 400,
    errors.Unavailable: 503,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": jsonable_encoder(details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def _status_for(exc: errors.ThreadlineError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 400


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.ThreadlineError)
    status = _status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, errors.Unavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    return error_response(status, exc.code, exc.message, exc.details or None, headers)


def _clean(err: dict[str, Any]) -> dict[str, Any]:
    # Drop the offending input: it may be a message body, which never goes back out or to logs.
    return {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = [_clean(e) for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errs):
        return error_response(400, "invalid_json", "the request body is not valid JSON", errs)
    unknown = sorted(
        {
            str(e["loc"][1])
            for e in errs
            if e["type"] == "extra_forbidden" and e["loc"][0] == "query"
        }
    )
    if unknown:  # a query model refused a parameter the route does not take
        shown = [name[:64] for name in unknown[:10]]
        message = f"unknown query parameter(s): {', '.join(shown)}"
        return error_response(422, "invalid_input", message, {"parameters": shown})
    first = errs[0] if errs else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"][1:] if p != "body") or "request"
    return error_response(422, "validation_error", f"{where}: {first['msg']}", errs)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = ", ".join(allowed)
    return error_response(exc.status_code, code, str(exc.detail), None, headers or None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
    # This answer is sent from outside the middleware that stamps the request id on answers.
    headers = {"X-Request-ID": rid} if (rid := correlation_id.get()) else None
    return error_response(500, "internal_error", "something went wrong on our side", None, headers)


# SQLite primary result codes (the low byte of the extended code) and extended codes.
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_READONLY = 8
_SQLITE_UNAVAILABLE = {10, 11, 13, 14, 26}  # IOERR, CORRUPT, FULL, CANTOPEN, NOTADB
_SQLITE_CONFLICT = {2067, 1555, 787}  # CONSTRAINT_UNIQUE, _PRIMARYKEY, _FOREIGNKEY

# PostgreSQL SQLSTATEs and classes.
_PG_BUSY = {"55P03", "40001", "40P01", "57014", "53300"}
_PG_UNAVAILABLE_CLASSES = {"08", "53", "57"}  # connection, resources, operator intervention
_PG_SCHEMA = {"42P01", "42703", "3F000"}  # undefined table, column, schema
_PG_CONFLICT = {"23505", "23503"}  # unique, foreign key

_BUSY = "the database is busy: retry shortly"
_UNREACHABLE = "the database is unreachable: retry shortly"
_SCHEMA = "the database schema is not current: run 'threadline db upgrade'"
_READ_ONLY = "the database is read-only: it refuses writes until it accepts them again"
_CONFLICT = "the request conflicts with stored data"


def database_error(exc: BaseException) -> errors.ThreadlineError | None:
    """What a database error means for the caller, or None when it is a bug of ours.

    ``exc`` is a SQLAlchemy error or a bare driver error; the decision is made on the driver
    error itself: SQLite's result code (its message where the code is missing), PostgreSQL's
    SQLSTATE.
    """
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return errors.DatabaseBusy(_BUSY)
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(orig, psycopg.Error):
        return _postgresql_error(orig)
    found = _sqlite_error(orig)
    if found is None and isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return errors.DatabaseUnavailable(_UNREACHABLE)
    return found


def _postgresql_error(orig: psycopg.Error) -> errors.ThreadlineError | None:
    state = orig.sqlstate
    if state is None:  # no server answered: refused, unreachable, or the connection broke
        is_connection = isinstance(orig, psycopg.OperationalError)
        return errors.DatabaseUnavailable(_UNREACHABLE) if is_connection else None
    if state in _PG_BUSY:
        return errors.DatabaseBusy(_BUSY)
    if state == "25006":  # read_only_sql_transaction: a standby, or default read-only
        return errors.DatabaseReadOnly(_READ_ONLY)
    if state in _PG_SCHEMA:
        return errors.DatabaseUnavailable(_SCHEMA)
    if state in _PG_CONFLICT:
        return errors.Conflict(_CONFLICT)
    if state[:2] in _PG_UNAVAILABLE_CLASSES:
        return errors.DatabaseUnavailable(_UNREACHABLE)
    return None


def _sqlite_error(orig: BaseException | None) -> errors.ThreadlineError | None:
    code = getattr(orig, "sqlite_errorcode", None)
    text = str(orig).lower()
    if code is None:  # an older sqlite3 module: only the message tells
        code = next((c for c, words in _SQLITE_MESSAGES if words in text), None)
        if code is None:
            return None
    if code & 0xFF in _SQLITE_BUSY:
        return errors.DatabaseBusy(_BUSY)
    if code & 0xFF == _SQLITE_READONLY:
        return errors.DatabaseReadOnly(_READ_ONLY)
    if code & 0xFF in _SQLITE_UNAVAILABLE:
        return errors.DatabaseUnavailable(_UNREACHABLE)
    if code in _SQLITE_CONFLICT or (
        # without extended result codes, the message names the constraint
        code == 19 and text.startswith(("unique constraint", "foreign key constraint"))
    ):
        return errors.Conflict(_CONFLICT)
    if code & 0xFF == 1 and text.startswith(("no such table", "no such column")):
        return errors.DatabaseUnavailable(_SCHEMA)
    return None


_SQLITE_MESSAGES = [
    (5, "database is locked"),
    (6, "database table is locked"),
    (8, "readonly database"),
    (14, "unable to open database"),
    (19, "constraint failed"),
    (1, "no such "),
]


async def _database(request: Request, exc: Exception) -> JSONResponse:
    found = database_error(exc)
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    # The driver's type and code, never its message: PostgreSQL's carries the offending values.
    facts = {
        "error_type": type(orig).__name__,
        "code": getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None),
    }
    if found is None:
        log.error("database_error", path=request.url.path, where=_where(exc), **facts)
        return error_response(500, "internal_error", "something went wrong on our side")
    if isinstance(found, errors.Conflict):
        log.warning("constraint_violation", **facts)
    elif isinstance(found, errors.DatabaseBusy):
        log.warning(found.code, **facts)
    else:
        log.error(found.code, **facts)
    return await _domain(request, found)


def _where(exc: BaseException) -> str:
    """The innermost line of our own code the error passed through (module:function:line)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "threadline" in f.filename]
    if not frames:
        return "unknown"
    f = frames[-1]
    module = f.filename.rsplit("threadline", 1)[-1].strip("/").removesuffix(".py")
    return f"{module}:{f.name}:{f.lineno}"


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.ThreadlineError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    for cls in (sa_exc.DBAPIError, sa_exc.TimeoutError, *DRIVER_ERRORS):
        app.add_exception_handler(cls, _database)
    app.add_exception_handler(Exception, _unexpected)
