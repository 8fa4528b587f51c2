"""Rate limits: requests per API key on ``/v1`` and per inbox on ``/webhooks``.

Counted with the ``limits`` library's sliding-window counter in this process's memory
(``THREADLINE_RATE_LIMIT`` and ``THREADLINE_RATE_LIMIT_WEBHOOKS``; several limits separated
by ``;`` all apply). Each server process counts on its own, so N processes allow up to N
times the limit; a shared storage (``limits.storage.RedisStorage``, passed as ``storage``)
makes the count global across processes and machines.

A request over a limit answers ``429 rate_limited`` with ``Retry-After`` (whole seconds
until the window lets one more through), before its body is read or its key looked up. The
API key is counted by a hash of the header, so a wrong key is throttled like a right one
and the key itself is never kept. A provider webhook is counted by the inbox id in its path
(``/webhooks/{provider}/{inbox_id}/...``).
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from threadline.api.errors import error_response


class RateLimit:
    """ASGI middleware answering 429 for a caller over its limits."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_key: str,
        per_inbox: str,
        storage: Storage | None = None,
    ) -> None:
        self.app = app
        self.per_key: list[RateLimitItem] = parse_many(per_key) if per_key else []
        self.per_inbox: list[RateLimitItem] = parse_many(per_inbox) if per_inbox else []
        self.limiter = SlidingWindowCounterRateLimiter(storage or MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            identity = self._identity(scope)
            if identity is not None:
                limits, kind, key = identity
                wait = self._over(limits, kind, key)
                if wait is not None:
                    message = f"too many requests; try again in {wait} s"
                    response = error_response(
                        429, "rate_limited", message, headers={"Retry-After": str(wait)}
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _identity(self, scope: Scope) -> tuple[list[RateLimitItem], str, str] | None:
        path: str = scope["path"]
        if self.per_key and path.startswith("/v1/"):
            for name, value in scope["headers"]:
                if name == b"authorization":
                    return self.per_key, "key", hashlib.blake2b(value, digest_size=16).hexdigest()
            return None  # no key: answered 401 without any work
        if self.per_inbox and path.startswith("/webhooks/"):
            parts = path.split("/")  # "", "webhooks", provider, inbox_id, ...
            if len(parts) > 3 and parts[3]:
                return self.per_inbox, "inbox", parts[3][:64]
        return None

    def _over(self, limits: list[RateLimitItem], kind: str, key: str) -> int | None:
        """Counts the request against every limit; the seconds to wait if one refuses it."""
        for item in limits:
            if not self.limiter.hit(item, kind, key):
                stats = self.limiter.get_window_stats(item, kind, key)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None
