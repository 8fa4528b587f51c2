"""The SDK's exceptions: one per error code the API answers with.

The tree::

    ThreadlineError                  root of everything the SDK raises on purpose
    ├── ConnectionFailed             no answer: refused, reset, timed out (after the retries)
    └── APIError                     the server answered an error; code, message, details,
        │                            status and request_id say which and why
        ├── BadRequest               400 (invalid_json, invalid_cursor, bad_request)
        │   └── InvalidCursor        400 invalid_cursor
        ├── Unauthenticated          401
        ├── PermissionDenied         403
        ├── NotFound                 404 an id that does not exist for your tenant
        │   └── EndpointNotFound     404 for the path itself: the server has no such endpoint
        ├── Conflict                 409
        │   ├── InvalidTransition    409 a status change the state machine forbids
        │   ├── AlreadyExists        409 a phone or email another contact has
        │   ├── ModelNotConfigured   409 an AI call on a server with no model
        │   └── SemanticSearchUnavailable  409 a semantic search where embeddings are off
        ├── PayloadTooLarge          413
        ├── UnsupportedMediaType     415
        ├── ValidationError          422 (validation_error, invalid_input)
        │   └── IdempotencyKeyReused 422 an Idempotency-Key sent again with another body
        ├── RateLimited              429, with retry_after
        ├── InternalServerError      500 and any other 5xx not below
        └── Unavailable              503, with retry_after
            ├── DatabaseBusy         503 database_busy
            ├── DatabaseUnavailable  503 database_unavailable
            ├── DatabaseReadOnly     503 database_read_only
            └── MigrationRequired    503 migration_required

An error is chosen by its ``code`` first, then by its HTTP status, so a code this SDK does
not know yet still lands on the right branch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class ThreadlineError(Exception):
    """Root of every error the SDK raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectionFailed(ThreadlineError):
    """The server could not be reached or did not answer (after the retries)."""


class APIError(ThreadlineError):
    """The server answered with an error body ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        details: Any = None,
        request_id: str | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.details = details
        self.request_id = request_id
        self.response = response

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, status={self.status}, message={self.message!r})"


class BadRequest(APIError):
    pass


class InvalidCursor(BadRequest):
    pass


class Unauthenticated(APIError):
    pass


class PermissionDenied(APIError):
    pass


class NotFound(APIError):
    pass


class EndpointNotFound(NotFound):
    """The server has no such endpoint (an older server, or a feature it does not have yet)."""


class Conflict(APIError):
    pass


class InvalidTransition(Conflict):
    pass


class AlreadyExists(Conflict):
    pass


class ModelNotConfigured(Conflict):
    pass


class SemanticSearchUnavailable(Conflict):
    pass


class PayloadTooLarge(APIError):
    pass


class UnsupportedMediaType(APIError):
    pass


class ValidationError(APIError):
    pass


class IdempotencyKeyReused(ValidationError):
    pass


class _Retryable(APIError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        #: Seconds the server asked us to wait before trying again (its Retry-After).
        self.retry_after = retry_after


class RateLimited(_Retryable):
    pass


class InternalServerError(APIError):
    pass


class Unavailable(_Retryable):
    pass


class DatabaseBusy(Unavailable):
    pass


class DatabaseUnavailable(Unavailable):
    pass


class DatabaseReadOnly(Unavailable):
    pass


class MigrationRequired(Unavailable):
    pass


BY_CODE: dict[str, type[APIError]] = {
    "invalid_cursor": InvalidCursor,
    "invalid_transition": InvalidTransition,
    "already_exists": AlreadyExists,
    "model_not_configured": ModelNotConfigured,
    "semantic_search_unavailable": SemanticSearchUnavailable,
    "idempotency_key_reused": IdempotencyKeyReused,
    "rate_limited": RateLimited,
    "database_busy": DatabaseBusy,
    "database_unavailable": DatabaseUnavailable,
    "database_read_only": DatabaseReadOnly,
    "migration_required": MigrationRequired,
}

BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    429: RateLimited,
    503: Unavailable,
}


def retry_after(response: httpx.Response) -> float | None:
    """The answer's Retry-After in seconds (delta-seconds or an HTTP date), else None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def from_response(response: httpx.Response) -> APIError:
    """The exception for an error answer (any status >= 400)."""
    status = response.status_code
    code, message, details = f"http_{status}", response.reason_phrase or "error", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
        details = err.get("details")
    cls = BY_CODE.get(code) or BY_STATUS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIError
    if cls is NotFound and message == "Not Found":  # the router's answer: no such path
        cls = EndpointNotFound
    if status == 405:  # the path exists, but not for this method: the same for a caller
        cls = EndpointNotFound
    kw: dict[str, Any] = {
        "code": code,
        "status": status,
        "details": details,
        "request_id": response.headers.get("X-Request-ID"),
        "response": response,
    }
    if issubclass(cls, _Retryable):
        kw["retry_after"] = retry_after(response)
    return cls(message, **kw)
