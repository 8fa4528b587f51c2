"""Test helpers: run the SDK against a Threadline app in the same process, no server needed.

    from threadline.client.testing import LocalThreadline

    def test_my_bot(tmp_path):
        with LocalThreadline(tmp_path) as local, local.client() as tl:
            conv = tl.conversations.create(contact={"name": "Ada"})
            my_bot.handle(tl, conv.id, "Hi")
            assert [m.role for m in tl.messages.list(conv.id)] == ["user", "assistant"]

- ``LocalThreadline``: a fresh SQLite database, migrated, with a tenant and its API key, and
  the real app on it; ``client()`` / ``async_client()`` talk to it in process.
- ``ASGIBridge``: an httpx transport that serves a *sync* client's requests with an ASGI app
  (running the app's lifespan on its own event-loop thread). An async client needs no bridge:
  pass ``httpx.ASGITransport(app)`` and run the lifespan with ``lifespan(app)``.
- ``Flaky``: a transport in front of another that fails on cue (a refused connection, an
  answer lost after the server stored the request, a 503 or 429 with Retry-After), to test
  what your code does when the network does not cooperate.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.from_thread
import httpx

from threadline.client._private.async_client import AsyncThreadline
from threadline.client._private.base import RetryPolicy
from threadline.client._private.sync_client import Threadline

BASE_URL = "http://threadline.test"

ASGIApp = Callable[..., Any]


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan (startup on entry, shutdown on exit), as a server would."""
    started, stop = anyio.Event(), anyio.Event()
    failure: list[str] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "lifespan.startup"}
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.failed":
            failure.append(message.get("message", "startup failed"))
        if message["type"].startswith("lifespan.startup."):
            started.set()

    async def run() -> None:
        try:
            await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
        finally:
            started.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        await started.wait()
        if failure:
            raise RuntimeError(f"the app did not start: {failure[0]}")
        try:
            yield
        finally:
            stop.set()


class ASGIBridge(httpx.BaseTransport):
    """Serves a sync client's requests with an ASGI app in this process.

    The app runs on an event loop in a background thread (with its lifespan, unless
    ``run_lifespan=False``); ``close()`` shuts it down. Errors the app does not handle become
    500 answers, as with a real server.
    """

    def __init__(self, app: ASGIApp, *, run_lifespan: bool = True) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._asgi = httpx.ASGITransport(app, raise_app_exceptions=False)
        self._lifespan: AbstractContextManager[None] | None = None
        if run_lifespan:
            self._lifespan = self._portal.wrap_async_context_manager(lifespan(app))
            self._lifespan.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()

        async def run() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            copy = httpx.Request(
                request.method, request.url, headers=request.headers, content=content
            )
            answer = await self._asgi.handle_async_request(copy)
            body = await answer.aread()
            return answer.status_code, answer.headers.raw, body

        status, headers, body = self._portal.call(run)
        return httpx.Response(status, headers=headers, content=body, request=request)

    def close(self) -> None:
        if self._lifespan is not None:
            lifespan_cm, self._lifespan = self._lifespan, None
            lifespan_cm.__exit__(None, None, None)
        self._portal_cm.__exit__(None, None, None)


Fault = Literal["connect", "drop"] | int


@dataclass
class Flaky(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A transport that fails on cue in front of ``inner`` (sync or async).

    ``faults`` are used up one per request, in order; after them every request goes
    through. A fault is ``"connect"`` (the connection is refused: the request never reaches
    the server), ``"drop"`` (the request reaches the server, which stores it, but its answer
    is lost) or a status such as ``503`` or ``429`` (answered at once with Retry-After
    ``retry_after``, the request not forwarded). ``requests`` records every request seen.
    """

    inner: httpx.BaseTransport | httpx.AsyncBaseTransport
    faults: list[Fault] = field(default_factory=list)
    retry_after: str = "0"
    requests: list[httpx.Request] = field(default_factory=list)

    def _fault(self, request: httpx.Request) -> Fault | None:
        self.requests.append(request)
        return self.faults.pop(0) if self.faults else None

    def _answer(self, status: int, request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "flaky", "message": "injected by Flaky", "details": None}}
        code = {429: "rate_limited", 503: "database_busy"}.get(status)
        if code:
            body["error"]["code"] = code
        headers = {"Retry-After": self.retry_after}
        return httpx.Response(status, json=body, headers=headers, request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(self.inner, httpx.BaseTransport), "a sync client needs a sync inner"
        fault = self._fault(request)
        if fault == "connect":
            raise httpx.ConnectError("connection refused (Flaky)", request=request)
        if isinstance(fault, int):
            return self._answer(fault, request)
        response = self.inner.handle_request(request)
        if fault == "drop":
            response.read()
            response.close()
            raise httpx.ReadError("connection reset before the answer (Flaky)", request=request)
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(self.inner, httpx.AsyncBaseTransport), (
            "an async client needs an async inner"
        )
        fault = self._fault(request)
        if fault == "connect":
            raise httpx.ConnectError("connection refused (Flaky)", request=request)
        if isinstance(fault, int):
            return self._answer(fault, request)
        response = await self.inner.handle_async_request(request)
        if fault == "drop":
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset before the answer (Flaky)", request=request)
        return response

    def close(self) -> None:
        if isinstance(self.inner, httpx.BaseTransport):
            self.inner.close()

    async def aclose(self) -> None:
        if isinstance(self.inner, httpx.AsyncBaseTransport):
            await self.inner.aclose()


#: Retries without waiting, for tests.
FAST_RETRIES = RetryPolicy(max_retries=2, backoff=0.0, max_backoff=0.0, max_retry_after=0.05)


@contextmanager
def in_process(
    app: ASGIApp, api_key: str, *, retries: int | RetryPolicy = FAST_RETRIES
) -> Iterator[Threadline]:
    """A sync client of ``app``, served in this process (the app's lifespan runs)."""
    bridge = ASGIBridge(app)
    with Threadline(BASE_URL, api_key, transport=bridge, retries=retries) as client:
        yield client


@asynccontextmanager
async def async_in_process(
    app: ASGIApp, api_key: str, *, retries: int | RetryPolicy = FAST_RETRIES
) -> AsyncIterator[AsyncThreadline]:
    """An async client of ``app``, served in this process (the app's lifespan runs)."""
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with (
        lifespan(app),
        AsyncThreadline(BASE_URL, api_key, transport=transport, retries=retries) as client,
    ):
        yield client


class LocalThreadline:
    """A real Threadline app on a fresh SQLite database in ``folder`` (a temporary folder by
    default, removed on exit), with one tenant and its ``api_key``."""

    def __init__(self, folder: str | Path | None = None, *, tenant: str = "test") -> None:
        self._own = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="threadline-"))
        self.tenant = tenant
        self.api_key = ""
        self.app: Any = None
        self._db: Any = None

    def __enter__(self) -> LocalThreadline:
        from threadline.api.app import create_app
        from threadline.settings import Settings
        from threadline.store import Database, migrate, tenants

        url = f"sqlite:///{self.folder / 'threadline.db'}"
        self._db = Database.from_url(url)
        migrate.upgrade(self._db)
        tenant = tenants.create_tenant(self._db, self.tenant)
        _, self.api_key = tenants.create_api_key(self._db, tenant.id, "tests")
        settings = Settings(database_url=url, environment="test", log_level="warning")
        self.app = create_app(settings, self._db)
        return self

    def client(self, *, retries: int | RetryPolicy = FAST_RETRIES) -> Threadline:
        """A sync client of the app (close it, or use it as a context manager)."""
        return Threadline(BASE_URL, self.api_key, transport=ASGIBridge(self.app), retries=retries)

    def async_client(self, *, retries: int | RetryPolicy = FAST_RETRIES) -> AsyncThreadline:
        """An async client of the app, without its lifespan (background jobs do not run)."""
        transport = httpx.ASGITransport(self.app, raise_app_exceptions=False)
        return AsyncThreadline(BASE_URL, self.api_key, transport=transport, retries=retries)

    def __exit__(self, *exc: object) -> None:
        if self._db is not None:
            self._db.dispose()
        if self._own:
            shutil.rmtree(self.folder, ignore_errors=True)
