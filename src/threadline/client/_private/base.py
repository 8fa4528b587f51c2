"""What the sync and async clients share: configuration, request building, the retry rule.

The rule: an answer of 429 or 503 means the server did nothing, so every request is retried
after the answer's Retry-After (or the backoff). A connection that could not be opened is
retried too. A request that may have reached the server (a read timeout, a dropped
connection, a 502 or 504 from a proxy) is retried only when repeating it is harmless: a GET,
PUT or DELETE, or a POST carrying an ``Idempotency-Key``. Message appends always carry one
(made up when the caller gives none) and every retry sends the same key, so a retried append
is stored once.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from functools import lru_cache
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings, SettingsConfigDict

from threadline import __version__
from threadline.client._private import errors

T = TypeVar("T")

DEFAULT_URL: Final = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0)
USER_AGENT: Final = f"threadline-python/{__version__}"

#: Statuses that mean "nothing was done, try again later".
RETRY_ALWAYS: Final = frozenset({429, 503})
#: Statuses a proxy answers after the request may have reached the server.
RETRY_IF_IDEMPOTENT: Final = frozenset({502, 504})
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class ClientSettings(BaseSettings):
    """Where the server is and the key to use: ``THREADLINE_URL`` and ``THREADLINE_API_KEY``."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    url: str = DEFAULT_URL
    api_key: SecretStr | None = None


class NotGiven:
    """The default of an optional argument the caller did not pass (None means "clear it")."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying a request again.

    The n-th wait is ``backoff * 2**n`` seconds with up to 25% jitter, at most
    ``max_backoff``; a Retry-After from the server replaces it, up to ``max_retry_after``.
    """

    max_retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        wait = min(self.backoff * 2**attempt, self.max_backoff)
        return wait * (1 - random.random() * 0.25)


DEFAULT_RETRIES: Final = RetryPolicy()


def resolve(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The base URL and key: the arguments, else ``THREADLINE_URL`` / ``THREADLINE_API_KEY``."""
    if base_url is None or api_key is None:
        env = ClientSettings()
        base_url = base_url or env.url
        if api_key is None and env.api_key is not None:
            api_key = env.api_key.get_secret_value()
    return base_url.rstrip("/"), api_key


def headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    out = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out | dict(extra or {})


def new_idempotency_key() -> str:
    return f"tl-{uuid.uuid4()}"


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_param(v) for v in value]
    return str(value) if isinstance(value, uuid.UUID) else value


def params(**values: Any) -> dict[str, Any]:
    """Query parameters without the ones not given (None), in the API's spelling."""
    return {k: _param(v) for k, v in values.items() if v is not None and v is not NOT_GIVEN}


def body(**values: Any) -> dict[str, Any]:
    """A JSON body without the fields not given; None stays (it clears a field)."""
    return {k: jsonable(v) for k, v in values.items() if v is not NOT_GIVEN}


def create_body(**values: Any) -> dict[str, Any]:
    """A JSON body for a create: fields left at None are left out (the server's default)."""
    return {k: jsonable(v) for k, v in values.items() if v is not None and v is not NOT_GIVEN}


def jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    return to_jsonable_python(value)


def retryable_status(method: str, status: int, has_key: bool) -> bool:
    if status in RETRY_ALWAYS:
        return True
    return status in RETRY_IF_IDEMPOTENT and (method in IDEMPOTENT_METHODS or has_key)


def retryable_transport(method: str, exc: httpx.TransportError, has_key: bool) -> bool:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True  # never reached the server
    return method in IDEMPOTENT_METHODS or has_key


def connection_failed(exc: httpx.TransportError, url: str) -> errors.ConnectionFailed:
    what = type(exc).__name__
    return errors.ConnectionFailed(f"no answer from {url}: {what}: {exc}".rstrip(": "))


def request_headers(idempotency_key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else None


def check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise errors.from_response(response)
    return response


@lru_cache(maxsize=64)
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def parse(model: type[T], response: httpx.Response) -> T:
    """The answer's JSON body as ``model`` (a model class, or a type such as list[Message])."""
    return _adapter(model).validate_json(response.content)  # type: ignore[no-any-return,arg-type]
