"""One provider API call, its failures sorted into retryable and final ``ProviderError`` s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from threadline.domain.errors import ProviderError

#: Reads a provider's error body: ``(provider_code, message)``.
ErrorReader = Callable[[httpx.Response], tuple[str | None, str | None]]

#: A sensible client timeout for the delivery worker (the client passed in decides).
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def retryable_status(status: int) -> bool:
    """5xx may pass on a later try, and so may 429 (nothing was sent); other 4xx never will."""
    return status >= 500 or status in (408, 429)


def call(
    client: httpx.Client,
    provider: str,
    method: str,
    url: str,
    read_error: ErrorReader,
    **kwargs: Any,
) -> httpx.Response:
    """Make the request with the caller's client (and its timeouts); return a 2xx response
    or raise ``ProviderError``."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise ProviderError(
            f"{provider}: the API did not answer in time", retryable=True, provider=provider
        ) from exc
    except httpx.TransportError as exc:
        raise ProviderError(
            f"{provider}: could not reach the API ({type(exc).__name__})",
            retryable=True,
            provider=provider,
        ) from exc
    if response.is_success:
        return response
    try:
        code, text = read_error(response)
    except ValueError:
        code, text = None, None
    message = text or response.text[:500] or response.reason_phrase
    raise ProviderError(
        f"{provider}: {message}",
        retryable=retryable_status(response.status_code),
        provider_code=code,
        status_code=response.status_code,
        provider=provider,
    )


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a response, ``{}`` when it has none."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
