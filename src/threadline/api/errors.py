"""The one place where errors become HTTP answers: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from threadline.domain import errors
from threadline.logs import get_logger

log = get_logger(__name__)

STATUS: dict[type[errors.ThreadlineError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidCursor: 400,
    errors.InvalidInput: 422,
    errors.PayloadTooLarge: 413,
    errors.Unauthenticated: 401,
    errors.MigrationRequired: 503,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
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
    return error_response(status, exc.code, exc.message, exc.details or None, headers)


def _clean(err: dict[str, Any]) -> dict[str, Any]:
    # Drop the offending input: it may be a message body, which never goes back out or to logs.
    return {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = [_clean(e) for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errs):
        return error_response(400, "invalid_json", "the request body is not valid JSON", errs)
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


async def _integrity(_: Request, exc: Exception) -> JSONResponse:
    # Constraint checks are the last line of defence; input that reaches one is a conflict.
    log.warning("constraint_violation", error_type=type(exc.__cause__ or exc).__name__)
    return error_response(409, "conflict", "the request conflicts with stored data")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", "something went wrong on our side")


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # Not the caller's fault: the database is down, or its schema is missing or behind.
    log.error("database_unavailable", error_type=type(getattr(exc, "orig", None) or exc).__name__)
    return error_response(
        503,
        "database_unavailable",
        "the database is unreachable or its schema is not current: run 'threadline db upgrade'",
        headers={"Retry-After": "5"},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.ThreadlineError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(ProgrammingError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
